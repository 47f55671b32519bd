"""Bench rows for vocoder-only artifacts: the bench texts spoken by the default voice, resampled, vocoded.

A vocoder-only artifact takes a recording, not text. :class:`SpokenCopySynthesizer` gives bench the text
interface it times (``stream`` / ``synthesize``): each text is spoken once by the default voice's FP32 ONNX
artifact, resampled to the vocoder's rate and kept (untimed after the first use of that text: the warm-up
pass pays it); a timed run is the mel analysis (reported as the "acoustic" time) plus the vocoder. Every
row of a bench then vocodes the same speech, so MCD against the FP32 row is the vocoder's own error.
Torch-free, like the rest of the runtime path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import read_manifest
from speedy.synth import AudioChunk, SynthesisResult, Synthesizer, check_text

#: Default-voice speech per (text, sample rate), shared by every row of a bench run (one process).
_SPEECH: dict[tuple[str, int], np.ndarray] = {}
_VOICE: list[Synthesizer] = []


def spoken(text: str, sample_rate: int, threads: int | None = None) -> np.ndarray:
    """The default voice speaking `text`, ``(samples,)`` float32 at `sample_rate` (cached per process)."""
    key = (text, sample_rate)
    if key not in _SPEECH:
        import soxr

        if not _VOICE:
            _VOICE.append(Synthesizer.load(None, threads=threads))
        res = _VOICE[0].synthesize(text)
        wav = res.audio
        if res.sample_rate != sample_rate:
            wav = soxr.resample(wav, res.sample_rate, sample_rate, quality="HQ").astype(np.float32)
        _SPEECH[key] = wav
    return _SPEECH[key]


class SpokenCopySynthesizer:
    """A vocoder-only Synthesizer behind bench's text interface (see the module docstring)."""

    def __init__(self, inner: Synthesizer, threads: int | None = None) -> None:
        self.inner = inner
        self.manifest = inner.manifest
        self.root = inner.root
        self.threads = threads

    @property
    def sample_rate(self) -> int:
        return self.inner.sample_rate

    def stream(self, text: str, options: Any = None, *, chunked: bool = True) -> Iterator[AudioChunk]:
        """One chunk: the default voice's speech of `text` through the mel analysis and this vocoder."""
        speech = spoken(check_text(text), self.sample_rate, self.threads)
        res = self.inner.copy_synthesize(speech)
        yield AudioChunk(res.audio, res.sample_rate, 0, text, res.acoustic_s, res.vocoder_s)

    def synthesize(self, text: str, options: Any = None, on_chunk: Any = None) -> SynthesisResult:
        start = time.perf_counter()
        (chunk,) = list(self.stream(text))
        wall = time.perf_counter() - start
        return SynthesisResult(chunk.audio, chunk.sample_rate, len(text), 1, chunk.acoustic_s, chunk.vocoder_s, wall)


def load_for_bench(artifact: str | Path | None, threads: int | None = None) -> Synthesizer | SpokenCopySynthesizer:
    """The Synthesizer bench times for `artifact` (None = the default voice): the artifact itself, or the
    copy-synthesis adapter for a vocoder-only artifact."""
    if artifact is not None and read_manifest(artifact, verify=False).vocoder_only:
        return SpokenCopySynthesizer(Synthesizer.load(artifact, threads=threads), threads)
    return Synthesizer.load(artifact, threads=threads)
