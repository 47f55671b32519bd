"""Measurements behind `speedy analyze`: per-layer INT8 and pruning sensitivity (MCD in dB)."""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from speedy.artifacts import Manifest

_LOGGER = logging.getLogger(__name__)

Key = tuple[str, str]
"""(component, layer name)."""


def quant_sensitivity(
    src: Manifest,
    root: Path,
    texts: Sequence[str],
    nodes: Mapping[str, Mapping[str, list[str]]],
    calib_sentences: int,
    workdir: Path,
    say: Callable[[str], None],
) -> tuple[float, dict[Key, tuple[float | None, float | None]]]:
    """INT8 sensitivity of each layer of the FP32 ONNX artifact at `root`.

    Args:
        nodes: {component: {layer: quantizable node names}} (`speedy.analyze.quantizable_nodes`).
        texts: sentences scored (MCD vs FP32, `speedy.stages.mixed.Scorer`).

    Returns:
        (all-INT8 MCD dB, {(component, layer): (MCD with only this layer INT8, MCD with only it float)}).
    """
    from speedy.calibration import CalibrationReader, acoustic_feeds, calibration_ids
    from speedy.corpus import load_corpus
    from speedy.stages.int8 import vocoder_feeds
    from speedy.stages.mixed import Scorer
    from speedy.stages.ort_int8 import static_int8
    from speedy.stages.quantize import QuantRecipe

    recipe = QuantRecipe.int8_static()
    comps = src.components
    fp32 = {c: root / comps[c].file for c in ("acoustic", "vocoder")}
    say(f"INT8: calibrating on {calib_sentences} sentences")
    ids = calibration_ids(src, load_corpus("calib"), calib_sentences)
    feeds = {
        "acoustic": acoustic_feeds(comps["acoustic"], ids),
        "vocoder": vocoder_feeds(
            fp32["acoustic"], comps["acoustic"], comps["vocoder"], ids, src.audio.min_vocoder_frames
        ),
    }
    caches = {c: workdir / f"{c}.calib.json" for c in fp32}
    int8 = {c: workdir / f"{c}.int8.onnx" for c in fp32}
    for c in fp32:
        static_int8(fp32[c], int8[c], recipe.op_types[c], recipe, CalibrationReader(feeds[c]), caches[c], ())
    scorer = Scorer(src, root, list(texts))
    base = scorer.mcd(int8["acoustic"], int8["vocoder"])
    say(f"INT8: all layers quantized → MCD {base:.3f} dB")
    out: dict[Key, tuple[float | None, float | None]] = {}
    trial = workdir / "trial.onnx"
    for c in fp32:
        other = "vocoder" if c == "acoustic" else "acoustic"
        every = [n for ns in nodes[c].values() for n in ns]
        for layer, mine in nodes[c].items():
            mine_set = set(mine)
            static_int8(
                fp32[c], trial, recipe.op_types[c], recipe, None, caches[c], [n for n in every if n not in mine_set]
            )
            only_int8 = scorer.mcd(*_pair(c, trial, fp32[other]))
            static_int8(fp32[c], trial, recipe.op_types[c], recipe, None, caches[c], mine)
            only_float = scorer.mcd(*_pair(c, trial, int8[other]))
            out[(c, layer)] = (round(only_int8, 4), round(only_float, 4))
            say(f"INT8: {c} {layer}: only it INT8 {only_int8:.3f} dB, only it float {only_float:.3f} dB")
    return round(base, 4), out


def _pair(component: str, mine: Path, other: Path) -> tuple[Path, Path]:
    return (mine, other) if component == "acoustic" else (other, mine)


def prune_sensitivity(
    manifest: Manifest,
    torch_dir: Path,
    ids: Sequence[np.ndarray],
    fractions: Sequence[float],
    criterion: str,
    say: Callable[[str], None],
) -> dict[Key, dict[str, float | None]]:
    """MCD (dB) vs the unpruned torch pipeline when each layer loses `fraction` of its units.

    None where an utterance's length changed too much to align (a broken duration predictor): MCD
    would have to force the unpruned durations and so would score the damage as nothing.
    Every group of the layer (`PruneGroup.layer`) keeps its top (1 - fraction) units by `criterion`;
    fractions that would remove nothing from a layer (e.g. a quarter of 2 heads) are left out.
    """
    import torch

    from speedy.errors import InputError
    from speedy.prune.criteria import get_criterion
    from speedy.prune.evaluate import compare_pipelines, synthesize
    from speedy.prune.stage import calibration_run
    from speedy.prune.surgery import groups_for, prune_group
    from speedy.quality import reference_features
    from speedy.runtime.torch_backend import load_torch_modules

    mods = load_torch_modules(manifest, torch_dir)
    ref = synthesize(mods["acoustic"], mods["vocoder"], ids, manifest.audio.min_vocoder_frames)
    ref_features = [reference_features(r, manifest.audio.sample_rate) for r in ref[0]]  # once, not per cut
    probe = [torch.from_numpy(np.asarray(x)) for x in ids[:4]]
    out: dict[Key, dict[str, float | None]] = {}
    for c in ("acoustic", "vocoder"):
        try:
            groups = groups_for(c, mods[c])
        except InputError as exc:
            say(f"pruning: {exc}")
            continue
        crit = get_criterion(criterion)
        if crit.needs_data:
            crit.prepare(
                mods[c], groups, functools.partial(calibration_run, component=c, acoustic=mods["acoustic"], ids=probe)
            )
        scores = {g.name: crit(g, mods[c]) for g in groups}
        for layer in dict.fromkeys(g.layer for g in groups):
            mine = [g for g in groups if g.layer == layer]
            for f in fractions:
                keep = {g.name: max(min(g.min_units, g.units), int(round(g.units * (1 - f)))) for g in mine}
                if all(keep[g.name] >= g.units for g in mine):
                    continue
                cand = copy.deepcopy(mods[c])
                for g in mine:
                    if keep[g.name] < g.units:
                        prune_group(cand, g, torch.topk(scores[g.name], keep[g.name]).indices.sort().values)
                res = compare_pipelines(manifest, ref, {**mods, c: cand.eval()}, ids, ref_features)
                if res["forced_durations"]:
                    # Some utterance's length moved beyond what MCD can align (×1.4): compare_pipelines then
                    # scores it with the reference durations forced, which hides exactly this damage.
                    out.setdefault((c, layer), {})[f"{f:g}"] = None
                    say(
                        f"pruning: {c} {layer} −{f:.0%} → durations broken on {res['forced_durations']} of "
                        f"{res['sentences']} utterances (length beyond ×1.4): no MCD"
                    )
                    continue
                out.setdefault((c, layer), {})[f"{f:g}"] = round(res["mcd_db"], 4)
                say(f"pruning: {c} {layer} −{f:.0%} → MCD {res['mcd_db']:.3f} dB")
    return out
