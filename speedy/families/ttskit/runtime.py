"""The ttskit acoustic runner the Synthesizer uses: the host loop over the artifact's graphs. No torch.

:func:`speedy.runtime.load_runner` opens the graphs of ``"acoustic"`` and hands them to :func:`compose` (the ttskit
FamilySpec's hook); the vocoder loads like any other ONNX component.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import GraphControls
from speedy.errors import InputError, ModelError
from speedy.families.ttskit.loop import LoopConfig, TtskitLoop


def loop_config(manifest: Manifest) -> LoopConfig:
    """The loop settings recorded in ``extra["graphs"]["loop"]``."""
    data = (manifest.extra.get("graphs") or {}).get("loop")
    if not isinstance(data, Mapping):
        raise ModelError("ttskit manifest: extra['graphs']['loop'] is missing")
    try:
        return LoopConfig(**dict(data))
    except TypeError as e:
        raise ModelError(f"ttskit manifest: bad extra['graphs']['loop'] ({e})") from None


def stretch(mel: np.ndarray, speed: float) -> np.ndarray:
    """Speed control of an AR model without a duration input: resample ``(L, n_mels)`` along time to
    ``round(L / speed)`` frames by linear interpolation (pitch is kept: the vocoder rebuilds it)."""
    if speed == 1.0 or mel.shape[0] < 2:
        return mel
    n = max(1, int(round(mel.shape[0] / speed)))
    pos = np.linspace(0.0, mel.shape[0] - 1, n)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, mel.shape[0] - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return (mel[lo] * (1 - w) + mel[hi] * w).astype(np.float32)


class TtskitAcousticRunner:
    """``(inputs, controls) -> (mel, durations)``.

    Args of ``__call__``:
        inputs: :class:`speedy.families.ttskit.frontend.TtskitInputs` (ids ``(T,)``, speaker ``(32,)``).
        controls: :class:`speedy.controls.GraphControls` (speed, pitch, pitch_range, energy). Only speed is used
            here (:func:`stretch`); the manifest sends pitch to resampling and energy to a gain, and the
            model has no pitch-range control.

    Returns:
        mel ``(1, L, 80)`` float32 (ln mel) and durations ``(1, T)`` int64 (frames whose attention
        peaked on each symbol, before the speed stretch).
    """

    def __init__(self, loop: TtskitLoop) -> None:
        self.loop = loop

    def __call__(self, inputs: Any, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        ids = getattr(inputs, "ids", None)
        speaker = getattr(inputs, "speaker", None)
        if ids is None or speaker is None:
            raise InputError("ttskit: the acoustic runner takes TtskitInputs (ids and a speaker vector)")
        speed = controls.speed
        if not speed > 0:
            raise InputError(f"speed must be > 0, got {speed}")
        res = self.loop.acoustic(ids, speaker)
        return stretch(res.mel, speed)[None], res.durations[None]


def compose(manifest: Manifest, graphs: Mapping[str, Any]) -> TtskitAcousticRunner:
    """The acoustic runner over the opened encoder, decoder_step and postnet graphs (the FamilySpec ``compose``
    hook; :func:`speedy.runtime.load_runner` opens them)."""
    return TtskitAcousticRunner(TtskitLoop(dict(graphs), loop_config(manifest)))
