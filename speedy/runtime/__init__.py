"""Runtime backends behind one protocol, chosen by a component's `format` in the manifest.

Nothing here imports torch at module level: the ONNX path (synth, serve, bench) must run without it.
A backend module is imported only when a manifest names its format.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, overload

import numpy as np

from speedy.artifacts import Component, Manifest
from speedy.controls import GraphControls
from speedy.errors import ModelError

#: component format -> "module:function" building a runner. One line per backend; no if-chains elsewhere.
_BACKENDS: dict[str, str] = {
    "onnx": "speedy.runtime.onnx_backend:load_component",
    "torch": "speedy.runtime.torch_backend:load_component",
    "torchscript": "speedy.runtime.torch_backend:load_torchscript",
    "torch-export": "speedy.runtime.torch_backend:load_torch_export",
    "tensorrt": "speedy.runtime.tensorrt_backend:load_component",
    "openvino": "speedy.runtime.openvino_backend:load_component",
}


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

    A multi-graph family's manifest lacks `name` (e.g. "acoustic") as a component: the composite runtime
    its FamilySpec names (a host loop over the graphs) builds it.
    """
    if name not in manifest.components:
        from speedy.families import for_family

        spec = for_family(manifest.family)
        if not spec.multi_graph:
            raise ModelError(f"the manifest has no {name} component")
        return spec.hook("composite")(manifest, name, root, options)
    comp: Component = manifest.components[name]
    target = _BACKENDS.get(comp.format)
    if target is None:
        raise ModelError(f"no runtime backend for format {comp.format!r} ({name})")
    module_name, func = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, func)(manifest, name, root, options)
