"""Compile stage: an artifact → the same voice prepared for one runtime backend.

Backends:
  onnxruntime  ONNX artifact in → offline-optimised ONNX graphs out (format "onnx"). The acoustic model
               first goes through ONNX Runtime's transformer optimizer (fusions kept only if the output
               stays within the family's tolerance), then every graph is optimised once at the chosen
               level and saved, so that the runtime loads it with that level recorded in the component's
               `extra["graph_optimization"]` and skips the work at load time.
  tensorrt     ONNX artifact in → serialized TensorRT engines (format "tensorrt") with optimisation
               profiles from --max-seq-len / --max-frames. Needs the `tensorrt` extra and a CUDA GPU.
  torch        torch artifact in → `torch.export` programs (.pt2, format "torch-export") with dynamic
               token / frame counts.
  openvino     FP32 ONNX artifact in → OpenVINO IR (.xml + .bin, format "openvino") at fp32, bf16 (the
               FP32 IR run with the bf16 precision hint) or int8 (NNCF post-training quantization,
               calibrated on the calibration text). Needs the `openvino` extra (int8: nncf too).

Every compiled component is run against its source on the same inputs and compared with the family's
export tolerances (`speedy.families.graph_spec`); a difference beyond them raises `CompileParityError`.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from speedy.artifacts import (
    Manifest,
    atomic_artifact,
    lineage_step,
    read_manifest,
    write_manifest,
)
from speedy.errors import InputError
from speedy.families import lookup
from speedy.stages.parity import CheckSet, ParityError, build_check_set, compare_runner, family_spec

_LOGGER = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "tensorrt", "torch", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
#: backend -> the precisions it builds (fp32 first: the default)
BACKEND_PRECISIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("fp32",),
    "tensorrt": ("fp32", "fp16", "int8"),
    "torch": ("fp32",),
    "openvino": ("fp32", "bf16", "int8"),
}
#: backends whose compiler converts every graph of a multi-graph (host-loop) family
MULTI_GRAPH_BACKENDS = ("onnxruntime", "openvino")
ORT_LEVELS = ("basic", "extended", "all")
#: "extended", measured on the default voice with onnxruntime 1.32: the graph saved at "all" is identical
#: to the one saved at "extended" (the extra level-3 pass is the NCHWc layout transform, which rewrites
#: 2-D convolutions only; these models use 1-D ones), and where it does apply it bakes the compiling CPU's
#: vector block size (AVX2 8 / AVX-512 16) into the file. "extended" keeps the artifact portable across
#: x86 CPUs and loses nothing here. Its fused ops (FusedConv, SkipLayerNormalization) are CPU-EP ops.
ORT_DEFAULT_LEVEL = "extended"
TRT_DEFAULT_LEVEL = "3"


class CompileParityError(ParityError):
    """The compiled component disagrees with its source beyond the family's tolerance."""


@dataclass(frozen=True)
class CompileConfig:
    """Options of the compile stage.

    backend: "onnxruntime" | "tensorrt" | "torch" | "openvino".
    threads: intra-op threads stored as the artifact's default and used for the checks (None = all cores).
    precision: target precision (BACKEND_PRECISIONS): tensorrt builds "fp16", or "int8" with `int8_calib`;
        openvino builds "bf16" or "int8"; onnxruntime and torch keep the source's precision and take
        "fp32" (the default).
    max_seq_len: most phoneme ids per sentence the compiled acoustic model must take (tensorrt profiles,
        torch.export dimension bounds).
    max_frames: most mel frames per sentence (12.5 ms each at 24 kHz / hop 300).
    opt_level: onnxruntime graph level ("basic" | "extended" | "all"; default "extended") or the
        TensorRT builder optimisation level ("0".."5"; default "3").
    transformer_fusions: onnxruntime only: try `onnxruntime.transformers.optimizer` on the acoustic model.
    int8_calib: tensorrt + int8 only: a folder of .npz calibration batches (one per sentence; arrays
        named after the graph inputs).
    """

    backend: str = "onnxruntime"
    threads: int | None = None
    precision: str = "fp32"
    max_seq_len: int = 512
    max_frames: int = 2048
    opt_level: str | None = None
    transformer_fusions: bool = True
    int8_calib: Path | None = None
    check: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"--backend {self.backend!r} is unknown; choose one of: {', '.join(BACKENDS)}")
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise InputError(f"--threads must be in [1, 256], got {self.threads}")
        if self.precision not in PRECISIONS:
            raise InputError(f"--precision {self.precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}")
        if self.precision not in BACKEND_PRECISIONS[self.backend]:
            takes = [b for b, ps in BACKEND_PRECISIONS.items() if self.precision in ps]
            raise InputError(
                f"--precision {self.precision} needs --backend {' or '.join(takes)}; the {self.backend} backend "
                f"takes {', '.join(BACKEND_PRECISIONS[self.backend])} (use 'speedy quantize' for INT8/FP16 ONNX)"
            )
        if not 2 <= self.max_seq_len <= 4096:
            raise InputError(f"--max-seq-len must be in [2, 4096], got {self.max_seq_len}")
        if not 16 <= self.max_frames <= 65536:
            raise InputError(f"--max-frames must be in [16, 65536], got {self.max_frames}")
        if self.opt_level is not None:
            ok = {"onnxruntime": ORT_LEVELS, "tensorrt": ("0", "1", "2", "3", "4", "5")}.get(self.backend, ())
            if self.opt_level not in ok:
                what = f"takes one of: {', '.join(ok)}" if ok else "takes no --opt-level"
                raise InputError(f"--opt-level {self.opt_level!r}: the {self.backend} backend {what}")
        if self.backend == "tensorrt" and self.precision == "int8" and self.int8_calib is None:
            raise InputError(
                "--precision int8 with the tensorrt backend needs --int8-calib DIR (calibration "
                "batches), or use --precision fp16"
            )
        if self.int8_calib is not None and not (self.backend == "tensorrt" and self.precision == "int8"):
            raise InputError("--int8-calib is only used with --backend tensorrt --precision int8")

    @property
    def level(self) -> str:
        """The effective optimisation level for the backend."""
        if self.opt_level is not None:
            return self.opt_level
        return {"onnxruntime": ORT_DEFAULT_LEVEL, "tensorrt": TRT_DEFAULT_LEVEL}.get(self.backend, "")

    def options(self) -> dict[str, Any]:
        """The options as recorded in the lineage (level resolved)."""
        d = asdict(self)
        d["opt_level"] = self.level
        d["int8_calib"] = str(self.int8_calib) if self.int8_calib else None
        return d


def compile_artifact(
    source: Path,
    out: Path,
    config: CompileConfig,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Compile the artifact at `source` for `config.backend` into `out` (atomic folder write).

    Returns the written manifest; `extra["compile"]` holds per-component notes (fusions, profiles,
    reasons for what was kept as it was) and `extra["parity"]` the figures against the source.
    Raises InputError (wrong kind of source, bad options), ModelError / MissingExtraError (exit 3:
    no GPU, missing extra, unusable input) or CompileParityError.
    """
    say = progress or (lambda m: _LOGGER.info(m))
    source = Path(source)
    src = read_manifest(source)
    _check_source(src, source, config)
    family = lookup(src.family)
    graphs = family is not None and family.multi_graph  # host-loop family: checked through its loop
    if graphs and config.backend not in MULTI_GRAPH_BACKENDS:
        raise InputError(
            f"compile: {source} is a multi-graph {src.family} artifact; only --backend "
            f"{' or '.join(MULTI_GRAPH_BACKENDS)} takes it"
        )
    if graphs and family is not None and config.check and not family.verify:
        raise InputError(
            f"compile: {family.name} artifacts have no host-loop check yet; use the ONNX artifact "
            "as it is (or pass --no-check)"
        )
    spec = None if graphs else family_spec(src, "compile")
    if config.backend in _PREFLIGHT:
        _resolve(_PREFLIGHT[config.backend])(src, source, config)
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        # spec is None exactly for a multi-graph family
        checks = (
            build_check_set(src, source, spec, threads=config.threads) if config.check and spec is not None else None
        )
        comps, notes = _resolve(_COMPILERS[config.backend])(src, source, staging, config, checks, say)
        manifest = replace(src, components=comps, extra={**dict(src.extra), "compile": notes})
        figures: list[dict] = []
        if config.check and graphs:
            assert family is not None
            say("checking the compiled graphs against the source through the host loop")
            figures = family.hook("verify")(
                src,
                source,
                manifest,
                staging,
                config.threads,
                strict=config.precision == "fp32",
                error=CompileParityError,
            )
        elif checks is not None:
            say("checking the compiled components against the source")
            figures = verify(manifest, staging, checks, spec, config.threads, strict=config.precision == "fp32")
        step = lineage_step(
            "compile", {**config.options(), "source": str(source)}, time.perf_counter() - start, *_libs(config.backend)
        )
        manifest = manifest.with_step(step, extra={**dict(manifest.extra), "parity": figures})
        write_manifest(staging, manifest)
    return manifest


#: backend -> "module:function" writing its components (imported only when that backend is used).
_COMPILERS: dict[str, str] = {
    "onnxruntime": "speedy.stages.compile_ort:compile_ort",
    "tensorrt": "speedy.stages.compile_trt:compile_tensorrt",
    "torch": "speedy.stages.compile_torch:compile_torch_export",
    "openvino": "speedy.stages.compile_openvino:compile_openvino",
}
#: backend -> "module:function" refusing an unusable input or machine before any work (optional).
_PREFLIGHT: dict[str, str] = {
    "tensorrt": "speedy.stages.compile_trt:preflight",
    "openvino": "speedy.stages.compile_openvino:preflight",
}


def _resolve(target: str) -> Callable[..., Any]:
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def verify(
    manifest: Manifest, root: Path, checks: CheckSet, spec: Any, threads: int | None, strict: bool = True
) -> list[dict]:
    """Load each component of `manifest` through its runtime backend and compare with `checks`.

    `strict=False` reports the figures without enforcing the FP32 tolerances (FP16/INT8 engines).
    """
    from speedy.runtime import RuntimeOptions, load_runner

    figures: list[dict] = []
    opts = RuntimeOptions(threads=threads)
    for name in (n for n in ("acoustic", "vocoder") if n in manifest.components):
        runner = load_runner(manifest, name, root, opts)
        figures += [  # NaN (lengths differ, not comparable) is recorded as null: the manifest stays strict JSON
            {**asdict(f), "value": None if f.value != f.value else f.value, "enforced": strict}
            for f in compare_runner(
                runner, name, spec.component(name), checks, "compile", CompileParityError, strict=strict
            )
        ]
    return figures


def _check_source(src: Manifest, source: Path, config: CompileConfig) -> None:
    formats = {c.format for c in src.components.values()}
    want = "torch" if config.backend == "torch" else "onnx"
    if formats != {want}:
        hint = (
            "a torch artifact (e.g. the default voice's)"
            if want == "torch"
            else "an ONNX artifact (run 'speedy export' first)"
        )
        raise InputError(
            f"compile: {source} has {'/'.join(sorted(formats))} components; the {config.backend} "
            f"backend takes {hint}"
        )


def _libs(backend: str) -> tuple[str, ...]:
    return {
        "onnxruntime": ("onnx", "onnxruntime"),
        "tensorrt": ("onnx", "tensorrt"),
        "torch": ("torch",),
        "openvino": ("onnx", "openvino", "nncf"),
    }[backend]
