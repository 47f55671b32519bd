"""A bounded synthesis pool: at most `workers` runs at once, `queue` more may wait, the rest get 503.

ONNX Runtime sessions are safe to run from several threads, so one Synthesizer (loaded with
`threads_per_worker` intra-op threads) serves every worker thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """No room: every worker is busy and the queue is full."""


class SynthesisPool:
    """`on_idle` is called on the worker thread when a run gives its slot back and no other request is
    admitted, i.e. when the pool goes idle (e.g. malloc trim: see ServeSettings.trim_memory)."""

    def __init__(self, workers: int, queue: int, on_idle: Callable[[], object] | None = None) -> None:
        self.workers = workers
        self._on_idle = on_idle
        self.capacity = workers + queue
        self._admit = threading.BoundedSemaphore(self.capacity)
        self._run = threading.BoundedSemaphore(workers)
        self._executor = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="synth")
        self._lock = threading.Lock()
        self.in_flight = 0  # admitted requests (running + waiting)

    def _enter(self) -> None:
        if not self._admit.acquire(blocking=False):
            raise QueueFull
        with self._lock:
            self.in_flight += 1

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self._admit.release()

    def _released(self) -> None:
        if self._on_idle is None:
            return
        with self._lock:
            idle = self.in_flight <= 1  # the run giving its slot back is still counted until it leaves
        if idle:
            self._on_idle()

    def _guarded(self, fn: Callable[[], T]) -> T:
        with self._run:
            try:
                return fn()
            finally:
                self._released()

    async def run(self, fn: Callable[[], T], timeout: float) -> T:
        """Run `fn` on a worker; QueueFull at once if there is no room; asyncio.TimeoutError after `timeout`.

        A timed-out run keeps its slot until it really ends, so the pool never over-commits the cores.
        """
        self._enter()
        try:
            future = self._executor.submit(self._guarded, fn)
        except BaseException:
            self._leave()
            raise
        future.add_done_callback(lambda _: self._leave())
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    def stream(self, make: Callable[[], Iterator[Any]]) -> Generator[Any, None, None]:
        """Admit now (QueueFull if no room), then yield `make()`'s items holding a worker slot.

        The returned generator is iterated by the web framework's thread pool; the slot is released when
        it ends or the client goes away.
        """
        self._enter()

        def gen() -> Generator[Any, None, None]:
            try:
                with self._run:
                    try:
                        yield from make()
                    finally:
                        self._released()
            finally:
                self._leave()

        return gen()

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until no request is admitted; True if the pool is idle.

        The executor stays usable (an app may be started again, as test clients do); its threads are
        idle once drained.
        """
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.in_flight
