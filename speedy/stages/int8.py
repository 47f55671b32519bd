"""INT8 builders of the quantize stage, over ONNX Runtime's quantization tools: calibration feeds from
Chinese text through the real frontend, static QDQ, dynamic, and the int8-hybrid SmoothQuant path.

`int8_components` builds every component of an artifact for one INT8 recipe (`speedy.stages.quantize`
holds the recipes and the stage); a multi-graph family's own per-graph hook takes over when it has one.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speedy.artifacts import Component, Manifest, sha256_file
from speedy.errors import InputError, ModelError
from speedy.families import lookup

if TYPE_CHECKING:
    from speedy.stages.quantize import QuantRecipe

_LOGGER = logging.getLogger(__name__)

SMOOTH_ALPHA = 0.6
"""SmoothQuant's migration strength for int8-hybrid. Chosen on the last 6 calibration sentences (a tuning
split, not eval.txt): decoder + postnet mel L1 vs FP32 0.0163 / 0.0139 / 0.0119 / 0.0103 at α = 0.3 / 0.4 /
0.5 / 0.6, and α = 0.8 was worse than 0.5 in MCD."""


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


def int8_components(
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
    comps: dict[str, Component] = {}
    caches: dict[str, Path] = {}
    feeds: dict[str, list] = {}
    if src.vocoder_only:
        # the family records which of its vocoder's nodes INT8 may touch (the recipes' scopes name MB-MelGAN's)
        scopes = src.components["vocoder"].extra.get("int8_scopes")
        if scopes:
            recipe = replace(recipe, scopes={**recipe.scopes, "vocoder": tuple(scopes)})
        feeds = vocoder_only_feeds(src, recipe, text, say)
    elif recipe.name == "int8-hybrid":
        ac = src.components["acoustic"]
        say(f"calibration: {recipe.calib_sentences} sentences through the frontend (activation ranges for SmoothQuant)")
        feeds = {"acoustic": acoustic_feeds(ac, calibration_ids(src, text, recipe.calib_sentences))}
    elif recipe.name != "int8-dynamic":
        say(f"calibration: {recipe.calib_sentences} sentences through the frontend and FP32 acoustic model")
        ac, vo = src.components["acoustic"], src.components["vocoder"]
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
        if recipe.name == "int8-hybrid":
            say(f"rewriting {name}'s convolutions as unfold + MatMul, then dynamic INT8 GEMM")
            hybrid_int8(
                root / comp.file,
                staging / comp.file,
                tmp / f"{name}.gemm.onnx",
                recipe,
                recipe.scopes.get(name),
                feeds[name],
            )
        else:
            caches[name] = tmp / f"{name}.calib.json"
            quantize_graph(
                name, root, staging, comp, ops, recipe, recipe.scopes.get(name), feeds.get(name), caches[name], say
            )
        precision = recipe.name if recipe.name in ("int8-dynamic", "int8-hybrid") else "int8-static"
        comps[name] = quantized_component(comp, precision, staging, ops)
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


def vocoder_only_feeds(
    src: Manifest, recipe: QuantRecipe, text: Sequence[str], say: Callable[[str], None]
) -> dict[str, list]:
    """Calibration feeds of a vocoder-only artifact: the default voice's speech of `text`, analysed as copy
    synthesis does. A recipe that leaves the vocoder float would change nothing, so it is refused."""
    from speedy.stages.copy_calib import recording_mels

    if not recipe.op_types.get("vocoder"):
        raise InputError(
            f"quantize: recipe {recipe.name} leaves the vocoder float, and a vocoder-only artifact has nothing "
            "else to quantize; use --recipe int8-static or fp16 (or --op-types vocoder=Conv)"
        )
    if recipe.name in ("int8-dynamic", "int8-hybrid"):
        return {}
    if recipe.name == "mixed":
        raise InputError("quantize: --recipe mixed needs an acoustic model; use int8-static on a vocoder-only artifact")
    name = src.components["vocoder"].inputs[0]
    return {"vocoder": [{name: m} for m in recording_mels(src, text, recipe.calib_sentences, say)]}


def quantize_graph(
    name: str,
    root: Path,
    staging: Path,
    comp: Component,
    ops: tuple[str, ...],
    recipe: QuantRecipe,
    scopes: Sequence[str] | None,
    feeds: list[dict[str, np.ndarray]] | None,
    cache: Path,
    say: Callable[[str], None],
) -> None:
    """Write `comp`'s graph from `root` to `staging` with its `ops` INT8: dynamically for int8-dynamic (no
    data), else statically, calibrated on `feeds` (the graph's input dicts; `cache`: the calibration table)."""
    if recipe.name == "int8-dynamic":
        say(f"quantizing {name} (dynamic INT8: {', '.join(ops)})")
        dynamic_int8(root / comp.file, staging / comp.file, ops, recipe, scopes)
        return
    if feeds is None:
        raise ModelError(f"quantize: no calibration inputs were recorded for {name}")
    say(f"calibrating {name} ({recipe.calibration}, {len(feeds)} inputs) and quantizing {', '.join(ops)}")
    static_int8(root / comp.file, staging / comp.file, ops, recipe, CalibrationReader(feeds), cache, (), scopes)


def quantized_component(comp: Component, precision: str, staging: Path, ops: Sequence[str]) -> Component:
    """`comp` as written to `staging`: its precision, new checksum and the op types made INT8."""
    return replace(
        comp,
        precision=precision,
        sha256=sha256_file(staging / comp.file),
        extra={**dict(comp.extra), "op_types": list(ops)},
    )


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


def hybrid_int8(
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
