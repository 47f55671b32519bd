"""Mixed precision by measurement: keep the most sensitive layer groups in float within an MCD budget.

A layer group is the set of quantizable nodes that share a module path prefix in the exported graph
(e.g. `/decoder/layer_1` or `/upsample.2/stack.0`). Sensitivity of a group = how much MCD against the
FP32 artifact drops when only that group stays float. Groups are kept float greedily, most sensitive
first, until MCD is within the recipe's budget. Calibration is reused from the cache, so each trial
only re-writes the QDQ graph.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Component, Manifest

_LOGGER = logging.getLogger(__name__)


def node_groups(
    model_path: Path, op_types: Sequence[str], depth: int = 1, scopes: Sequence[str] | None = None
) -> OrderedDict[str, list[str]]:
    """Quantizable node names of `model_path` grouped by stage: the first `depth` parts of their scope
    path with the last block index dropped (`/decoder.1` → `/decoder`, `/stacks.2.3` → `/stacks.2`).

    Measured on the default voice, single blocks each moved MCD by ≤ 0.2 dB (the error is spread
    thin), so per-block trials cost many runs for little signal; stages give 5 trials.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for node in model.graph.node:
        if scopes and not node.name.startswith(tuple(scopes)):
            continue
        if node.op_type in op_types or "*" in op_types:
            parts = [p for p in node.name.split("/") if p][:-1] or [node.op_type]
            head = parts[:depth]
            head[-1] = head[-1].rsplit(".", 1)[0] if head[-1].rsplit(".", 1)[-1].isdigit() else head[-1]
            key = "/" + "/".join(head)
            groups.setdefault(key, []).append(node.name)
    return groups


class Scorer:
    """MCD (dB) of candidate (acoustic.onnx, vocoder.onnx) pairs against FP32 on held-out sentences."""

    def __init__(self, manifest: Manifest, fp32_root: Path, sentences: Sequence[str]) -> None:
        from speedy.stages.int8 import acoustic_feeds, calibration_ids

        self.manifest = manifest
        self.ac: Component = manifest.components["acoustic"]
        self.vo: Component = manifest.components["vocoder"]
        self.feeds = acoustic_feeds(self.ac, calibration_ids(manifest, sentences, len(sentences) * 4))
        self.ref = self._audio(fp32_root / self.ac.file, fp32_root / self.vo.file)
        self._ref_features: list[Any] | None = None

    def _audio(self, acoustic: Path, vocoder: Path) -> list[np.ndarray]:
        from speedy.runtime.onnx_backend import make_session

        a, v = make_session(acoustic, None), make_session(vocoder, None)
        out = []
        for f in self.feeds:
            mel = a.run([self.ac.outputs[0]], f)[0]
            if mel.shape[1] < self.manifest.audio.min_vocoder_frames:
                continue
            out.append(v.run([self.vo.outputs[0]], {self.vo.inputs[0]: mel})[0].reshape(-1))
        return out

    def mcd(self, acoustic: Path, vocoder: Path) -> float:
        from speedy.quality import mcd_against, reference_features

        test = self._audio(acoustic, vocoder)
        sr = self.manifest.audio.sample_rate
        if self._ref_features is None:  # the FP32 side is analysed once, not once per candidate
            self._ref_features = [reference_features(r, sr) for r in self.ref]
        return float(np.mean([mcd_against(r, t, sr, align="auto") for r, t in zip(self._ref_features, test)]))


def choose_float_groups(
    src: Manifest,
    root: Path,
    staging: Path,
    comps: Mapping[str, Component],
    recipe,
    text: Sequence[str],
    caches: Mapping[str, Path],
    say: Callable[[str], None],
    sensitivity: Path | None = None,
) -> tuple[dict[str, list[str]], dict[str, object]]:
    """Return {component: node names to keep float} and a report with every measurement.

    With `sensitivity` (a `speedy analyze --json` report) the per-group trials are skipped and the
    report's "keep this layer float" gains rank the groups instead.
    """
    from speedy.stages.int8 import static_int8

    held_out = list(text[-recipe.check_sentences :])  # never the sentences the calibrator saw first
    scorer = Scorer(src, root, held_out)
    files = {n: staging / comps[n].file for n in comps}
    base = scorer.mcd(files["acoustic"], files["vocoder"])
    groups: list[dict[str, object]] = []
    report: dict[str, object] = {"budget_db": recipe.max_mcd, "all_int8_mcd_db": round(base, 4), "groups": groups}
    say(f"mixed: all-INT8 MCD {base:.3f} dB (budget {recipe.max_mcd} dB)")
    excluded: dict[str, list[str]] = {n: [] for n in comps}
    if base <= recipe.max_mcd:
        report["final_mcd_db"] = round(base, 4)
        return excluded, report
    trial_dir = staging.parent / (staging.name + ".trial")
    trial_dir.mkdir(exist_ok=True)
    try:
        scores = []
        if sensitivity is not None:
            from speedy.analyze import mixed_scores

            scores = mixed_scores(sensitivity, {n: root / src.components[n].file for n in comps})
            report["sensitivity"] = str(sensitivity)
            say(f"mixed: ranking {len(scores)} layer groups from {sensitivity}")
        for name in comps if sensitivity is None else ():
            ops = recipe.op_types.get(name, ())
            if not ops or name not in caches:
                continue
            scopes = recipe.scopes.get(name)
            for key, nodes in node_groups(root / src.components[name].file, ops, scopes=scopes).items():
                trial = trial_dir / f"{name}.onnx"
                static_int8(root / src.components[name].file, trial, ops, recipe, None, caches[name], nodes, scopes)
                pair = {**files, name: trial}
                m = scorer.mcd(pair["acoustic"], pair["vocoder"])
                scores.append((base - m, name, key, nodes))
                say(f"mixed: {name}{key} float → MCD {m:.3f} dB")
        scores.sort(key=lambda s: -s[0])
        current = base
        for gain, name, key, nodes in scores:
            if current <= recipe.max_mcd or gain <= 0:
                break
            excluded[name] += nodes
            for n in comps:
                if excluded[n]:
                    ops = recipe.op_types[n]
                    static_int8(
                        root / src.components[n].file,
                        trial_dir / f"{n}.onnx",
                        ops,
                        recipe,
                        None,
                        caches[n],
                        excluded[n],
                        recipe.scopes.get(n),
                    )
            pair = {n: (trial_dir / f"{n}.onnx" if excluded[n] else files[n]) for n in comps}
            current = scorer.mcd(pair["acoustic"], pair["vocoder"])
            groups.append(
                {
                    "component": name,
                    "group": key,
                    "nodes": len(nodes),
                    "single_gain_db": round(gain, 4),
                    "mcd_after_db": round(current, 4),
                }
            )
            say(f"mixed: keep {name}{key} float → MCD {current:.3f} dB")
        report["final_mcd_db"] = round(current, 4)
        if current > recipe.max_mcd:
            _LOGGER.warning(
                "mixed: budget %.2f dB not reached (%.3f dB) with every helpful group in float", recipe.max_mcd, current
            )
    finally:
        import shutil

        shutil.rmtree(trial_dir, ignore_errors=True)
    return excluded, report
