"""OpenVINO backend (CPU, format "openvino"): the runner of IR files written by `speedy compile --backend
openvino` (speedy.stages.compile_openvino). Imports no torch and no stage.

A component is an IR pair: `comp.file` is the `.xml` (its sha256 is the component's, checked by
`read_manifest`) and `comp.extra["weights"]` names the `.bin` with its own sha256, checked here at load.
The compiled model runs behind `OvSession`, whose `run(output_names, feeds) -> list[np.ndarray]` is ONNX
Runtime's, so the ONNX backend's acoustic / vocoder wrappers and the host loops of multi-graph families
take it as they take an `InferenceSession`.

Core settings per component: INFERENCE_NUM_THREADS (the runtime's threads, else `extra["threads"]`, capped
by `extra["max_threads"]`), PERFORMANCE_HINT LATENCY with one stream, and INFERENCE_PRECISION_HINT from
`extra["inference_precision"]` (default f32). The hint is always set: OpenVINO's CPU plugin otherwise
runs float graphs in bf16 on CPUs with AVX512_BF16 or AMX, so an "fp32" artifact would not be FP32 there.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Component, Manifest, sha256_file
from speedy.errors import MissingExtraError, ModelError

_LOGGER = logging.getLogger(__name__)

#: manifest precision hint -> OpenVINO's INFERENCE_PRECISION_HINT value
PRECISION_HINTS: dict[str, str] = {"f32": "f32", "bf16": "bf16"}
DEFAULT_HINT = "f32"


def require_openvino(purpose: str = "the openvino backend") -> Any:
    """`import openvino`, or a one-line MissingExtraError naming the `openvino` extra (exit 3)."""
    try:
        import openvino
    except ImportError:
        raise MissingExtraError("openvino", "openvino", purpose) from None
    return openvino


_CORE: Any = None


def core() -> Any:
    """The process's one `openvino.Core` (reading plugins is the slow part of making one)."""
    global _CORE
    ov = require_openvino()  # every time: a missing extra is reported even after a Core was made
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


def core_config(threads: int | None, precision_hint: str = DEFAULT_HINT) -> dict[str, Any]:
    """CPU plugin properties of one compiled model (see the module docstring)."""
    if precision_hint not in PRECISION_HINTS:
        raise ModelError(
            f"unknown OpenVINO inference precision {precision_hint!r} in manifest (known: {', '.join(PRECISION_HINTS)})"
        )
    return {
        "INFERENCE_NUM_THREADS": int(threads or os.cpu_count() or 1),
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision_hint],
    }


class _Port:
    """What `InferenceSession.get_inputs()` items offer that the host loops read: a name."""

    def __init__(self, name: str) -> None:
        self.name = name


class OvSession:
    """A compiled OpenVINO model with ONNX Runtime's calling convention.

    `run(output_names or None, feeds) -> list[np.ndarray]` (outputs copied out, in the order asked).
    Infer requests are pooled, so concurrent `run` calls from several threads each get their own.
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.input_names = [p.get_any_name() for p in compiled.inputs]
        self.output_names = [p.get_any_name() for p in compiled.outputs]
        self._ports = {n: compiled.output(n) for n in self.output_names}
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()

    @classmethod
    def load(cls, model: Any, threads: int | None, precision_hint: str = DEFAULT_HINT) -> OvSession:
        """Compile `model` (an `openvino.Model` or a path to an IR / ONNX file) for the CPU."""
        if isinstance(model, Path):
            model = str(model)
        try:
            compiled = core().compile_model(model, "CPU", core_config(threads, precision_hint))
        except RuntimeError as e:
            what = Path(model).name if isinstance(model, str) else "the model"
            raise ModelError(f"{what}: OpenVINO cannot compile it ({str(e).strip().splitlines()[0][:200]})") from None
        return cls(compiled)

    def get_inputs(self) -> list[_Port]:
        return [_Port(n) for n in self.input_names]

    def get_outputs(self) -> list[_Port]:
        return [_Port(n) for n in self.output_names]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            request = self._pool.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            result = request.infer(dict(feeds))
            names = self.output_names if output_names is None else output_names
            # copies: the request's output tensors are reused by its next inference
            return [np.array(result[self._ports[n]], copy=True) for n in names]
        finally:
            self._pool.put(request)


def check_files(root: Path, comp: Component) -> tuple[Path, Path]:
    """The IR pair of `comp` (xml, bin), both present and matching the manifest's sha256; ModelError if not."""
    weights = comp.extra.get("weights")
    if not isinstance(weights, Mapping) or "file" not in weights or "sha256" not in weights:
        raise ModelError(f"{comp.file}: the manifest records no OpenVINO weights file (extra['weights'])")
    xml, bin_ = root / comp.file, root / str(weights["file"])
    for path, want in ((xml, comp.sha256), (bin_, str(weights["sha256"]))):
        if not path.is_file():
            raise ModelError(f"{root}: OpenVINO file {path.name} is missing")
        if sha256_file(path) != want:
            raise ModelError(f"{root}: checksum mismatch for {path.name} (file changed after it was written)")
    return xml, bin_


def component_threads(comp: Component, threads: int | None) -> int | None:
    """The runtime's threads, else the component's recorded `threads`, capped by its `max_threads`."""
    n = threads or comp.extra.get("threads")
    cap = comp.extra.get("max_threads")
    if cap:
        n = min(int(n or os.cpu_count() or 1), int(cap))
    return int(n) if n else None


def open_component(root: Path, comp: Component, threads: int | None) -> OvSession:
    """An `OvSession` for one manifest component (files checked, recorded threads and precision hint)."""
    xml, bin_ = check_files(root, comp)
    try:
        model = core().read_model(str(xml), str(bin_))
    except RuntimeError as e:
        raise ModelError(f"{xml.name}: OpenVINO cannot read it ({str(e).strip().splitlines()[0][:200]})") from None
    hint = str(comp.extra.get("inference_precision") or DEFAULT_HINT)
    # a bf16 component on a CPU without AVX512_BF16 / AMX (where the plugin runs f32) is warned about once, by
    # speedy.runtime.isa_warnings from the component's `needs_isa`, where the Synthesizer loads the artifact
    return OvSession.load(model, component_threads(comp, threads), hint)


def load_component(manifest: Manifest, name: str, root: Path, options: Any) -> Any:
    """The runner of component `name`: acoustic `(ids, controls) -> (mel, durations)` or vocoder
    `mel -> wav` with `receptive_field_frames` (recorded at compile time from the ONNX source)."""
    from speedy.runtime.onnx_backend import AcousticSession, VocoderSession

    comp = manifest.components[name]
    session = open_component(Path(root), comp, options.threads)
    if name == "acoustic":
        return AcousticSession(session, comp.inputs, comp.outputs)
    width = comp.extra.get("receptive_field_frames")
    return VocoderSession(session, comp.inputs, comp.outputs, float(width) if width is not None else None)


def graph_session(root: Path, comp: Component, options: Any, fp16_max_level: str | None = None) -> OvSession:
    """One graph of a host-loop family (`speedy.runtime.onnx_backend.graph_sessions`); `fp16_max_level`
    is an ONNX Runtime setting and does not apply."""
    return open_component(Path(root), comp, options.threads)
