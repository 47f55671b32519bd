"""A fake Synthesizer with the real public surface (a sine per sentence) for fast server tests."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from speedy.controls import CONTROL_RANGES, EMOTION_PRESETS, SynthesisOptions
from speedy.errors import InputError
from speedy.synth import AudioChunk, SynthesisResult, check_text

#: How long a gated sentence waits before failing: only a guard against a hung test, never reached when
#: the test opens its gate.
GATE_GUARD_S = 60.0


class Flag(Protocol):
    """What FakeSynthesizer needs of its gate and started flag: threading.Event's set / is_set / wait."""

    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class FileFlag:
    """A threading.Event-like flag shared between processes as a file's existence (the gate of a fake that
    runs in a Ray Serve replica, opened by the test process). Picklable."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)

    def set(self) -> None:
        Path(self.path).touch()

    def is_set(self) -> bool:
        return os.path.exists(self.path)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True


class FakeSynthesizer:
    """Sentence-by-sentence sine tones.

    With a `gate`, every sentence sets `started` and then waits until the test opens the gate, so tests
    of the queue, timeouts and draining order events instead of timing sleeps. `delay` paces each sentence
    (seconds) for tests that need a stream still running when the client leaves; nothing asserts on time.
    """

    sample_rate = 24000

    def __init__(self, gate: Flag | None = None, delay: float = 0.0, started: Flag | None = None) -> None:
        self.gate = gate
        self.delay = delay
        self.started = started if started is not None else threading.Event()  # set when any sentence begins
        self.running = 0
        self.max_running = 0
        self.completed = 0  # sentences fully synthesised
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"family": "fake", "sample_rate": self.sample_rate, "precision": "fp32",
                "voices": [{"name": "baker", "emotions": list(EMOTION_PRESETS), "emotion_kind": "preset"}],
                "controls": {k: {"min": lo, "max": hi, "default": d, "unit": u}
                             for k, (lo, hi, d, u) in CONTROL_RANGES.items()}}

    def stream(self, text: str, options: SynthesisOptions | None = None, *, chunked: bool = True
               ) -> Iterator[AudioChunk]:
        check_text(text)
        parts = [p for p in re.split(r"[。！？!?]", text) if re.search(r"[\w\u4e00-\u9fff]", p)]
        if not parts:
            raise InputError("nothing to say: the text has no readable characters (Chinese, letters or digits)")
        speed = (options or SynthesisOptions()).speed
        for i, p in enumerate(parts):
            with self._lock:
                self.running += 1
                self.max_running = max(self.max_running, self.running)
            self.started.set()
            try:
                if self.gate is not None and not self.gate.wait(GATE_GUARD_S):
                    raise RuntimeError("FakeSynthesizer: the test never opened the gate")
                if self.delay:
                    time.sleep(self.delay)
                n = int(self.sample_rate * 0.1 * len(p) / speed)
                audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / self.sample_rate)).astype(np.float32)
            finally:
                with self._lock:
                    self.running -= 1
            with self._lock:
                self.completed += 1
            yield AudioChunk(audio, self.sample_rate, i, p, 0.0, 0.0)

    def synthesize(self, text: str, options: SynthesisOptions | None = None) -> SynthesisResult:
        start = time.perf_counter()
        audio = np.concatenate([c.audio for c in self.stream(text, options)])
        return SynthesisResult(audio, self.sample_rate, len(text), 1, 0.0, 0.0, time.perf_counter() - start)


def gated_fake(folder: str | None = None) -> FakeSynthesizer:
    """A FakeSynthesizer (the loader a Ray replica runs); with `folder`, its gate and started flags are the
    files `folder`/gate and `folder`/started (FileFlag), so another process can watch and open them."""
    if folder is None:
        return FakeSynthesizer()
    return FakeSynthesizer(gate=FileFlag(Path(folder) / "gate"), started=FileFlag(Path(folder) / "started"))
