"""What the host-loop families (sambert, ttskit) share: wrapping a graph as a runner, and the ``speedy compile``
check of a compiled host-loop artifact against its source through the runtime's loop and vocoder.

Torch-free. The check loads the runners with `speedy.runtime.load_runner` inside the function, as each
family's `verify` hook did before it moved here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import ModelError
from speedy.families.graph_spec import loop_figures

GraphRunner = Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]
"""One graph of a host loop: feeds by input name -> outputs in graph order."""


def as_runner(graph: Any, family: str) -> GraphRunner:
    """Wrap an ``onnxruntime.InferenceSession`` (anything with ``run(None, feeds)``) or pass a callable
    through; ModelError naming `family` for anything else."""
    if hasattr(graph, "run") and hasattr(graph, "get_inputs"):
        return lambda feeds: graph.run(None, dict(feeds))
    if callable(graph):
        return graph
    raise ModelError(f"{family} graph: expected an InferenceSession or a callable, got {type(graph).__name__}")


def verify_host_loop(
    src: Manifest,
    src_root: Path,
    manifest: Manifest,
    root: Path,
    *,
    encoder: Any,
    text: str,
    steps: tuple[str, str],
    label: str,
    mel_tol: float,
    snr_min_db: float,
    threads: int | None,
    strict: bool,
    error: type[ModelError],
) -> list[dict[str, Any]]:
    """A compiled host-loop artifact against its source on `text` (default controls), through the runtime.

    `encoder`: the family's frontend encoder (``text_to_utterances``, ``encode``). Per utterance the loop
    must give the same mel shape and the same per-symbol durations, its mel within `mel_tol` (max |Δ|); the
    compiled vocoder, fed the source's mel, within `snr_min_db` SNR of the source vocoder. `steps`: (figure
    output name, how the error message words that check), e.g. ("stop_step", "same stop step and
    durations"). ``strict=False`` reports without raising (reduced precision); otherwise `error` (the compile
    stage's CompileParityError) is raised, naming `label`. Returns figures as compile records them.
    """
    from speedy.calibration import snr_db
    from speedy.runtime import RuntimeOptions, load_runner

    opts = RuntimeOptions(threads=threads)
    acoustic: list[Any] = [load_runner(m, "acoustic", r, opts) for m, r in ((src, src_root), (manifest, root))]
    vocoder: list[Any] = [load_runner(m, "vocoder", r, opts) for m, r in ((src, src_root), (manifest, root))]
    mel_diff, snr, same = 0.0, float("inf"), True
    for utt in encoder.text_to_utterances(text):
        inputs: Any = encoder.encode(utt, None)
        (ma, da), (mb, db) = acoustic[0](inputs, DEFAULT_CONTROLS), acoustic[1](inputs, DEFAULT_CONTROLS)
        same &= ma.shape == mb.shape and bool(np.array_equal(da, db))
        mel_diff = max(mel_diff, float(np.abs(ma - mb).max()) if ma.shape == mb.shape else float("inf"))
        snr = min(snr, snr_db(vocoder[0](ma), vocoder[1](ma)))
    figures = loop_figures(steps[0], same, mel_diff, mel_tol, snr, snr_min_db, strict)
    if strict and (not same or mel_diff > mel_tol or snr < snr_min_db):
        raise error(
            f"compile: the compiled {label} graphs differ from the source ({steps[1]}: {same}, mel max |Δ| "
            f"{mel_diff:.2e} (tol {mel_tol}), vocoder SNR {snr:.1f} dB (min {snr_min_db}))"
        )
    return figures
