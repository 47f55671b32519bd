"""ONNX Runtime backend (CPU). Imports no torch."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import GraphControls
from speedy.errors import MissingExtraError, ModelError
from speedy.runtime.receptive import onnx_width

_LOGGER = logging.getLogger(__name__)

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


#: Memory (default voice, 2 threads, a 500-character text then 20 eval texts; peak / steady RSS): ORT's
#: defaults 418 / 409 MB; without memory patterns 352 / 342 MB; without the arena as well 352 / 296 MB,
#: as the arena keeps every request's largest buffers. No speed difference was measurable (interleaved
#: A/B on a loaded 2-core machine). Patterns pre-plan one allocation per distinct input shape, which
#: a TTS graph (new length every call) never reuses.
MEM_PATTERN = False
CPU_MEM_ARENA = False
#: ORT's intra-op pool threads spin between ops by default. On this project's 2-core machines (default
#: voice, FP32, 2 threads, one process per variant, quiet machine) turning that off made whole-sentence
#: RTF 1.8x lower (0.076-0.085 -> 0.040-0.047 on 12 eval texts) and the first streamed chunk of the
#: ~500-character probe 2.4x sooner (median 79-86 -> 35 ms): the spinning worker took the core that the
#: calling thread and the host code between runs needed. A component may still set it in its
#: ``session_config``.
SESSION_DEFAULTS: dict[str, str] = {"session.intra_op.allow_spinning": "0"}


def session_options(
    threads: int | None, graph_optimization: str = "all", config: Mapping[str, str] | None = None
):  # -> ort.SessionOptions
    """SessionOptions with explicit intra-op threads (1 inter-op: our graphs are sequential), no memory
    patterns, no CPU arena (see MEM_PATTERN) and no spinning pool threads (SESSION_DEFAULTS); `config`:
    more ORT session config entries, which win over the defaults."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - core dependency
        raise MissingExtraError("onnxruntime", "runtime", "the ONNX backend") from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[graph_optimization])
    so.enable_mem_pattern = MEM_PATTERN
    so.enable_cpu_mem_arena = CPU_MEM_ARENA
    for key, value in {**SESSION_DEFAULTS, **(config or {})}.items():
        so.add_session_config_entry(str(key), str(value))
    return so


def make_session(
    path: Path, threads: int | None, graph_optimization: str = "all", config: Mapping[str, str] | None = None
):
    import onnxruntime as ort

    so = session_options(threads, graph_optimization, config)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"{path.name}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from None


class AcousticSession:
    def __init__(self, session, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
        self.session = session
        self.ids_name, *self.control_names = inputs
        self.outputs = list(outputs[:2])

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        feed = {self.ids_name: ids.astype(np.int64), **controls.feeds(self.control_names)}
        mel, dur = self.session.run(self.outputs, feed)
        return mel.astype(np.float32, copy=False), dur.astype(np.int64, copy=False)


class _Vocoder:
    def __init__(
        self, session, inputs: tuple[str, ...], outputs: tuple[str, ...], receptive_field_frames: float | None = None
    ) -> None:
        self.session = session
        self.inp = inputs[0]
        self.out = outputs[0]
        #: mel frames an output sample depends on, read from the graph's convs (speedy.runtime.receptive)
        self.receptive_field_frames = receptive_field_frames

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        (wav,) = self.session.run([self.out], {self.inp: mel.astype(np.float32, copy=False)})
        return wav.reshape(wav.shape[0], -1)


#: the vocoder wrapper under a public name, for the other backends whose sessions share ORT's `run`
VocoderSession = _Vocoder


def load_component(manifest: Manifest, name: str, root: Path, options) -> AcousticSession | _Vocoder:
    """An ONNX Runtime session for component `name`.

    A graph written by `speedy compile --backend onnxruntime` is already optimised offline: its
    `extra["graph_optimization"]` (normally "disable") overrides `options.graph_optimization` so the
    work is not done again at load time, and its `extra["threads"]` is the default thread count when
    `options.threads` is None.
    """
    comp = manifest.components[name]
    level = str(comp.extra.get("graph_optimization") or options.graph_optimization)
    if level not in _LEVELS:
        raise ModelError(f"{comp.file}: unknown graph_optimization {level!r} in manifest (known: {', '.join(_LEVELS)})")
    session = component_session(root, comp, options.threads, level)
    if name == "acoustic":
        return AcousticSession(session, comp.inputs, comp.outputs)
    return _Vocoder(session, comp.inputs, comp.outputs, onnx_width(root / comp.file))


def graph_sessions(
    manifest: Manifest,
    root: Path,
    options: Any,
    names: Sequence[str],
    loop: str,
    fp16_max_level: str | None = None,
) -> dict[str, Any]:
    """Sessions of the named graph components of a host-loop family (`loop` names it in errors), each
    opened by its format's `graph_loader` in the backend table (speedy.backends.FORMATS) with its recorded
    settings; `fp16_max_level` caps the ONNX Runtime level of FP16 graphs."""
    from speedy.backends import FORMATS, fmt, resolve

    sessions: dict[str, Any] = {}
    for name in names:
        comp = manifest.components.get(name)
        if comp is None:
            raise ModelError(f"{loop} artifact: no {name} component")
        record = fmt(comp.format)
        if record is None or record.graph_loader is None:
            takes = " or ".join(f.name for f in FORMATS if f.graph_loader)
            raise ModelError(f"{loop} artifact: {name} is {comp.format}; the {loop} loop runs {takes} graphs only")
        sessions[name] = resolve(record.graph_loader)(root, comp, options, fp16_max_level)
    return sessions


def ort_graph_session(root: Path, comp: Any, options: Any, fp16_max_level: str | None = None):
    """An ONNX Runtime session for one host-loop graph at its recorded optimisation level and threads."""
    level = str(comp.extra.get("graph_optimization") or options.graph_optimization)
    if level not in _LEVELS:
        raise ModelError(f"{comp.file}: unknown graph_optimization {level!r} in manifest")
    if fp16_max_level and comp.precision == "fp16" and level == "all":
        level = fp16_max_level
    return component_session(root, comp, options.threads, level)


def component_session(root: Path, comp: Any, threads: int | None, level: str):  # -> ort.InferenceSession
    """A session for one manifest component with the session settings it records in `extra`:
    ``threads`` (used when `threads` is None), ``max_threads`` (a cap on the intra-op threads: a graph of
    many tiny sequential ops, such as an autoregressive decoder step, can run faster on fewer threads than
    the runtime is given) and ``session_config`` (ORT session config entries)."""
    n = threads or comp.extra.get("threads")
    cap = comp.extra.get("max_threads")
    if cap:
        n = min(int(n or os.cpu_count() or 1), int(cap))
    config = comp.extra.get("session_config")
    if config is not None and not isinstance(config, Mapping):
        raise ModelError(f"{comp.file}: extra['session_config'] must be a mapping of ORT config entries")
    return make_session(root / comp.file, n, level, config)
