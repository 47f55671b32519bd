"""Quantize stage: an FP32 ONNX artifact → INT8 (dynamic or calibrated static QDQ), FP16, or mixed.

Uses ONNX Runtime's quantization tools. Recipes are named, validated presets that say which operator
types they quantize per component: on CPU an INT8 convolution is not always faster than FP32, so the
op types are chosen by measurement (see the comments on each preset) and `--op-types` overrides them.
Calibration inputs come from `calibration/calib.txt` run through the real frontend, and for the vocoder
through the FP32 acoustic model, so the vocoder is calibrated on the mels it will really see.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from speedy.errors import InputError, ModelError
from speedy.families import lookup

_LOGGER = logging.getLogger(__name__)

RECIPES = ("int8-dynamic", "int8-static", "int8-hybrid", "fp16", "mixed")
#: Acoustic-model blocks that run at frame rate, after the length regulator: quantizing them can
#: never change durations. Node names come from the torch exporter's module scopes.
_FRAME_RATE_SCOPES: dict[str, tuple[str, ...]] = {"acoustic": ("/decoder", "/postnet")}
#: The frame-rate convolutions that int8-hybrid quantizes (the postnet's mel-in and mel-out convs stay float).
_HYBRID_SCOPES: dict[str, tuple[str, ...]] = {"acoustic": ("/decoder", "/postnet.1/", "/postnet.2/", "/postnet.3/")}
SMOOTH_ALPHA = 0.6
"""SmoothQuant's migration strength for int8-hybrid. Chosen on the last 6 calibration sentences (a tuning
split, not eval.txt): decoder + postnet mel L1 vs FP32 0.0163 / 0.0139 / 0.0119 / 0.0103 at α = 0.3 / 0.4 /
0.5 / 0.6, and α = 0.8 was worse than 0.5 in MCD."""
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
            raise InputError(f"unknown recipe {self.name!r}; choose one of: {', '.join(RECIPES)}")
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
            raise InputError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
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


# ---- calibration data -----------------------------------------------------------------------------
def calibration_ids(manifest: Manifest, sentences: Sequence[str], limit: int) -> list[np.ndarray]:
    """Phone-id arrays (1, T) int64 from Chinese sentences through the real frontend."""
    from speedy.frontend import text_to_utterances

    if not sentences:
        raise InputError("calibration set is empty")
    han = sum(1 for s in sentences if any("\u4e00" <= ch <= "\u9fff" for ch in s))
    if han < max(1, len(sentences) // 2):
        raise InputError("calibration set is not Chinese text (fewer than half the lines have Han characters)")
    table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
    out: list[np.ndarray] = []
    for text in sentences:
        for utt in text_to_utterances(text):
            out.append(np.asarray([[table[p] for p in utt.phones]], dtype=np.int64))
            if len(out) >= limit:
                return out
    if not out:
        raise InputError("calibration set produced no utterances")
    return out


class CalibrationReader:
    """onnxruntime.quantization.CalibrationDataReader over a list of feed dicts.

    Supports ORT's strided calibration (`set_range`): with a stride of 1 every utterance is collected
    on its own, which the histogram calibrators (entropy, percentile) need because TTS activations
    have a different length per utterance and cannot be stacked into one array.
    """

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.feeds[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)


def acoustic_feeds(comp: Component, ids: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Default controls (speed 1, pitch 0, range 1, energy 1) with each id sequence."""
    names = comp.inputs
    one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
    return [{names[0]: x, names[1]: one, names[2]: zero, names[3]: one, names[4]: one} for x in ids]


def vocoder_feeds(
    acoustic_path: Path, comp: Component, voc: Component, ids: list[np.ndarray], min_frames: int
) -> list[dict[str, np.ndarray]]:
    """Mels made by the FP32 acoustic graph, as the vocoder will see them."""
    from speedy.runtime.onnx_backend import make_session

    sess = make_session(acoustic_path, None)
    feeds = []
    for f in acoustic_feeds(comp, ids):
        mel = sess.run([comp.outputs[0]], f)[0]
        if mel.shape[1] >= min_frames:
            feeds.append({voc.inputs[0]: mel})
    return feeds


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
) -> Manifest:
    """Quantize the FP32 ONNX artifact at `source` into `out` with `recipe`; returns the new manifest.

    `sensitivity`: a `speedy analyze --json` report that ranks layers for the mixed recipe.
    """
    if sensitivity is not None and recipe.name != "mixed":
        raise InputError("--sensitivity is only used by --recipe mixed")
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
            comps, report = _int8(src, Path(source), staging, tmp, recipe, calibration_text, say, sensitivity)
        step = lineage_step(
            "quantize",
            {
                "recipe": recipe.name,
                "op_types": {k: list(v) for k, v in recipe.op_types.items()},
                "per_channel": recipe.per_channel,
                "calibration": recipe.calibration,
                "calib_sentences": recipe.calib_sentences,
                "max_mcd": recipe.max_mcd,
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


def _int8(
    src: Manifest,
    root: Path,
    staging: Path,
    tmp: Path,
    recipe: QuantRecipe,
    text: Sequence[str],
    say: Callable[[str], None],
    sensitivity: Path | None = None,
) -> tuple[dict[str, Component], dict[str, object]]:
    from speedy.stages.mixed import choose_float_groups

    family = lookup(src.family)
    if family is not None and family.quantize:  # multi-graph families: per-graph INT8 through the host loop
        return family.hook("quantize")(src, root, staging, tmp, recipe, text, say)
    ac, vo = src.components["acoustic"], src.components["vocoder"]
    comps: dict[str, Component] = {}
    caches: dict[str, Path] = {}
    feeds: dict[str, list] = {}
    if recipe.name == "int8-hybrid":
        say(f"calibration: {recipe.calib_sentences} sentences through the frontend (activation ranges for SmoothQuant)")
        feeds = {"acoustic": acoustic_feeds(ac, calibration_ids(src, text, recipe.calib_sentences))}
    elif recipe.name != "int8-dynamic":
        say(f"calibration: {recipe.calib_sentences} sentences through the frontend and FP32 acoustic model")
        ids = calibration_ids(src, text, recipe.calib_sentences)
        feeds = {
            "acoustic": acoustic_feeds(ac, ids),
            "vocoder": vocoder_feeds(root / ac.file, ac, vo, ids, src.audio.min_vocoder_frames),
        }
    for name, comp in src.components.items():
        ops = recipe.op_types.get(name, ())
        if not ops:
            shutil.copyfile(root / comp.file, staging / comp.file)
            comps[name] = comp
            continue
        if recipe.name == "int8-dynamic":
            say(f"quantizing {name} (dynamic INT8: {', '.join(ops)})")
            dynamic_int8(root / comp.file, staging / comp.file, ops, recipe, recipe.scopes.get(name))
        elif recipe.name == "int8-hybrid":
            say(f"rewriting {name}'s convolutions as unfold + MatMul, then dynamic INT8 GEMM")
            _hybrid(
                root / comp.file,
                staging / comp.file,
                tmp / f"{name}.gemm.onnx",
                recipe,
                recipe.scopes.get(name),
                feeds[name],
            )
        else:
            say(f"calibrating {name} ({recipe.calibration}, {len(feeds[name])} inputs) and quantizing {', '.join(ops)}")
            caches[name] = tmp / f"{name}.calib.json"
            static_int8(
                root / comp.file,
                staging / comp.file,
                ops,
                recipe,
                CalibrationReader(feeds[name]),
                caches[name],
                (),
                recipe.scopes.get(name),
            )
        precision = recipe.name if recipe.name in ("int8-dynamic", "int8-hybrid") else "int8-static"
        comps[name] = replace(
            comp,
            precision=precision,
            sha256=sha256_file(staging / comp.file),
            extra={**dict(comp.extra), "op_types": list(ops)},
        )
    report: dict[str, object] = {}
    if recipe.name == "mixed":
        excluded, report = choose_float_groups(src, root, staging, comps, recipe, text, caches, say, sensitivity)
        for name, nodes in excluded.items():
            if nodes:
                ops = recipe.op_types[name]
                static_int8(
                    root / src.components[name].file,
                    staging / comps[name].file,
                    ops,
                    recipe,
                    None,
                    caches[name],
                    nodes,
                    recipe.scopes.get(name),
                )
                comps[name] = replace(
                    comps[name],
                    precision="mixed",
                    sha256=sha256_file(staging / comps[name].file),
                    extra={**dict(comps[name].extra), "float_nodes": len(nodes)},
                )
    return comps, report


def scoped_nodes(model_path: Path, ops: Sequence[str], scopes: Sequence[str] | None) -> list[str] | None:
    """Names of the `ops` nodes under any of the `scopes` prefixes (None = no restriction)."""
    if not scopes:
        return None
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ops and n.name.startswith(tuple(scopes))]


def dynamic_int8(src: Path, dst: Path, ops: tuple[str, ...], recipe: QuantRecipe, scopes: Sequence[str] | None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=list(ops),
        per_channel=recipe.per_channel,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=scoped_nodes(src, ops, scopes),
    )


def _hybrid(
    src: Path,
    dst: Path,
    tmp: Path,
    recipe: QuantRecipe,
    scopes: Sequence[str] | None,
    feeds: Sequence[Mapping[str, np.ndarray]],
) -> None:
    """Convs in `scopes` → SmoothQuant-scaled unfold + MatMul → DynamicQuantizeMatMul (per-channel weights).

    The activation ranges per input channel come from `feeds` (calibration sentences) run through the
    FP32 graph; the scales leave the FP32 arithmetic unchanged (`conv_gemm.rewrite_convs`).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from speedy.stages.conv_gemm import channel_ranges, rewrite_convs, smoothing_scales

    convs = scoped_nodes(src, ("Conv",), scopes)
    if convs is None:
        import onnx

        convs = [n.name for n in onnx.load(str(src), load_external_data=False).graph.node if n.op_type == "Conv"]
    scales = smoothing_scales(src, channel_ranges(src, convs, feeds), SMOOTH_ALPHA)
    gemms = rewrite_convs(src, tmp, convs, scales)
    with contextlib.redirect_stdout(sys.stderr):
        quantize_dynamic(
            str(tmp),
            str(dst),
            op_types_to_quantize=["MatMul"],
            per_channel=recipe.per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=gemms,
        )


def unshare_initializers(src: Path, dst: Path) -> bool:
    """Give every Conv/ConvTranspose its own copy of an initializer it shares with another node.

    MB-MelGAN's shortcut and second 1×1 conv share one bias tensor (the TFLite graph did, so the
    exporter kept one initializer). ORT's QDQ quantizer then cannot quantize that bias, leaves those
    convs as DequantizeLinear → float Conv, and the graph pays Q/DQ without the QLinearConv kernel.
    Returns False (and writes nothing) when no initializer is shared.
    """
    import onnx

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                users[name] = users.get(name, 0) + 1
    changed = False
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        for k, name in enumerate(node.input):
            if name in inits and users[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name.strip('/').replace('/', '_')}_{k}"
                model.graph.initializer.append(copy)
                node.input[k] = copy.name
                users[name] -= 1
                changed = True
    if changed:
        onnx.save(model, str(dst))
    return changed


def static_int8(
    src: Path,
    dst: Path,
    ops: tuple[str, ...],
    recipe: QuantRecipe,
    reader: CalibrationReader | None,
    cache: Path,
    exclude: Sequence[str],
    scopes: Sequence[str] | None = None,
) -> None:
    """Static QDQ quantization; the first call calibrates and writes `cache`, later calls reuse it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as _quantize_static

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[recipe.calibration]
    unshared = cache.with_name(cache.name + ".unshared.onnx")
    if unshared.exists() or unshare_initializers(src, unshared):
        src = unshared
    try:
        # ORT's calibrators print progress to stdout; keep stdout for the command's --json object.
        with contextlib.redirect_stdout(sys.stderr):
            _quantize_static(
                str(src),
                str(dst),
                calibration_data_reader=reader if not cache.exists() else None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(ops),
                per_channel=recipe.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude),
                nodes_to_quantize=scoped_nodes(src, ops, scopes),
                calibrate_method=method,
                calibration_cache_path=str(cache),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibStridedMinMax": 1},
            )
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"quantize: ONNX Runtime failed on {src.name}: {str(e).splitlines()[0][:300]}") from e
