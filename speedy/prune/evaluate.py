"""Quality of a pruned (or otherwise changed) torch pipeline against the original: MCD on eval sentences."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from speedy.artifacts import Manifest


def eval_ids(manifest: Manifest, count: int, sentences: Sequence[str] | None = None) -> list[np.ndarray]:
    """Phoneme ids (1, T) int64 of the first `count` utterances of `sentences` (default: the eval corpus)."""
    from speedy.corpus import load_corpus
    from speedy.stages.quantize import calibration_ids

    return calibration_ids(manifest, list(sentences) if sentences else load_corpus("eval"), count)


def synthesize(acoustic: nn.Module, vocoder: nn.Module, ids: Sequence[np.ndarray], min_frames: int = 10
               ) -> list[np.ndarray]:
    """Waveforms (samples,) float32 at default controls; utterances shorter than `min_frames` are padded."""
    import torch

    one, zero = torch.ones(1), torch.zeros(1)
    out = []
    with torch.inference_mode():
        for x in ids:
            mel, _ = acoustic(torch.from_numpy(np.asarray(x)), one, zero, one, one)
            if mel.shape[1] < min_frames:
                mel = torch.cat([mel, mel[:, -1:].expand(1, min_frames - mel.shape[1], -1)], dim=1)
            out.append(vocoder(mel).reshape(-1).numpy())
    return out


def mean_mcd(ref: Sequence[np.ndarray], test: Sequence[np.ndarray], sample_rate: int) -> float:
    """Mean MCD (dB) over paired waveforms (`speedy.quality.mel_cepstral_distortion`)."""
    from speedy.quality import mel_cepstral_distortion

    return float(np.mean([mel_cepstral_distortion(r, t, sample_rate) for r, t in zip(ref, test)]))


def pipeline_mcd(manifest: Manifest, reference: Mapping[str, nn.Module], candidate: Mapping[str, nn.Module],
                 count: int, ids: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """MCD of `candidate` vs `reference` pipelines ({"acoustic", "vocoder"} modules) on `count` eval utterances."""
    ids = list(ids) if ids is not None else eval_ids(manifest, count)
    sr, mf = manifest.audio.sample_rate, manifest.audio.min_vocoder_frames
    ref = synthesize(reference["acoustic"], reference["vocoder"], ids, mf)
    test = synthesize(candidate["acoustic"], candidate["vocoder"], ids, mf)
    return {"mcd_db": round(mean_mcd(ref, test, sr), 4), "sentences": len(ids)}
