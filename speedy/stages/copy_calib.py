"""Calibration and check mels for vocoder-only artifacts: real speech, analysed as copy synthesis does.

A vocoder-only artifact has no acoustic model to make mels from text. Its calibration and check mels come
from the default voice speaking the sentences (FP32 ONNX artifact), resampled to the vocoder's rate with
soxr and analysed with the family's own mel analysis (the FamilySpec ``analysis`` hook), i.e. exactly the
input that ``speedy synth --wav`` gives the vocoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from speedy.artifacts import Manifest
from speedy.errors import ModelError
from speedy.families import for_family


def speech(sentences: Sequence[str], sample_rate: int, limit: int) -> list[np.ndarray]:
    """The default voice speaking the first `limit` sentences, each ``(samples,)`` float32 at `sample_rate`."""
    import soxr

    from speedy.synth import Synthesizer

    voice = Synthesizer.load(None)
    out = []
    for text in list(sentences)[:limit]:
        res = voice.synthesize(text)
        wav = res.audio
        if res.sample_rate != sample_rate:
            wav = soxr.resample(wav, res.sample_rate, sample_rate, quality="HQ").astype(np.float32)
        out.append(wav)
    return out


def recording_mels(
    manifest: Manifest, sentences: Sequence[str], limit: int, say: Callable[[str], None] | None = None
) -> list[np.ndarray]:
    """Mels ``(1, frames, n_mels)`` float32 of the default voice's speech, analysed for `manifest`'s vocoder."""
    if not manifest.vocoder_only:
        raise ModelError("internal: recording_mels is for vocoder-only artifacts")
    if say is not None:
        say(f"calibration: {min(limit, len(sentences))} sentences spoken by the default voice, resampled and analysed")
    analysis = for_family(manifest.family).hook("analysis")
    return [analysis(wav, manifest)[None] for wav in speech(sentences, manifest.audio.sample_rate, limit)]
