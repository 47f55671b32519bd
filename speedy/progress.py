"""Progress of long library work (calibration, …), reported to whoever listens; silent when no one does.

A library step calls `report(description, done, total)`; the CLI wraps a command in `listening(sink)`
with a sink that draws a rich progress bar on stderr. The sink lives in a context variable, so library
signatures need no progress parameter threaded through every layer, and a library caller who sets none
gets nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

#: description, items done, items in all
Sink = Callable[[str, int, int], None]
_SINK: ContextVar[Sink | None] = ContextVar("speedy_progress_sink", default=None)


def report(description: str, done: int, total: int) -> None:
    """Tell the listening sink (if any) that `done` of `total` items of `description` are done."""
    sink = _SINK.get()
    if sink is not None:
        sink(description, done, total)


@contextlib.contextmanager
def listening(sink: Sink) -> Iterator[None]:
    """Send every `report` made inside the block (in this thread / task) to `sink`."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)
