"""``speedy compile``'s check of a host-loop family: the compiled graphs against the source's, through the
runtime's loop and vocoder, on the sentence and tolerances the family declares (`speedy.families.graph_spec.LoopCheck`).

Torch-free; one function for every host-loop family (sambert and ttskit declare data, not code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.calibration import snr_db
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import ModelError
from speedy.families import for_family, frontend_encoder
from speedy.families.graph_spec import LoopCheck


def loop_figures(
    check: LoopCheck, steps_equal: bool, mel_diff: float, snr: float, enforced: bool
) -> list[dict[str, Any]]:
    """Parity figures in the manifest's format: the loop's frame count per symbol (`check.steps`, exact), the
    mel (max |Δ|) and the vocoder fed the source's mel (SNR, dB)."""
    loop = "acoustic-loop"
    return [
        {
            "component": loop,
            "output": check.steps,
            "kind": "exact",
            "value": 0.0 if steps_equal else 1.0,
            "tol": 0.0,
            "enforced": enforced,
        },
        {
            "component": loop,
            "output": "mel",
            "kind": "max_abs",
            "value": mel_diff,
            "tol": check.mel_tol,
            "enforced": enforced,
        },
        {
            "component": "vocoder",
            "output": "wav",
            "kind": "snr_db",
            "value": snr,
            "tol": check.snr_db,
            "enforced": enforced,
        },
    ]


def verify_loop(
    src: Manifest,
    src_root: Path,
    manifest: Manifest,
    root: Path,
    *,
    threads: int | None = None,
    strict: bool = True,
    text: str | None = None,
    error: type[ModelError] = ModelError,
) -> list[dict[str, Any]]:
    """A compiled host-loop artifact against its source on `text` (default: the family's `LoopCheck.text`),
    default controls and voice.

    Per utterance the loop must give the same mel shape and the same per-symbol durations, its mel within
    `LoopCheck.mel_tol` (max |Δ|); the compiled vocoder, fed the source's mel, within `LoopCheck.snr_db` SNR
    of the source vocoder. ``strict=False`` reports without raising (reduced precision); otherwise `error`
    (the compile stage's CompileParityError) is raised. Returns figures as compile records them.
    """
    from speedy.runtime import RuntimeOptions, load_runner

    family = for_family(src.family)
    check = family.loop_check
    if check is None:
        raise ModelError(f"compile: {family.name} declares no loop check")
    encoder = frontend_encoder(src)
    opts = RuntimeOptions(threads=threads)
    acoustic: list[Any] = [load_runner(m, "acoustic", r, opts) for m, r in ((src, src_root), (manifest, root))]
    vocoder: list[Any] = [load_runner(m, "vocoder", r, opts) for m, r in ((src, src_root), (manifest, root))]
    mel_diff, snr, same = 0.0, float("inf"), True
    for utt in encoder.text_to_utterances(text or check.text):
        inputs: Any = encoder.encode(utt, None)
        (ma, da), (mb, db) = acoustic[0](inputs, DEFAULT_CONTROLS), acoustic[1](inputs, DEFAULT_CONTROLS)
        same &= ma.shape == mb.shape and bool(np.array_equal(da, db))
        mel_diff = max(mel_diff, float(np.abs(ma - mb).max()) if ma.shape == mb.shape else float("inf"))
        snr = min(snr, snr_db(vocoder[0](ma), vocoder[1](ma)))
    figures = loop_figures(check, same, mel_diff, snr, strict)
    if strict and (not same or mel_diff > check.mel_tol or snr < check.snr_db):
        raise error(
            f"compile: the compiled {family.name} graphs differ from the source ({check.wording}: {same}, mel max "
            f"|Δ| {mel_diff:.2e} (tol {check.mel_tol}), vocoder SNR {snr:.1f} dB (min {check.snr_db}))"
        )
    return figures
