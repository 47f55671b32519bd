"""`speedy -q` leaves stderr empty on success (issue 29): no progress, parity lines, 'wrote …', and none of
torch's or ONNX Runtime's own warnings; `-v` shows the libraries' messages that are hidden by default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def speedy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speedy.cli", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)


def test_quiet_synth_has_empty_stderr(tmp_path: Path, default_onnx: Path) -> None:
    proc = speedy("-q", "synth", "--text", "今天天气很好。", "-o", "out/a.wav", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "out" / "a.wav").stat().st_size > 1000
    # with --json, stdout is the one object (the default voice named, not null) and stderr stays empty
    proc = speedy("-q", "synth", "--text", "你好。", "-o", "b.wav", "--json", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""
    assert json.loads(proc.stdout)["voice"] == "baker"


def test_quiet_export_has_empty_stderr(tmp_path: Path, default_torch: Path) -> None:
    """The export of the default voice (three torch Constant-folding warnings and the parity lines before)."""
    proc = speedy("-q", "export", "-o", "artifacts/onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""
    assert (tmp_path / "artifacts" / "onnx" / "manifest.json").is_file()


def test_torch_export_chatter_shown_with_verbose(tmp_path: Path, default_torch: Path) -> None:
    """torch's 'Constant folding' warnings, hidden by default (test_library_chatter_hidden_by_default), come
    back with -v; the stage's own lines are there either way."""
    proc = speedy("-v", "export", "-o", "onnx", "--no-check", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Constant folding" in proc.stderr and "wrote onnx" in proc.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_library_chatter_hidden_by_default(verbose: bool) -> None:
    """Without -v the known torch warning is ignored and ONNX Runtime's log records below ERROR are dropped."""
    import logging
    import warnings

    from speedy import noise

    record = logging.LogRecord("root", logging.WARNING, "/x/site-packages/onnxruntime/quantization/quantize.py",
                               1, "Please consider pre-processing before quantization.", None, None)
    ours = logging.LogRecord("speedy.stages", logging.INFO, "/x/speedy/stages/int8.py", 1, "calibrating", None, None)
    error = logging.LogRecord("root", logging.ERROR, record.pathname, 1, "a real error", None, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            noise.configure(verbose=verbose, quiet=False)
            warnings.warn("Constant folding - Only steps=1 can be constant folded for opset >= 10", UserWarning,
                          stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
            chatter = noise.LibraryChatter()
            assert chatter.filter(record) is verbose
            assert chatter.filter(ours) and chatter.filter(error)
        finally:
            noise.configure(verbose=False, quiet=False)
            for handler in logging.getLogger().handlers:  # leave pytest's own handlers as they were
                for f in [f for f in handler.filters if isinstance(f, noise.LibraryChatter)]:
                    handler.removeFilter(f)
    assert [str(w.message).startswith("Constant folding") for w in caught] == ([True, False] if verbose else [False])
