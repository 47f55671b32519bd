"""Runtime backends behind one protocol, chosen by a component's `format` in the manifest through the
backend table (`speedy.backends.FORMATS`: format → loader).

Nothing here imports torch at module level: the ONNX path (synth, serve, bench) must run without it.
A backend module is imported only when a manifest names its format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, overload

import numpy as np

from speedy.artifacts import Component, Manifest
from speedy.backends import cpu_isa, fmt, missing_isa, resolve
from speedy.controls import GraphControls
from speedy.errors import ModelError


@dataclass(frozen=True)
class RuntimeOptions:
    """Load-time runtime settings: intra-op threads (None = all cores) and ORT graph optimisation."""

    threads: int | None = None
    graph_optimization: str = "all"  # onnxruntime: disable | basic | extended | all


class AcousticRunner(Protocol):
    """ids (1, T) int64 and the controls by name (`speedy.controls.GraphControls`) → (mel, durations).

    mel: (1, L, n_mels) float32, normalised as the manifest's audio.mel_normalization says;
    durations: (1, T) int64 frames per id.
    """

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]: ...


class VocoderRunner(Protocol):
    """mel (B, L, n_mels) float32 → waveform (B, L·hop) float32 in [-1, 1]."""

    def __call__(self, mel: np.ndarray) -> np.ndarray: ...


@overload
def load_runner(
    manifest: Manifest, name: Literal["acoustic"], root: Path, options: RuntimeOptions
) -> AcousticRunner: ...
@overload
def load_runner(manifest: Manifest, name: Literal["vocoder"], root: Path, options: RuntimeOptions) -> VocoderRunner: ...
@overload
def load_runner(
    manifest: Manifest, name: str, root: Path, options: RuntimeOptions
) -> AcousticRunner | VocoderRunner: ...
def load_runner(manifest: Manifest, name: str, root: Path, options: RuntimeOptions) -> AcousticRunner | VocoderRunner:
    """Build the runner for component `name` with the backend its format names.

    A multi-graph family's manifest lacks `name` (e.g. "acoustic") as a component: its graphs (the FamilySpec's
    ``graphs[name]``) are opened here and handed to the family's ``compose`` hook (a host loop over them).
    """
    if name not in manifest.components:
        from speedy.families import for_family
        from speedy.runtime.onnx_backend import graph_sessions

        spec = for_family(manifest.family)
        graphs = spec.graph_names(name)
        if not spec.multi_graph or not graphs:
            raise ModelError(f"the manifest has no {name} component")
        sessions = graph_sessions(manifest, root, options, graphs, spec.name, spec.fp16_max_level)
        return spec.hook("compose")(manifest, sessions)
    comp: Component = manifest.components[name]
    record = fmt(comp.format)
    if record is None:
        raise ModelError(f"no runtime backend for format {comp.format!r} ({name})")
    return resolve(record.loader)(manifest, name, root, options)


#: the flags whose presence changes which artifact is fastest (int8 dot products, bf16, AMX tiles)
DECISIVE_ISA = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def isa_warnings(manifest: Manifest) -> list[str]:
    """One line per reason this CPU is not the one the artifact was built or chosen for: a component that
    needs CPU flags this one lacks (`extra["needs_isa"]`, e.g. OpenVINO bf16 on AVX2), or an `auto` choice
    measured on a CPU with decisive flags (VNNI, BF16, AMX) this one lacks (`extra["quantize"]["isa"]`)."""
    lines = []
    for name, comp in manifest.components.items():
        lacking = missing_isa(tuple(comp.extra.get("needs_isa") or ()))
        if lacking:
            lines.append(f"{name} ({comp.format} {comp.precision}) {lacking}")
    measured = (manifest.extra.get("quantize") or {}).get("isa")
    if measured:
        gone = [f for f in DECISIVE_ISA if f in measured and f not in cpu_isa()]
        if gone:
            lines.append(
                f"quantize --recipe auto chose this artifact on a CPU with {', '.join(gone)}, which this one "
                "lacks: run the search again on this machine for the fastest choice here"
            )
    return lines
