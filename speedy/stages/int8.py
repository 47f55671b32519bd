"""INT8 builders of the quantize stage: every component of an artifact for one INT8 recipe (static QDQ,
dynamic, and the int8-hybrid SmoothQuant path), calibrated on Chinese text through the real frontend.

`int8_components` builds every component (`speedy.stages.quantize` holds the recipes and the stage; the
mixed recipe's search on top of it is `speedy.stages.mixed`); a host-loop family's graphs go one by one through
`speedy.stages.int8_graphs`, as its declared `int8` data says. The one-graph ONNX Runtime calls are in `speedy.stages.ort_int8`, the
calibration feeds in `speedy.calibration`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speedy.artifacts import Component, Manifest
from speedy.calibration import acoustic_feeds, calibration_ids
from speedy.errors import InputError
from speedy.families import lookup
from speedy.noise import library_stdout
from speedy.stages.ort_int8 import (
    calibration_cache,
    quantize_graph,
    quantized_component,
    scoped_nodes,
)

if TYPE_CHECKING:
    from speedy.stages.quantize import QuantRecipe

_LOGGER = logging.getLogger(__name__)

SMOOTH_ALPHA = 0.6
"""SmoothQuant's migration strength for int8-hybrid. Chosen on the last 6 calibration sentences (a tuning
split, not eval.txt): decoder + postnet mel L1 vs FP32 0.0163 / 0.0139 / 0.0119 / 0.0103 at α = 0.3 / 0.4 /
0.5 / 0.6, and α = 0.8 was worse than 0.5 in MCD."""


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
    graphs: Sequence[str] | None = None,
) -> tuple[dict[str, Component], dict[str, object]]:
    """Every component of `src` (FP32 ONNX at `root`) written to `staging` with `recipe`'s INT8; `tmp` holds the
    calibration tables (`calibration_cache`), which the mixed recipe's search (`speedy.stages.mixed`) reuses.
    `graphs`: a host-loop family's graphs to make INT8 in place of its policy's default (speedy.stages.int8_graphs).
    Returns (components, report); the report is empty unless the family's graphs went through int8_graphs."""
    family = lookup(src.family)
    if family is not None and family.int8 is not None:  # host-loop families: per-graph INT8 from declared data
        from speedy.stages.int8_graphs import int8_graphs

        return int8_graphs(family, src, root, staging, tmp, recipe, text, say, graphs)
    if graphs is not None:
        raise InputError(f"quantize: {src.family} artifacts take no choice of graphs")
    comps: dict[str, Component] = {}
    feeds: dict[str, list] = {}
    if src.vocoder_only:
        recipe = with_family_scopes(src, recipe)
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
            cache = calibration_cache(tmp, name)
            quantize_graph(name, root, staging, comp, ops, recipe, recipe.scopes.get(name), feeds.get(name), cache, say)
        precision = recipe.name if recipe.name in ("int8-dynamic", "int8-hybrid") else "int8-static"
        comps[name] = quantized_component(comp, precision, staging, ops)
    return comps, {}


def with_family_scopes(src: Manifest, recipe: QuantRecipe) -> QuantRecipe:
    """`recipe` with the vocoder's INT8 scopes that a vocoder-only artifact's family recorded in its manifest
    (`extra["int8_scopes"]`: which nodes INT8 may touch; the recipes' own scopes name MB-MelGAN's)."""
    scopes = src.components["vocoder"].extra.get("int8_scopes") if src.vocoder_only else None
    return replace(recipe, scopes={**recipe.scopes, "vocoder": tuple(scopes)}) if scopes else recipe


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
    name = src.components["vocoder"].inputs[0]
    return {"vocoder": [{name: m} for m in recording_mels(src, text, recipe.calib_sentences, say)]}


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
    with library_stdout():
        quantize_dynamic(
            str(tmp),
            str(dst),
            op_types_to_quantize=["MatMul"],
            per_channel=recipe.per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=gemms,
        )
