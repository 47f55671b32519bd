"""`speedy compile --backend tensorrt`: engines built from the ONNX graphs (the runner is in
speedy.runtime.tensorrt_backend).

Needs the `tensorrt` extra (tensorrt + pycuda) and a CUDA GPU; both are imported inside the functions
that need them, and a missing one is a one-line `MissingExtraError` / `ModelError` (exit 3). The
profile computation and the input checks import neither, so they are unit-tested on any machine.

One optimisation profile per engine: min/opt/max shapes per dynamic input from --max-seq-len (tokens)
and --max-frames (mel frames).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Component, Manifest, replace_component
from speedy.errors import InputError, ModelError
from speedy.runtime.tensorrt_backend import ENGINE_SUFFIX, require_gpu

_LOGGER = logging.getLogger(__name__)

WORKSPACE_BYTES = 2 << 30
#: "opt" shapes: a typical sentence (≈ 40 ids, 3 s of audio), capped by the max.
OPT_TOKENS = 48
OPT_FRAMES = 256
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
INT8_DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul"})

Shape = tuple[int, ...]


def onnx_input_shapes(path: Path) -> dict[str, list[int | str]]:
    """Graph inputs of an ONNX file: name → dims, an int for a fixed dim, the dim_param name for a dynamic one."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    out: dict[str, list[int | str]] = {}
    for inp in model.graph.input:
        if inp.name in init:
            continue
        dims = inp.type.tensor_type.shape.dim
        out[inp.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    return out


def dim_bounds(max_seq_len: int, max_frames: int, min_frames: int = 1) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) per named dynamic axis: "tokens" (phoneme ids) and "frames" (mel frames)."""
    if max_seq_len < 1 or max_frames < min_frames or min_frames < 1:
        raise ModelError(f"bad profile bounds: max_seq_len {max_seq_len}, frames [{min_frames}, {max_frames}]")
    return {
        "tokens": (1, min(OPT_TOKENS, max_seq_len), max_seq_len),
        "frames": (min_frames, min(max(OPT_FRAMES, min_frames), max_frames), max_frames),
    }


def profile_shapes(
    inputs: Mapping[str, list[int | str]], bounds: Mapping[str, tuple[int, int, int]]
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """min/opt/max shapes of every input with a dynamic dim (others need no profile entry).

    A dynamic dim named in `bounds` takes its (min, opt, max); any other dynamic dim (e.g. an unnamed
    batch) is fixed to 1. Raises ModelError naming an input whose dim is dynamic but unknown to `bounds`
    only when it is not a leading batch-like dim.
    """
    out: dict[str, tuple[Shape, Shape, Shape]] = {}
    for name, dims in inputs.items():
        if all(isinstance(d, int) and d > 0 for d in dims):
            continue
        lo, opt, hi = [], [], []
        for axis, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                b = (d, d, d)
            elif d in bounds:
                b = bounds[str(d)]
            elif axis == 0:
                b = (1, 1, 1)
            else:
                raise ModelError(
                    f"{name}: dynamic axis {axis} ({d!r}) has no profile bound; " f"known: {', '.join(bounds)}"
                )
            lo.append(b[0])
            opt.append(b[1])
            hi.append(b[2])
        out[name] = (tuple(lo), tuple(opt), tuple(hi))
    return out


def quantization_kind(path: Path) -> str | None:
    """ "qdq" (static INT8, Q/DQ pairs), "dynamic" (integer ops quantized at run time) or None (float)."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    if ops & INT8_DYNAMIC_OPS:
        return "dynamic"
    if ops & QDQ_OPS:
        return "qdq"
    return None


def validate_options(config: Any) -> None:
    """The backend's own option rule, checked when the CompileConfig is made: INT8 engines need
    calibration batches."""
    if config.precision == "int8" and config.int8_calib is None:
        raise InputError(
            "--precision int8 with the tensorrt backend needs --int8-calib DIR (calibration batches), or use "
            "--precision fp16"
        )


def preflight(src: Manifest, source: Path, config: Any) -> None:
    """Refuse, before any work, an input the tensorrt backend cannot build, then a machine without it.

    Order: the input's quantization (no GPU needed), then the tensorrt / pycuda imports, then a CUDA GPU.
    """
    for comp in src.components.values():
        kind = quantization_kind(Path(source) / comp.file)
        if kind == "dynamic":
            raise ModelError(
                f"compile: {comp.file} is INT8 dynamic (integer ops quantized at run time); the "
                "tensorrt backend needs an FP32/FP16 input or a static INT8 QDQ one"
            )
        if kind == "qdq" and config.int8_calib is None:
            raise ModelError(
                f"compile: {comp.file} is INT8 QDQ; the tensorrt backend needs --int8-calib or an " "FP32/FP16 input"
            )
    require_gpu()


def compile_tensorrt(
    src: Manifest, source: Path, staging: Path, config: Any, checks: Any, say: Any
) -> tuple[dict[str, Component], dict[str, Any]]:
    """Build `<name>.engine` per component into `staging`; returns (components, notes per component)."""
    import tensorrt as trt

    gpu = require_gpu()
    bounds = dim_bounds(config.max_seq_len, config.max_frames, max(1, src.audio.min_vocoder_frames))
    comps: dict[str, Component] = {}
    notes: dict[str, Any] = {}
    for name, comp in src.components.items():
        onnx_path = Path(source) / comp.file
        profiles = profile_shapes(onnx_input_shapes(onnx_path), bounds)
        say(f"{name}: building a TensorRT {config.precision} engine (this takes minutes)")
        engine = build_engine(
            onnx_path,
            profiles,
            config.precision,
            int(config.level),
            config.int8_calib if quantization_kind(onnx_path) is None else None,
        )
        out = staging / f"{name}{ENGINE_SUFFIX}"
        out.write_bytes(engine)
        prof = {k: [list(s) for s in v] for k, v in profiles.items()}
        comps[name] = replace_component(
            comp,
            out,
            "tensorrt",
            config.precision,
            profiles=prof,
            gpu=gpu,
            tensorrt=trt.__version__,
            builder_optimization_level=int(config.level),
        )
        notes[name] = {"profiles": prof, "gpu": gpu}
    return comps, notes


def build_engine(
    onnx_path: Path,
    profiles: Mapping[str, tuple[Shape, Shape, Shape]],
    precision: str,
    level: int,
    int8_calib: Path | None,
) -> bytes:
    """Parse the ONNX graph and build a serialized engine with one optimisation profile."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = (
        0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"compile: TensorRT cannot parse {onnx_path.name}: {errs[:300]}")
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    cfg.builder_optimization_level = level
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profiles.items():
        profile.set_shape(name, lo, opt, hi)
    cfg.add_optimization_profile(profile)
    if precision == "fp16":
        cfg.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        cfg.set_flag(trt.BuilderFlag.INT8)
        cfg.set_flag(trt.BuilderFlag.FP16)
        if int8_calib is not None:  # implicit INT8 from a float graph (a QDQ graph carries its own scales)
            cfg.int8_calibrator = _npz_calibrator(int8_calib, profiles, onnx_path.with_suffix(".calib.cache"))
            cfg.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, cfg)
    if serialized is None:
        raise ModelError(f"compile: TensorRT could not build an engine for {onnx_path.name} (see its log above)")
    return bytes(serialized)


def _npz_calibrator(folder: Path, profiles: Mapping[str, tuple[Shape, Shape, Shape]], cache: Path) -> Any:
    """An entropy calibrator fed one .npz per batch from `folder` (arrays named after the graph inputs)."""
    import pycuda.driver as cuda
    import tensorrt as trt

    files = sorted(Path(folder).glob("*.npz"))
    if not files:
        raise ModelError(f"--int8-calib {folder}: no .npz calibration batches in it")

    class NpzCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.files = iter(files)
            self.buffers: dict[str, Any] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            f = next(self.files, None)
            if f is None:
                return None
            with np.load(f) as data:
                ptrs = []
                for n in names:
                    arr = np.ascontiguousarray(data[n])
                    self.buffers[n] = cuda.mem_alloc(max(arr.nbytes, 1))
                    cuda.memcpy_htod(self.buffers[n], arr)
                    ptrs.append(int(self.buffers[n]))
            return ptrs

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data: Any) -> None:
            _LOGGER.debug("calibration cache not kept (%d bytes)", len(bytes(data)))

    return NpzCalibrator()
