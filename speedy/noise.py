"""Other libraries' chatter on stderr: hidden by default, shown with `speedy -v`.

What it hides (none of it is actionable for a user of speedy; each stage reports its own result):
- torch's ONNX exporter `UserWarning: Constant folding - Only steps=1 can be constant folded …`, three
  per export (the Slice ops keep their step; the graph is right, only not folded there);
- ONNX Runtime's quantization and transformer-optimizer log records ("Please consider pre-processing
  before quantization", per-node INFO lines, bias warnings, "Model producer not matched"), which it
  writes through Python's logging, mostly on the root logger;
- ONNX Runtime calibrators' `print()` lines ("Collecting tensor data and making histogram ...").

Records at ERROR and above always pass. The CLI calls `configure` once; library code wraps a chatty
call in `library_stdout()`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator

_VERBOSE = False
#: folders of the packages whose log records below ERROR are chatter (matched against record.pathname)
_CHATTY_PACKAGES = (f"{os.sep}onnxruntime{os.sep}",)
#: warning messages (regex, start of the message) that are known chatter
_CHATTY_WARNINGS = (r"Constant folding - Only steps=1 can be constant folded",)


class LibraryChatter(logging.Filter):
    """A handler filter that drops records below ERROR logged from inside the chatty packages."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _VERBOSE or record.levelno >= logging.ERROR:
            return True
        return not any(p in record.pathname for p in _CHATTY_PACKAGES)


def configure(*, verbose: bool, quiet: bool) -> None:
    """Hide the chatter (unless `verbose`) on every handler of the root logger; with `quiet`, also every
    Python warning raised inside torch and onnxruntime."""
    global _VERBOSE
    _VERBOSE = verbose
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, LibraryChatter) for f in handler.filters):
            handler.addFilter(LibraryChatter())
    if verbose:
        return
    for message in _CHATTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    if quiet:
        for module in (r"torch(\.|$)", r"onnxruntime(\.|$)", r"onnxscript(\.|$)"):
            warnings.filterwarnings("ignore", module=module)


def verbose() -> bool:
    """Whether library chatter is shown (`speedy -v`)."""
    return _VERBOSE


@contextlib.contextmanager
def library_stdout() -> Iterator[None]:
    """Around a library call that prints progress: its stdout goes to stderr with `-v`, else nowhere.

    stdout is kept for the command's --json object either way.
    """
    target = sys.stderr if _VERBOSE else io.StringIO()
    with contextlib.redirect_stdout(target):
        yield
