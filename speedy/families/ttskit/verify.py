"""``speedy compile`` check of a ttskit artifact (the FamilySpec ``verify`` hook): the compiled graphs
against the source's, through the runtime's host loop and vocoder (`speedy.families.host_loop`, shared with
sambert). Imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedy.artifacts import Manifest
from speedy.errors import ModelError

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
    from speedy.families.host_loop import verify_host_loop
    from speedy.families.ttskit.frontend import encoder

    return verify_host_loop(
        src,
        src_root,
        manifest,
        root,
        encoder=encoder(src),
        text=text or VERIFY_TEXT,
        steps=("stop_step", "same stop step and durations"),
        label="ttskit",
        mel_tol=MEL_TOL,
        snr_min_db=VOCODER_SNR_DB,
        threads=threads,
        strict=strict,
        error=error,
    )
