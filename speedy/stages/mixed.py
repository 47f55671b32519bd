"""Mixed precision by measurement: keep the most sensitive layer groups in float within an MCD budget.

A layer group is the set of quantizable nodes that share a module path prefix in the exported graph
(e.g. `/decoder/layer_1` or `/upsample.2/stack.0`). Sensitivity of a group = how much MCD against the
FP32 artifact drops when only that group stays float. Groups are kept float greedily, most sensitive
first, until MCD is within the recipe's budget. Calibration is reused from the cache, so each trial
only re-writes the QDQ graph. `keep_float` runs that search on the all-INT8 components that
`speedy.stages.int8.int8_components` wrote; a `speedy analyze --json` report can rank the groups instead
(`groups_from_sensitivity` / `mixed_scores`).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Component, Manifest, sha256_file
from speedy.calibration import acoustic_feeds, calibration_ids
from speedy.errors import InputError, ModelError
from speedy.stages.ort_int8 import calibration_cache, static_int8

_LOGGER = logging.getLogger(__name__)


def node_groups(
    model_path: Path, op_types: Sequence[str], depth: int = 1, scopes: Sequence[str] | None = None
) -> OrderedDict[str, list[str]]:
    """Quantizable node names of `model_path` grouped by stage: the first `depth` parts of their scope
    path with the last block index dropped (`/decoder.1` → `/decoder`, `/stacks.2.3` → `/stacks.2`).

    Measured on the default voice, single blocks each moved MCD by ≤ 0.2 dB (the error is spread
    thin), so per-block trials cost many runs for little signal; stages give 5 trials. When every node falls
    in one stage (HiFi-GAN's INT8 scope is its residual blocks, `/resblocks.0` … `/resblocks.11`), a single
    trial could only keep everything float, so the nodes are grouped per block instead.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    names = [
        n.name
        for n in model.graph.node
        if (not scopes or n.name.startswith(tuple(scopes))) and (n.op_type in op_types or "*" in op_types)
    ]
    kinds = {n.name: n.op_type for n in model.graph.node}
    for per_block in (False, True):
        groups: OrderedDict[str, list[str]] = OrderedDict()
        for name in names:
            head = ([p for p in name.split("/") if p][:-1] or [kinds[name]])[:depth]
            if not per_block:
                head[-1] = head[-1].rsplit(".", 1)[0] if head[-1].rsplit(".", 1)[-1].isdigit() else head[-1]
            groups.setdefault("/" + "/".join(head), []).append(name)
        if len(groups) > 1:
            break
    return groups


class Scorer:
    """MCD (dB) of candidate (acoustic.onnx, vocoder.onnx) pairs against FP32 on held-out sentences.

    A vocoder-only artifact has no acoustic model (pass None for it): its held-out mels are the default voice's
    speech of the sentences, analysed as copy synthesis does (`speedy.stages.copy_calib.recording_mels`).
    """

    def __init__(self, manifest: Manifest, fp32_root: Path, sentences: Sequence[str]) -> None:
        self.manifest = manifest
        self.vo: Component = manifest.components["vocoder"]
        self.ac: Component | None = None
        if manifest.vocoder_only:
            from speedy.stages.copy_calib import recording_mels

            mels = recording_mels(manifest, sentences, len(sentences))
            self.feeds = [{self.vo.inputs[0]: m} for m in mels]
        else:
            self.ac = manifest.components["acoustic"]
            self.feeds = acoustic_feeds(self.ac, calibration_ids(manifest, sentences, len(sentences) * 4))
        self.ref = self._audio(None if self.ac is None else fp32_root / self.ac.file, fp32_root / self.vo.file)
        self._ref_features: list[Any] | None = None

    def _audio(self, acoustic: Path | None, vocoder: Path) -> list[np.ndarray]:
        from speedy.runtime.onnx_backend import make_session

        a, v = None if acoustic is None else make_session(acoustic, None), make_session(vocoder, None)
        out = []
        for f in self.feeds:
            if a is None or self.ac is None:
                mel = f[self.vo.inputs[0]]
            else:
                mel = a.run([self.ac.outputs[0]], f)[0]
            if mel.shape[1] < self.manifest.audio.min_vocoder_frames:
                continue
            out.append(v.run([self.vo.outputs[0]], {self.vo.inputs[0]: mel})[0].reshape(-1))
        return out

    def mcd(self, acoustic: Path | None, vocoder: Path) -> float:
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
    held_out = list(text[-recipe.check_sentences :])  # never the sentences the calibrator saw first
    scorer = Scorer(src, root, held_out)
    files = {n: staging / comps[n].file for n in comps}
    base = scorer.mcd(files.get("acoustic"), files["vocoder"])
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
                m = scorer.mcd(pair.get("acoustic"), pair["vocoder"])
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
            current = scorer.mcd(pair.get("acoustic"), pair["vocoder"])
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


def keep_float(
    src: Manifest,
    root: Path,
    staging: Path,
    tmp: Path,
    comps: Mapping[str, Component],
    recipe,
    text: Sequence[str],
    say: Callable[[str], None],
    sensitivity: Path | None = None,
) -> tuple[dict[str, Component], dict[str, object]]:
    """The mixed recipe: `comps` (all-INT8 static, written to `staging` by `int8_components` with its
    calibration tables in `tmp`) with the groups `choose_float_groups` picks rewritten to stay float.

    Returns (components, report); a rewritten component's precision becomes "mixed".
    """
    comps = dict(comps)
    caches = {name: calibration_cache(tmp, name) for name in comps if recipe.op_types.get(name)}
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


@dataclass(frozen=True)
class SensitivityGroup:
    """One layer's quantizable nodes and how much keeping them float helped (dB, all-INT8 MCD minus theirs)."""

    component: str
    name: str
    nodes: tuple[str, ...]
    float_gain_db: float


def groups_from_sensitivity(path: Path) -> list[SensitivityGroup]:
    """Read an `analyze --json` report: layers with INT8 nodes, most helpful to keep float first.

    Raises InputError naming the file if it is missing, not JSON, or has no quantization figures.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        base = data["all_int8_mcd_db"]
        layers = data["layers"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--sensitivity {path}: not an analyze report ({exc})") from None
    if base is None:
        raise InputError(f"--sensitivity {path}: the report has no quantization figures (analyzed with --no-quant)")
    out = [
        SensitivityGroup(
            r["component"],
            r["name"],
            tuple(r.get("onnx_nodes", ())),
            round(float(base) - float(r["float_keep_mcd_db"]), 4),
        )
        for r in layers
        if r.get("float_keep_mcd_db") is not None and r.get("onnx_nodes")
    ]
    return sorted(out, key=lambda g: -g.float_gain_db)


def mixed_scores(path: Path, model_paths: Mapping[str, Path] | None = None) -> list[tuple[float, str, str, list[str]]]:
    """`choose_float_groups`' score list, (gain dB, component, group, node names), from a report.

    With `model_paths` ({component: FP32 .onnx}), nodes are re-resolved by layer scope in those files, so
    a report made on the torch artifact (or another export of it) applies to this graph; nodes named in
    the report but absent from the file are dropped.
    """
    out = []
    for g in groups_from_sensitivity(path):
        nodes = list(g.nodes)
        if model_paths and g.component in model_paths:
            import onnx

            present = {n.name for n in onnx.load(str(model_paths[g.component]), load_external_data=False).graph.node}
            nodes = [n for n in nodes if n in present]
        if nodes:
            out.append((g.float_gain_db, g.component, f"/{g.name}", nodes))
    if not out:
        raise ModelError(f"--sensitivity {path}: none of its layers match the graphs being quantized")
    return out
