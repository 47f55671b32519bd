"""Quantize stage: an FP32 ONNX artifact → INT8 (dynamic or calibrated static QDQ), FP16, or mixed.

Uses ONNX Runtime's quantization tools. Recipes are named, validated presets that say which operator
types they quantize per component: on CPU an INT8 convolution is not always faster than FP32, so the
op types are chosen by measurement (see the comments on each preset) and `--op-types` overrides them.
Calibration inputs come from `calibration/calib.txt` run through the real frontend, and for the vocoder
through the FP32 acoustic model, so the vocoder is calibrated on the mels it will really see.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import (
    Component,
    Manifest,
    atomic_artifact,
    lineage_step,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.errors import InputError
from speedy.stages.int8 import int8_components, with_family_scopes
from speedy.stages.mixed import keep_float

_LOGGER = logging.getLogger(__name__)

RECIPES = ("int8-dynamic", "int8-static", "int8-hybrid", "fp16", "mixed")
#: Acoustic-model blocks that run at frame rate, after the length regulator: quantizing them can
#: never change durations. Node names come from the torch exporter's module scopes.
_FRAME_RATE_SCOPES: dict[str, tuple[str, ...]] = {"acoustic": ("/decoder", "/postnet")}
#: The frame-rate convolutions that int8-hybrid quantizes (the postnet's mel-in and mel-out convs stay float).
_HYBRID_SCOPES: dict[str, tuple[str, ...]] = {"acoustic": ("/decoder", "/postnet.1/", "/postnet.2/", "/postnet.3/")}
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
COMPONENTS = ("acoustic", "vocoder")


@dataclass(frozen=True)
class QuantRecipe:
    """A quantization preset.

    op_types: per component, the ONNX op types to quantize (empty = leave that component in float).
    scopes: per component, node-name prefixes to quantize (missing = every node of those op types).
    calib_sentences: how many calibration sentences feed the calibrator (static and mixed).
    max_mcd: quality budget in dB (mixed only): nodes stay in float until MCD vs FP32 is within it.
    """

    name: str
    op_types: Mapping[str, tuple[str, ...]]
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    per_channel: bool = True
    calibration: str = "percentile"
    calib_sentences: int = 48
    max_mcd: float = 1.0
    check_sentences: int = 6

    def __post_init__(self) -> None:
        if self.name not in RECIPES:
            raise InputError(f"unknown recipe {self.name!r}; choose one of: {', '.join(RECIPES)}, auto")
        if self.calibration not in CALIBRATION_METHODS:
            raise InputError(
                f"unknown calibration method {self.calibration!r}; choose one of: " f"{', '.join(CALIBRATION_METHODS)}"
            )
        if not 1 <= self.calib_sentences <= 5000:
            raise InputError(f"--calib-sentences must be in [1, 5000], got {self.calib_sentences}")
        if not (self.max_mcd > 0 and np.isfinite(self.max_mcd)):
            raise InputError(f"--max-mcd must be a positive number of dB, got {self.max_mcd}")
        unknown = set(self.op_types) - set(COMPONENTS)
        if unknown:
            raise InputError(f"op types given for unknown component(s): {', '.join(sorted(unknown))}")

    # Named factories (optimum's AutoQuantizationConfig pattern). Defaults were chosen by measurement
    # on the default voice, 2 cores with AVX-512 VNNI: see docs/benchmarks.md and the closing notes.
    @classmethod
    def int8_dynamic(cls) -> QuantRecipe:
        # Dynamic INT8 quantizes activations at run time. Only the frame-rate convolutions after the
        # length regulator (decoder FFN, postnet) are worth it; the encoder and the duration / pitch /
        # energy predictors stay float so durations never change. The vocoder stays float: ORT's
        # dynamic ConvInteger path has no fused kernel for its small, dilated convolutions.
        return cls("int8-dynamic", {"acoustic": ("Conv",), "vocoder": ()}, scopes=_FRAME_RATE_SCOPES)

    @classmethod
    def int8_static(cls, calibration: str = "percentile") -> QuantRecipe:
        # Static QDQ, per-channel weights: ORT fuses QDQ pairs into QLinearConv, which uses VNNI.
        # Profiled on the default voice (1 thread): decoder FFN + postnet convs are ~68 % of the
        # acoustic model's time, the vocoder's residual-stack convs ~60 % of the vocoder's.
        # Upsampling ConvTranspose has no QLinear kernel on CPU (it would only gain Q/DQ overhead),
        # and the fixed PQMF filters and the output convs stay float. Percentile calibration:
        # min/max ranges let rare activation outliers waste the 8-bit range (measured MCD 5.0 dB
        # with minmax vs 3.8 dB with percentile on the vocoder stacks).
        return cls(
            "int8-static",
            {"acoustic": ("Conv",), "vocoder": ("Conv",)},
            scopes={**_FRAME_RATE_SCOPES, "vocoder": ("/stacks",)},
            calibration=calibration,
        )

    @classmethod
    def int8_hybrid(cls) -> QuantRecipe:
        # What the shipped TFLite FastSpeech2 does: per-channel INT8 weights, activations quantized at run
        # time, INT8 × INT8 GEMM. ORT's INT8 GEMM (DynamicQuantizeMatMul) uses VNNI where the CPU has it
        # and its INT8 convolutions do not, so the frame-rate convolutions are first rewritten as unfold +
        # MatMul (`speedy.stages.conv_gemm`), with SmoothQuant scales from the calibration text (measured
        # on 3 held-out sentences: decoder-FFN acoustic MCD 2.23 dB without, 1.46 dB with α = 0.5; one
        # decoder.2 channel is 39× its layer's median). The postnet's first and last convs (mel in, mel
        # residual out) stay float (2.57 dB with them, 0.39 dB for the middle three alone), as do the
        # decoder's attention projections (1.57 dB) and everything before the length regulator, so
        # durations cannot change. The vocoder stays float: dynamic INT8 on its stacks measured
        # 3.7–4.2 dB MCD with no speed gain on the default voice.
        return cls("int8-hybrid", {"acoustic": ("Conv",), "vocoder": ()}, scopes=_HYBRID_SCOPES, calib_sentences=48)

    @classmethod
    def mixed(cls, max_mcd: float = 1.0, calibration: str = "percentile") -> QuantRecipe:
        # Start from int8-static and keep the most sensitive blocks in float (measured, greedy)
        # until MCD against FP32 is within the budget.
        return replace(cls.int8_static(calibration), name="mixed", max_mcd=max_mcd)

    @classmethod
    def fp16(cls) -> QuantRecipe:
        # FP16 weights and compute with float32 graph inputs/outputs: halves the size; on CPUs without
        # native FP16 arithmetic ORT inserts casts, so this is a size (and GPU) recipe, not a CPU speed one.
        return cls("fp16", {"acoustic": ("*",), "vocoder": ("*",)})

    @classmethod
    def named(cls, name: str, **overrides: Any) -> QuantRecipe:
        """Build a preset by CLI name, then apply the non-None overrides."""
        factories: dict[str, Callable[[], QuantRecipe]] = {
            "int8-dynamic": cls.int8_dynamic,
            "int8-static": cls.int8_static,
            "int8-hybrid": cls.int8_hybrid,
            "fp16": cls.fp16,
            "mixed": cls.mixed,
        }
        if name not in factories:
            raise InputError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}, auto")
        recipe = factories[name]()
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(recipe, **clean) if clean else recipe


def parse_op_types(spec: str) -> dict[str, tuple[str, ...]]:
    """'acoustic=MatMul,Conv;vocoder=Conv' → {...}; 'Conv,MatMul' applies to both components."""
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if "=" in part:
            comp, ops = part.split("=", 1)
            comp = comp.strip()
            if comp not in COMPONENTS:
                raise InputError(f"--op-types: unknown component {comp!r} (acoustic or vocoder)")
            out[comp] = tuple(o.strip() for o in ops.split(",") if o.strip())
        else:
            ops_t = tuple(o.strip() for o in part.split(",") if o.strip())
            out = {c: ops_t for c in COMPONENTS}
    if not out:
        raise InputError("--op-types is empty")
    return out


# ---- the stage --------------------------------------------------------------------------------------
def quantize(
    source: Path,
    out: Path,
    recipe: QuantRecipe,
    *,
    calibration_text: Sequence[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    sensitivity: Path | None = None,
    graphs: Sequence[str] | None = None,
) -> Manifest:
    """Quantize the FP32 ONNX artifact at `source` into `out` with `recipe`; returns the new manifest.

    `sensitivity`: a `speedy analyze --json` report that ranks layers for the mixed recipe.
    `graphs`: for a host-loop family with its own INT8 policy (ttskit), the graphs to make INT8 instead of the
    policy's default (examples/ttskit_int8.py measures the INT8 vocoder so); recorded in the lineage.
    """
    if sensitivity is not None and recipe.name != "mixed":
        raise InputError("--sensitivity is only used by --recipe mixed")
    if graphs is not None and recipe.name == "fp16":
        raise InputError("quantize: a choice of graphs is only used by INT8 recipes")
    say = progress or (lambda m: _LOGGER.info(m))
    src = read_manifest(source)
    for name, c in src.components.items():
        if c.format != "onnx":
            raise InputError(f"quantize: {name} is {c.format}; quantize takes an ONNX artifact (run 'speedy export')")
        if c.precision != "fp32":
            raise InputError(f"quantize: {name} is already {c.precision}; quantize an FP32 export")
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if recipe.name == "fp16":
            comps = {n: _fp16(source / c.file, staging / c.file, c) for n, c in src.components.items()}
            report: dict[str, object] = {}
        else:
            if calibration_text is None:
                from speedy.corpus import load_corpus

                calibration_text = load_corpus("calib")
            recipe = with_family_scopes(src, recipe)  # the mixed search's trials must touch the same nodes
            comps, report = int8_components(src, Path(source), staging, tmp, recipe, calibration_text, say, graphs)
            if recipe.name == "mixed":  # multi-graph families' own INT8 hooks refuse mixed
                comps, report = keep_float(
                    src, Path(source), staging, tmp, comps, recipe, calibration_text, say, sensitivity
                )
        step = lineage_step(
            "quantize",
            {
                "recipe": recipe.name,
                "op_types": {k: list(v) for k, v in recipe.op_types.items()},
                "per_channel": recipe.per_channel,
                "calibration": recipe.calibration,
                "calib_sentences": recipe.calib_sentences,
                "max_mcd": recipe.max_mcd,
                **({"graphs": list(graphs)} if graphs is not None else {}),
            },
            time.perf_counter() - start,
            "onnxruntime",
            "onnx",
        )
        manifest = src.with_step(step, components=comps, extra={**dict(src.extra), "quantize": report})
        write_manifest(staging, manifest)
    return manifest


def _fp16(src: Path, dst: Path, comp: Component) -> Component:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    # keep_io_types: callers keep feeding float32 mels and controls; Range/Cast-heavy index maths
    # stays float32 because the converter leaves ops it cannot run in fp16 untouched.
    model16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    onnx.save(model16, str(dst))
    return replace(comp, precision="fp16", sha256=sha256_file(dst), extra={**dict(comp.extra), "op_types": ["*"]})
