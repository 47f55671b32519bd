"""``speedy compile`` check of a ttskit artifact (the FamilySpec ``verify`` hook): the compiled graphs
against the source's, through the runtime's host loop and vocoder. Imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import ModelError
from speedy.families.graph_spec import loop_figures

#: Held out of calibration; one sentence of about 170 decoder steps for the default voice.
VERIFY_TEXT = "请把窗户关上好吗？"
MEL_TOL = 1e-3
VOCODER_SNR_DB = 40.0


def verify_graphs(
    src: Manifest,
    src_root: Path,
    manifest: Manifest,
    root: Path,
    threads: int | None = None,
    strict: bool = True,
    text: str | None = None,
    error: type[ModelError] = ModelError,
) -> list[dict[str, Any]]:
    """A compiled ttskit artifact against its source on `text` (default :data:`VERIFY_TEXT`), default voice.

    The loop must stop at the same step with the same per-symbol durations and its mel within
    :data:`MEL_TOL` (max |Δ|); the compiled vocoder, fed the source's mel, within :data:`VOCODER_SNR_DB`
    SNR of the source vocoder. ``strict=False`` reports without raising (reduced precision); otherwise
    ``error`` (the compile stage's CompileParityError) is raised. Returns figures as compile records them.
    """
    from speedy.calibration import snr_db
    from speedy.families.ttskit.frontend import encoder
    from speedy.runtime import RuntimeOptions, load_runner

    opts = RuntimeOptions(threads=threads)
    acoustic: list[Any] = [load_runner(m, "acoustic", r, opts) for m, r in ((src, src_root), (manifest, root))]
    vocoder: list[Any] = [load_runner(m, "vocoder", r, opts) for m, r in ((src, src_root), (manifest, root))]
    enc = encoder(src)
    mel_diff, snr, same_steps = 0.0, float("inf"), True
    for utt in enc.text_to_utterances(text or VERIFY_TEXT):
        inputs: Any = enc.encode(utt, None)
        (ma, da), (mb, db) = acoustic[0](inputs, DEFAULT_CONTROLS), acoustic[1](inputs, DEFAULT_CONTROLS)
        same_steps &= ma.shape == mb.shape and bool(np.array_equal(da, db))
        mel_diff = max(mel_diff, float(np.abs(ma - mb).max()) if ma.shape == mb.shape else float("inf"))
        snr = min(snr, snr_db(vocoder[0](ma), vocoder[1](ma)))
    figures = loop_figures("stop_step", same_steps, mel_diff, MEL_TOL, snr, VOCODER_SNR_DB, strict)
    if strict and (not same_steps or mel_diff > MEL_TOL or snr < VOCODER_SNR_DB):
        raise error(
            f"compile: the compiled ttskit graphs differ from the source (same stop step and durations: "
            f"{same_steps}, mel max |Δ| {mel_diff:.2e} (tol {MEL_TOL}), vocoder SNR {snr:.1f} dB "
            f"(min {VOCODER_SNR_DB}))"
        )
    return figures
