"""The one backend table: what each runtime backend reads, writes, loads, compiles, needs and offers.

`speedy compile` (options, validation, the compiler and its preflight), `quantize --recipe auto` (which
backends it may place a component on), `speedy.runtime.load_runner` (format → loader), `speedy info`,
`speedy bench` and `--help` all read these records; nothing else spells a backend's properties. Loaders,
compilers and preflights are "module:function" strings resolved on use, so this module imports neither
runtime nor stages, and a backend's heavy library is imported only when that backend is used.

Adding a backend = one `Backend` record (plus `Format` records for the component formats it writes) and
its modules (a compiler under `speedy/stages/`, a loader under `speedy/runtime/`).
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from speedy.errors import InputError

#: The CPU vector extensions that decide which artifact is fastest (INT8 GEMMs are ~2x FP32 with AVX2 and
#: 3-4x with VNNI; bf16 needs AVX512_BF16 or AMX), in the order the bench prints them.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_int8",
    "amx_bf16",
    "asimddp",
    "sve",
)


@dataclass(frozen=True)
class Backend:
    """One runtime backend.

    name: the `--backend` value. reads: component formats `compile` takes from its source.
    writes: the component format it writes (a `Format` below). compiler / preflight: "module:function"
    (preflight refuses an unusable input or machine before any work; optional). precisions: compile's
    `--precision` values, the first the default. levels: `--opt-level` values (empty: takes none), with
    `default_level`. extra: the pip extra that installs it (None: core). libs: libraries whose versions the
    lineage records. needs: hardware every use needs ("cuda"). precision_needs: per precision, CPU flags of
    which at least one must be present (`ISA_FLAGS` names). options: compile options only this backend
    reads (CompileConfig field → the precision it goes with, "" = any). validate: "module:function" checking
    the backend's own option combinations when the config is made (InputError). multi_graph: takes host-loop families (their
    graphs are loaded through `Format.graph_loader`). auto: `quantize --recipe auto --backends` may place
    components on it. summary: one line for `--help` and `speedy info`.
    """

    name: str
    reads: tuple[str, ...]
    writes: str
    compiler: str
    summary: str
    precisions: tuple[str, ...] = ("fp32",)
    preflight: str | None = None
    levels: tuple[str, ...] = ()
    default_level: str = ""
    extra: str | None = None
    libs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    precision_needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    validate: str | None = None
    multi_graph: bool = False
    auto: bool = False


@dataclass(frozen=True)
class Format:
    """A component format in a manifest and the runtime code that loads it.

    loader: "module:function" `(manifest, name, root, RuntimeOptions) -> runner` (speedy.runtime's
    protocols). graph_loader: "module:function" `(root, component, RuntimeOptions, fp16_max_level) ->
    session` with an ORT-like `run(output_names, feeds)`, for the graphs of a host-loop family (None: not
    usable there).
    backend: the `Backend` that runs it. artifact: how an error names an artifact of this format.
    """

    name: str
    loader: str
    backend: str
    graph_loader: str | None = None
    artifact: str = ""


BACKENDS: tuple[Backend, ...] = (
    Backend(
        name="onnxruntime",
        reads=("onnx",),
        writes="onnx",
        compiler="speedy.stages.compile_ort:compile_ort",
        summary="ONNX artifact in; each graph optimised offline (the acoustic model also through ONNX Runtime's "
        "transformer fusions when they keep its output in tolerance), loaded without optimising again",
        levels=("basic", "extended", "all"),
        # "extended", measured on the default voice with onnxruntime 1.32: the graph saved at "all" is identical
        # to the one saved at "extended" (the extra level-3 pass is the NCHWc layout transform, which rewrites
        # 2-D convolutions only; these models use 1-D ones), and where it does apply it bakes the compiling CPU's
        # vector block size (AVX2 8 / AVX-512 16) into the file. "extended" keeps the artifact portable across
        # x86 CPUs and loses nothing here. Its fused ops (FusedConv, SkipLayerNormalization) are CPU-EP ops.
        default_level="extended",
        libs=("onnx", "onnxruntime"),
        multi_graph=True,
        auto=True,
    ),
    Backend(
        name="openvino",
        reads=("onnx",),
        writes="openvino",
        compiler="speedy.stages.compile_openvino:compile_openvino",
        preflight="speedy.stages.compile_openvino:preflight",
        summary="ONNX artifact in; OpenVINO IR out, run in f32, bf16 (the inference-precision hint; needs "
        "AVX512_BF16 or AMX) or INT8 (NNCF post-training quantization on the calibration text)",
        precisions=("fp32", "bf16", "int8"),
        extra="openvino",
        libs=("openvino", "nncf"),
        precision_needs={"bf16": ("avx512_bf16", "amx_bf16")},
        multi_graph=True,
        auto=True,
    ),
    Backend(
        name="tensorrt",
        reads=("onnx",),
        writes="tensorrt",
        compiler="speedy.stages.compile_trt:compile_tensorrt",
        preflight="speedy.stages.compile_trt:preflight",
        summary="ONNX artifact in; TensorRT engines with one profile from --max-seq-len / --max-frames "
        "(fp16, or int8 with --int8-calib); needs a CUDA GPU",
        precisions=("fp32", "fp16", "int8"),
        levels=("0", "1", "2", "3", "4", "5"),
        default_level="3",
        extra="tensorrt",
        libs=("onnx", "tensorrt"),
        options={"int8_calib": "int8"},
        validate="speedy.stages.compile_trt:validate_options",
        needs=("cuda",),
    ),
    Backend(
        name="torch",
        reads=("torch",),
        writes="torch-export",
        compiler="speedy.stages.compile_torch:compile_torch_export",
        summary="torch artifact in (e.g. the default voice's); torch.export programs (.pt2) with dynamic "
        "token and frame counts",
        extra="export",
        libs=("torch",),
    ),
)

FORMATS: tuple[Format, ...] = (
    Format(
        "onnx",
        "speedy.runtime.onnx_backend:load_component",
        "onnxruntime",
        graph_loader="speedy.runtime.onnx_backend:ort_graph_session",
        artifact="an ONNX artifact (run 'speedy export' first)",
    ),
    Format(
        "openvino",
        "speedy.runtime.openvino_backend:load_component",
        "openvino",
        graph_loader="speedy.runtime.openvino_backend:graph_session",
    ),
    Format("tensorrt", "speedy.runtime.tensorrt_backend:load_component", "tensorrt"),
    Format(
        "torch",
        "speedy.runtime.torch_backend:load_component",
        "torch",
        artifact="a torch artifact (e.g. the default voice's)",
    ),
    Format("torchscript", "speedy.runtime.torch_backend:load_torchscript", "torch"),
    Format("torch-export", "speedy.runtime.torch_backend:load_torch_export", "torch"),
)

NAMES: tuple[str, ...] = tuple(b.name for b in BACKENDS)
#: every precision some backend's compile takes, in table order
COMPILE_PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(p for b in BACKENDS for p in b.precisions))
AUTO_NAMES: tuple[str, ...] = tuple(b.name for b in BACKENDS if b.auto)


def backend(name: str) -> Backend:
    """The record named `name`; InputError (exit 2) listing the known names otherwise."""
    for b in BACKENDS:
        if b.name == name:
            return b
    raise InputError(f"--backend {name!r} is unknown; choose one of: {', '.join(NAMES)}")


def fmt(name: str) -> Format | None:
    """The record of component format `name` (None: no runtime loads it)."""
    return next((f for f in FORMATS if f.name == name), None)


def resolve(target: str) -> Callable[..., Any]:
    """Import and return the function a "module:function" string names."""
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


@cache
def cpu_isa() -> tuple[str, ...]:
    """This CPU's `ISA_FLAGS` (from /proc/cpuinfo; empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key in ("flags", "features"):
                have = set(line.split(":", 1)[1].split())
                return tuple(f for f in ISA_FLAGS if f in have)
    except OSError:
        pass
    return ()


def missing_isa(any_of: tuple[str, ...] | list[str], isa: tuple[str, ...] | None = None) -> str | None:
    """None when `isa` (this CPU's by default) has at least one of `any_of`; else a phrase naming them."""
    have = cpu_isa() if isa is None else isa
    if not any_of or any(f in have for f in any_of):
        return None
    return (
        f"needs a CPU with {' or '.join(f.upper() for f in any_of)}; this one has {', '.join(have) or 'none of them'}"
    )


def help_text(width: int = 88) -> str:
    """One block per backend for `--help` (click's \\b keeps the lines as written)."""
    lines = ["\b"]
    for b in BACKENDS:
        extra = f"; pip extra '{b.extra}'" if b.extra else ""
        rows = textwrap.wrap(f"{b.summary} (--precision {'/'.join(b.precisions)}{extra})", width)
        lines += [f"{b.name:<12} {rows[0]}", *(f"{'':<12} {r}" for r in rows[1:])]
    return "\n".join(lines)
