"""INT8 of a host-loop family's graphs (sambert, ttskit), one graph at a time, from the family's declared data.

A host-loop artifact has no single ``acoustic`` graph: its acoustic model is several graphs chained by the
family's loop, each a manifest component. What each family needs (which recipes, graphs kept float, op types
never quantized, the graphs a recipe's scopes map to, its own fixed policy, calibration strides) is plain data,
its FamilySpec's `int8` (speedy.families.graph_spec.GraphQuant); this module applies it to any such family.

Dynamic INT8 needs no data. Static INT8 calibrates each graph on its own inputs, recorded by running the FP32
graphs in the family's host loop (its ``compose`` hook) over the calibration text, each session wrapped in a
recorder; the vocoder is calibrated on the mels that loop makes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from speedy.artifacts import Component, Manifest
from speedy.errors import InputError, ModelError
from speedy.families import FamilySpec, frontend_encoder
from speedy.families.graph_spec import GraphQuant, GraphSpec
from speedy.noise import library_stdout
from speedy.stages.ort_int8 import calibration_cache, quantize_graph, quantized_component

if TYPE_CHECKING:
    from speedy.stages.quantize import QuantRecipe

Feeds = dict[str, list[dict[str, np.ndarray]]]
"""Recorded calibration inputs: graph name -> that graph's feeds (input name -> array), in call order."""


def int8_graphs(
    spec: FamilySpec,
    src: Manifest,
    root: Path,
    staging: Path,
    tmp: Path,
    recipe: QuantRecipe,
    text: Sequence[str],
    say: Callable[[str], None],
    graphs: Sequence[str] | None = None,
) -> tuple[dict[str, Component], dict[str, object]]:
    """Every graph component of `src` (FP32 ONNX at `root`) written to `staging`, INT8 as `spec.int8` says for
    `recipe`, the others copied; `tmp` holds the calibration tables and conv→gemm rewrites.

    `graphs`: for a family with its own policy (GraphQuant.op_types), the graphs to make INT8 instead of its
    `default_graphs`. Each component keeps the session settings its GraphSpec declares (``extra``), as export
    records them, so an INT8 artifact runs with the same threads as its FP32 source.
    Returns (components, report) as speedy.stages.int8.int8_components does; the report lists the float (and,
    under a fixed policy, the INT8) graphs, and the INT8 loop's error against FP32 where `check_text` is set.
    """
    q = spec.int8
    if q is None:
        raise ModelError(f"quantize: model family {spec.name!r} declares no per-graph INT8")
    if recipe.name not in q.recipes:
        raise InputError(f"quantize: recipe {recipe.name} is not supported for {spec.name} artifacts; {q.hint}")
    chosen = _chosen(spec.name, q, graphs)
    declared = {g.name: g for g in spec.all_graphs()}
    feeds: Feeds = {}
    if recipe.name != "int8-dynamic":
        say(f"calibration: {recipe.calib_sentences} sentences through the FP32 {spec.name} host loop")
        feeds = record_feeds(spec, src, root, text, recipe.calib_sentences)
    if q.per_channel is not None:
        recipe = replace(recipe, per_channel=q.per_channel)
    comps: dict[str, Component] = {}
    for name, comp in src.components.items():
        graph = declared.get(name)
        if graph is None:
            raise ModelError(f"quantize: {name} is not a graph of the {spec.name} family")
        ops, scopes = graph_ops(q, graph, recipe, chosen)
        source, gemms = root / comp.file, []
        if ops and name in q.conv_gemm:
            if recipe.name != "int8-dynamic":
                raise ModelError(f"quantize: {spec.name}'s {name} takes dynamic INT8 only (conv→gemm)")
            from speedy.stages.conv_gemm import rewrite_convs

            source = tmp / comp.file
            gemms = rewrite_convs(root / comp.file, source)
        if not ops or not _has_ops(source, ops):
            shutil.copyfile(root / comp.file, staging / comp.file)
            comps[name] = _with_settings(comp, graph)
            continue
        if name in q.conv_gemm:
            say(f"quantizing {name} (convolutions as unfold + MatMul, dynamic INT8: {', '.join(ops)})")
            _gemm_int8(source, staging / comp.file, ops, recipe.per_channel, gemms)
        else:
            cache = calibration_cache(tmp, name)
            quantize_graph(name, root, staging, comp, ops, recipe, scopes, feeds.get(name), cache, say)
        done = quantized_component(comp, recipe.name, staging, ops)
        if q.conv_gemm:
            done = replace(done, extra={**dict(done.extra), "conv_gemm": name in q.conv_gemm})
        comps[name] = _with_settings(done, graph)
    report: dict[str, object]
    if q.op_types:
        report = {"int8_graphs": list(chosen), "float_graphs": [n for n in comps if n not in chosen]}
    else:
        report = {"float_graphs": [n for n in q.float_graphs if n in src.components]}
    if q.check_text:
        report["loop_error"] = loop_error(src, root, replace(src, components=comps), staging, q.check_text)
    return comps, report


def _chosen(family: str, q: GraphQuant, graphs: Sequence[str] | None) -> tuple[str, ...]:
    """The graphs a fixed policy makes INT8: `graphs` when given (each one the policy covers), else its default."""
    if graphs is None:
        return q.default_graphs
    if not q.op_types:
        raise InputError(f"quantize: {family} takes no choice of graphs (the recipe's op types decide)")
    unknown = [g for g in graphs if g not in q.op_types]
    if unknown:
        raise InputError(f"quantize: cannot quantize {', '.join(unknown)} (choose from {', '.join(q.op_types)})")
    return tuple(graphs)


def graph_ops(
    q: GraphQuant, graph: GraphSpec, recipe: QuantRecipe, chosen: Sequence[str] = ()
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """(op types to quantize, node scopes or None) for one graph: the family's own policy where it declares
    one (`chosen`: the graphs it applies to), else the recipe's op types for the graph's role, restricted to
    `scoped_graphs` / `vocoder_scopes` when the recipe scopes that role; less float graphs and float ops."""
    if q.op_types:
        ops = tuple(q.op_types.get(graph.name, ())) if graph.name in chosen else ()
        scopes = None
    else:
        ops = tuple(recipe.op_types.get(graph.role, ()))
        scoped = bool(recipe.scopes.get(graph.role))
        if graph.role == "acoustic" and scoped and graph.name not in q.scoped_graphs:
            ops = ()
        scopes = q.vocoder_scopes if graph.role == "vocoder" and scoped else None
    if graph.name in q.float_graphs:
        return (), scopes
    never = q.float_ops.get(graph.name, ())
    return tuple(o for o in ops if o not in never), scopes


def _has_ops(path: Path, ops: Sequence[str]) -> bool:
    """Whether the graph has a node of one of `ops` (ORT's calibrators fail on a graph with none)."""
    import onnx

    return any(n.op_type in ops for n in onnx.load(str(path), load_external_data=False).graph.node)


def _gemm_int8(src: Path, dst: Path, ops: Sequence[str], per_channel: bool, gemms: Sequence[str]) -> None:
    """Dynamic INT8 (QInt8 weights) of the MatMuls a conv→gemm rewrite made (`gemms`), nothing else."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with library_stdout():
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=list(ops),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            nodes_to_quantize=list(gemms),
        )


def _with_settings(comp: Component, graph: GraphSpec) -> Component:
    """`comp` with the session settings its GraphSpec declares (``max_threads``, ``session_config``)."""
    return replace(comp, extra={**dict(comp.extra), **graph.settings()})


def record_feeds(spec: FamilySpec, src: Manifest, root: Path, text: Sequence[str], limit: int) -> Feeds:
    """Each graph's inputs from the FP32 host loop over up to `limit` utterances of `text`.

    The acoustic graphs are opened as the runtime opens them, each wrapped in a recorder, and composed into
    the family's acoustic runner (default controls); the vocoder's input is the mel that runner makes,
    (1, frames, n_mels). Emotions cycle through `calib_emotions` the voice has, so every emotion embedding is
    seen. A step graph keeps every k-th call, k = max(1, calls per symbol × symbols // calib_steps).
    """
    from speedy.controls import DEFAULT_CONTROLS
    from speedy.families.host_loop import as_runner
    from speedy.runtime import RuntimeOptions
    from speedy.runtime.onnx_backend import graph_sessions

    q = spec.int8
    assert q is not None
    if not text:
        raise InputError("calibration set is empty")
    recorded: Feeds = {}
    stride: dict[str, int] = {}

    def recorder(name: str, session: Any) -> Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]:
        run = as_runner(session, spec.name)
        calls = [0]

        def rec(feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
            if calls[0] % stride.get(name, 1) == 0:
                recorded.setdefault(name, []).append({k: np.array(v, copy=True) for k, v in feeds.items()})
            calls[0] += 1
            return run(feeds)

        return rec

    acoustic = spec.graph_names("acoustic")
    sessions = graph_sessions(src, root, RuntimeOptions(threads=None), acoustic, spec.name, spec.fp16_max_level)
    runner = spec.hook("compose")(src, {n: recorder(n, s) for n, s in sessions.items()})
    vocoders = [g for g in spec.graphs.get("vocoder", ()) if g.name in src.components]
    enc = frontend_encoder(src)
    voice = getattr(enc, "emotions", {})
    labels: list[str | None] = [e for e in q.calib_emotions if e in voice] or [None]
    count = 0
    for sentence in text:
        for utt in enc.text_to_utterances(sentence):
            n = len(utt.tokens)
            for name, rate in q.step_rates.items():
                stride[name] = max(1, rate * n // q.calib_steps)
            inputs = enc.encode(utt, SimpleNamespace(emotion=labels[count % len(labels)]))
            mel, _ = runner(inputs, DEFAULT_CONTROLS)
            for g in vocoders:
                recorded.setdefault(g.name, []).append({g.inputs[0]: np.array(mel, copy=True)})
            count += 1
            if count >= limit:
                return recorded
    if not count:
        raise InputError("calibration set produced no utterances")
    return recorded


def loop_error(ref: Manifest, ref_root: Path, test: Manifest, test_root: Path, text: str) -> dict[str, float | None]:
    """INT8 vs FP32 host loop on `text`: symbols whose duration changed, and mel errors.

    ``mel_rel``: ‖mel_q − mel‖ / ‖mel‖ over the frames both have; ``mel_rel_last_quarter``: the same on the last
    quarter of frames (growth along the utterance shows autoregressive error accumulation); ``vocoder_snr_db``:
    both vocoders on the FP32 mel (None when identical).
    """
    from speedy.calibration import snr_db
    from speedy.controls import DEFAULT_CONTROLS
    from speedy.runtime import RuntimeOptions, load_runner

    opts = RuntimeOptions(threads=1)
    a = load_runner(ref, "acoustic", ref_root, opts)
    b = load_runner(test, "acoustic", test_root, opts)
    va, vb = load_runner(ref, "vocoder", ref_root, opts), load_runner(test, "vocoder", test_root, opts)
    snr = float("inf")
    enc = frontend_encoder(ref)
    changed = total = 0
    num = den = num_q = den_q = 0.0
    for utt in enc.text_to_utterances(text):
        inputs = enc.encode(utt, None)
        (ma, da), (mb, db) = a(inputs, DEFAULT_CONTROLS), b(inputs, DEFAULT_CONTROLS)
        snr = min(snr, snr_db(va(ma), vb(ma)))
        changed += int((da != db).sum())
        total += da.size
        n = min(ma.shape[1], mb.shape[1])
        d = ma[0, :n] - mb[0, :n]
        num += float((d**2).sum())
        den += float((ma[0, :n] ** 2).sum())
        q = n - n // 4
        num_q += float((d[q:] ** 2).sum())
        den_q += float((ma[0, q:n] ** 2).sum())
    return {
        "durations_changed": changed,
        "symbols": total,
        "mel_rel": round((num / max(den, 1e-12)) ** 0.5, 5),
        "mel_rel_last_quarter": round((num_q / max(den_q, 1e-12)) ** 0.5, 5),
        "vocoder_snr_db": round(snr, 2) if np.isfinite(snr) else None,
    }
