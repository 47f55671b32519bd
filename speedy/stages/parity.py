"""Parity checks shared by the compile and trace stages: one reference run, any backend compared to it.

The reference is the source artifact run through its own runtime backend (ONNX Runtime for an ONNX
source, eager torch for a torch source) on real sentences (through the frontend when it is available,
else fixed pseudo-random id sequences), at default controls and at one non-default set, so that a
backend that baked in a length or a control value is caught. Outputs are compared with the family's
export tolerances (`speedy.families.graph_spec`): exact durations, mel max |Δ|, waveform SNR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.calibration import snr_db
from speedy.controls import DEFAULT_CONTROLS, GraphControls
from speedy.errors import ParityError
from speedy.families import FamilySpec, for_family
from speedy.families.graph_spec import GraphSpec

_LOGGER = logging.getLogger(__name__)

CHECK_SENTENCES = ("今天天气很好。", "我们一起去公园散步吧！", "请在三点以前把报告发给我。")
#: The defaults, then a set that moves every control.
CHECK_CONTROLS = (DEFAULT_CONTROLS, GraphControls(speed=0.8, pitch=2.0, pitch_range=1.3, energy=1.2))
#: id-sequence lengths used when no frontend is available (short, medium, longer).
FALLBACK_LENGTHS = (9, 23, 41)


@dataclass(frozen=True)
class ParityFigure:
    """One compared output: worst value over the inputs (max |Δ|, or min SNR in dB) and its tolerance."""

    component: str
    output: str
    kind: str
    value: float
    tol: float


@dataclass(frozen=True)
class CheckSet:
    """Reference inputs and outputs.

    acoustic: [(ids (1, T) int64, controls (GraphControls), mel (1, L, n_mels), durations (1, T))].
    vocoder: [(mel (1, L, n_mels) float32, wav (1, L·hop) float32)].
    """

    acoustic: tuple[tuple[np.ndarray, GraphControls, np.ndarray, np.ndarray], ...]
    vocoder: tuple[tuple[np.ndarray, np.ndarray], ...]


def family_spec(manifest: Manifest, stage: str) -> FamilySpec:
    """The family's spec, whose single-graph components (`FamilySpec.component`) give the export contract;
    ModelError naming `stage` for a host-loop family or one without graphs."""
    return for_family(manifest.family).graph_spec(stage)


def check_ids(manifest: Manifest, sentences: Sequence[str] = CHECK_SENTENCES) -> list[np.ndarray]:
    """Id sequences (1, T) int64: the sentences through the frontend, or fixed pseudo-random ids."""
    table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
    out: list[np.ndarray] = []
    try:
        from speedy.frontend import text_to_utterances
    except ImportError:
        pass
    else:
        for text in sentences:
            for utt in text_to_utterances(text):
                if all(p in table for p in utt.phones):
                    out.append(np.asarray([[table[p] for p in utt.phones]], dtype=np.int64))
    if not out:
        rng = np.random.default_rng(0)
        hi = max(2, len(manifest.frontend.symbols))
        out = [rng.integers(1, hi, size=(1, n), dtype=np.int64) for n in FALLBACK_LENGTHS]
    return out


def build_check_set(
    manifest: Manifest,
    root: Path,
    spec: FamilySpec,
    *,
    threads: int | None = None,
    acoustic: Callable | None = None,
    vocoder: Callable | None = None,
) -> CheckSet:
    """Run the reference runners (default: the source through its own backend) on the check inputs."""
    from speedy.runtime import RuntimeOptions, load_runner

    opts = RuntimeOptions(threads=threads)
    vocoder = vocoder or load_runner(manifest, "vocoder", root, opts)
    if manifest.vocoder_only:  # no acoustic model: the default voice's speech, analysed as copy synthesis does
        from speedy.stages.copy_calib import recording_mels

        mels = recording_mels(manifest, CHECK_SENTENCES, len(CHECK_SENTENCES))
        return CheckSet((), tuple((m, vocoder(m)) for m in mels))
    acoustic = acoustic or load_runner(manifest, "acoustic", root, opts)
    need = max(1, manifest.audio.min_vocoder_frames)
    ac: list[Any] = []
    vo: list[Any] = []
    for i, ids in enumerate(check_ids(manifest)):
        for j, controls in enumerate(CHECK_CONTROLS):
            if j and i % 2:  # non-default controls on every other input: enough to catch a baked value
                continue
            mel, dur = acoustic(ids, controls)
            ac.append((ids, controls, mel, dur))
            if j == 0:
                m = (
                    mel
                    if mel.shape[1] >= need
                    else np.concatenate(
                        [mel, np.full((1, need - mel.shape[1], mel.shape[2]), mel.min(), np.float32)], axis=1
                    )
                )
                vo.append((m, vocoder(m)))
    return CheckSet(tuple(ac), tuple(vo))


def compare_runner(
    runner: Callable,
    name: str,
    spec: GraphSpec,
    checks: CheckSet,
    stage: str,
    error: type[ParityError] = ParityError,
    *,
    strict: bool = True,
) -> list[ParityFigure]:
    """Run `runner` (a component runner, numpy in/out) on the check inputs; raise `error` out of tolerance.

    With `strict=False` (reduced-precision engines, for which the FP32 export tolerances are not meant)
    the worst figures are returned without raising; a shape mismatch then reads as NaN.
    """
    worst: dict[str, float] = {}
    pairs: list[tuple[Any, tuple[np.ndarray, ...]]]
    if name == "acoustic":
        pairs = [(runner(ids, c), (mel, dur)) for ids, c, mel, dur in checks.acoustic]
    else:
        pairs = [((runner(mel),), (wav,)) for mel, wav in checks.vocoder]
    for got_t, ref_t in pairs:
        got = dict(zip(spec.outputs, got_t))
        ref = dict(zip(spec.outputs, ref_t))
        for chk in spec.checks:
            a, b = np.asarray(ref[chk.name]), np.asarray(got[chk.name])
            if a.shape != b.shape and strict:
                raise error(f"{stage}: {name}.{chk.name} shape {b.shape} ≠ reference {a.shape}")
            v = measure(chk.kind, a, b) if a.shape == b.shape else float("nan")
            bad = v < chk.tol if chk.kind == "snr_db" else v > chk.tol
            if bad and strict:
                unit = "dB SNR" if chk.kind == "snr_db" else "max |Δ|"
                raise error(f"{stage}: {name}.{chk.name} {unit} {v:.3g} is out of tolerance {chk.tol:g}")
            prev = worst.get(chk.name)
            worst[chk.name] = (
                v if prev is None or np.isnan(v) else (min(prev, v) if chk.kind == "snr_db" else max(prev, v))
            )
    return [ParityFigure(name, c.name, c.kind, round(worst[c.name], 6), c.tol) for c in spec.checks]


def measure(kind: str, ref: np.ndarray, test: np.ndarray) -> float:
    """The figure of one check kind: "exact"/"max_abs" → max |Δ|, "snr_db" → SNR in dB."""
    if kind == "exact":
        return float(np.abs(ref.astype(np.int64) - test.astype(np.int64)).max(initial=0))
    if kind == "max_abs":
        return float(np.abs(ref.astype(np.float64) - test).max(initial=0.0))
    return snr_db(ref, test)
