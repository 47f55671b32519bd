"""Export stage: a family's torch modules → an ONNX artifact, one graph per declared GraphSpec, parity-checked.

One pipeline for every family (optimum's exporter pattern: one config per architecture, one exporter that
loops over the sub-models). The family's ``export_plan`` hook builds its torch modules, example inputs and
PyTorch reference outputs (`speedy.families.graph_spec.ExportPlan`); this stage iterates over the family's
``graphs`` (component → graphs), exports each with dynamic axes, runs it in ONNX Runtime against PyTorch with
the graph's checks (`ExportParityError` names the output and the difference) and, for a host-loop family,
checks the exported loop through the runtime against the PyTorch reference. The folder is written whole or
not at all.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from speedy.calibration import snr_db
from speedy.errors import InputError, ModelError, ParityError
from speedy.families import FamilySpec, default_family, for_family
from speedy.families.graph_spec import OPSET, ExportPlan, GraphSpec, OutputCheck, snr_value

_LOGGER = logging.getLogger(__name__)

#: Short real sentences for the parity check (spoken by the real frontend).
CHECK_SENTENCES = ("今天天气很好。", "我们一起去公园散步吧！", "请在三点以前把报告发给我。")


class ExportParityError(ParityError):
    """ONNX Runtime disagrees with PyTorch beyond the family's tolerance (names output and difference)."""


@dataclass(frozen=True)
class ExportConfig:
    """Options of the export stage. `sentences` feed the parity check; `opset` is pinned by default."""

    opset: int = OPSET
    sentences: tuple[str, ...] = CHECK_SENTENCES
    check: bool = True
    threads: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 13 <= self.opset <= 21:
            raise InputError(f"--opset must be in [13, 21], got {self.opset}")


def export(
    source: Path | None,
    out: Path,
    config: ExportConfig = ExportConfig(),
    *,
    family: FamilySpec | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Manifest:
    """Export `source` to an ONNX artifact in `out` and return the written manifest.

    `source`: a torch artifact folder (its manifest names the family), a model folder of `family` (e.g. a
    ModelScope Sambert folder), or None: `family`'s built-in weights (default: the default voice). `options`
    go to the family's plan (``source_wheel``, ``voice``). ``extra["parity"]`` lists the figures.
    """
    say = progress or (lambda m: _LOGGER.info(m))
    if family is None:
        family = default_family() if source is None else for_family(_torch_source(Path(source)).family)
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it")
    plan: ExportPlan = family.hook("export_plan")(source, config, say, **options)
    start = time.perf_counter()
    threads = config.threads
    with atomic_artifact(out, force=force) as staging:
        comps: dict[str, Component] = {}
        figures: list[dict[str, Any]] = [dict(f) for f in plan.figures]
        for graph in family.all_graphs():
            say(f"exporting {graph.name} to ONNX (opset {plan.opset})")
            path = staging / f"{graph.name}.onnx"
            export_graph(
                plan.modules[graph.name], plan.trace[graph.name], graph, path, plan.opset, plan.metadata.get(graph.name)
            )
            comps[graph.name] = _component(graph, path, plan)
        if config.check:
            say("checking ONNX Runtime against PyTorch")
            for graph in family.all_graphs():
                figures += check_parity(staging / f"{graph.name}.onnx", graph, plan.checks[graph.name], threads)
        manifest = plan.manifest(comps)
        if config.check and plan.loop_check is not None:
            from speedy.runtime import RuntimeOptions, load_runner

            say("checking the ONNX host loop against the PyTorch reference")
            runner = load_runner(manifest, "acoustic", staging, RuntimeOptions(threads=threads or 1))
            figures += plan.loop_check(manifest, runner)
        step = lineage_step(
            "export",
            {**dict(plan.step), "opset": plan.opset, "check": config.check},
            time.perf_counter() - start,
            "torch",
            "onnx",
            "onnxruntime",
        )
        manifest = manifest.with_step(step, extra={**dict(manifest.extra), "parity": figures})
        write_manifest(staging, manifest)
    return manifest


def _torch_source(source: Path) -> Manifest:
    """The manifest of a torch artifact folder; InputError for any other artifact."""
    src = read_manifest(source)
    if any(c.format != "torch" for c in src.components.values()):
        raise InputError(
            f"export: {source} is not a torch artifact (formats: "
            f"{', '.join(c.format for c in src.components.values())}); export takes a torch artifact"
        )
    return src


def _component(graph: GraphSpec, path: Path, plan: ExportPlan) -> Component:
    extra: dict[str, Any] = {"opset": plan.opset}
    if plan.roles:
        extra["role"] = graph.role
    extra.update(graph.settings())
    extra.update(plan.component_extra.get(graph.name, {}))
    return Component(
        file=path.name,
        format="onnx",
        precision="fp32",
        inputs=graph.inputs,
        outputs=graph.outputs,
        sha256=sha256_file(path),
        dynamic_axes=graph.axes_json(),
        extra=extra,
    )


def export_graph(
    module: Any,
    inputs: tuple[Any, ...],
    graph: GraphSpec,
    path: Path,
    opset: int,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """torch.onnx.export of one graph (the TorchScript exporter, chosen on purpose: the dynamo exporter does not
    take these models' data-dependent lengths) with the graph's names and dynamic axes, and `metadata` as the
    file's metadata_props (sherpa-onnx's habit); ModelError naming the graph when the exporter fails or drops a
    declared input."""
    import onnx
    import torch

    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # shape branches are fixed per graph by design; other exporter chatter is speedy.noise's to hide (-v shows it)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                module,
                tuple(torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in inputs),
                str(path),
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                dynamic_axes={k: dict(v) for k, v in graph.dynamic_axes.items()},
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types; one line names the graph
        raise ModelError(f"export: torch.onnx.export failed for {graph.name}: {str(e).splitlines()[0][:300]}") from e
    model = onnx.load(str(path))
    kept = {i.name for i in model.graph.input}
    if kept != set(graph.inputs):
        raise ModelError(f"export: {graph.name}'s exported inputs {sorted(kept)} differ from {list(graph.inputs)}")
    if metadata:
        del model.metadata_props[:]
        for k, v in metadata.items():
            model.metadata_props.add(key=k, value=str(v))
        onnx.save(model, str(path))


def check_parity(
    path: Path, graph: GraphSpec, examples: Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]], threads: int | None
) -> list[dict[str, Any]]:
    """Run the ONNX file on each example and compare with PyTorch per `graph.checks`; raise on failure.

    Returns one figure per check: the worst value over the examples (max |Δ|, or the lowest SNR in dB).
    """
    from speedy.runtime.onnx_backend import make_session

    sess = make_session(path, threads)
    worst: dict[str, float] = {}
    for inputs, ref_outputs in examples:
        feed = {n: np.asarray(a) for n, a in zip(graph.inputs, inputs)}
        got = dict(zip(graph.outputs, sess.run(list(graph.outputs), feed)))
        ref = dict(zip(graph.outputs, (np.asarray(t) for t in ref_outputs)))
        for chk in graph.checks:
            for name in graph.outputs if chk.name == "*" else (chk.name,):
                v = _compare(graph.name, name, chk, ref[name], got[name])
                prev = worst.get(chk.name)
                worst[chk.name] = v if prev is None else (min(prev, v) if chk.kind == "snr_db" else max(prev, v))
    return [_figure(graph.name, c, worst[c.name], len(examples)) for c in graph.checks]


def _compare(graph: str, output: str, chk: OutputCheck, a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ExportParityError(f"export: {graph}.{output} shape {b.shape} ≠ PyTorch {a.shape}")
    if chk.kind == "exact":
        v = float(np.abs(a.astype(np.int64) - b.astype(np.int64)).max(initial=0))
        if v != 0:
            raise ExportParityError(f"export: {graph}.{output} differs from PyTorch (max |Δ| {v:g})")
        return v
    if chk.kind == "snr_db":
        v = snr_db(a, b)
        if v < chk.tol:
            raise ExportParityError(f"export: {graph}.{output} SNR {v:.1f} dB < {chk.tol:g} dB")
        return v
    diff = np.abs(a.astype(np.float64) - b)
    v = float(diff.max(initial=0.0))
    bound = chk.tol + chk.rtol * np.abs(a) if chk.kind == "allclose" else chk.tol
    if np.any(diff > bound):
        raise ExportParityError(f"export: {graph}.{output} max |Δ| {v:.3g} > tolerance {_tol(chk)}")
    return v


def _tol(chk: OutputCheck) -> str:
    return f"{chk.tol:g} + {chk.rtol:g}·|PyTorch|" if chk.kind == "allclose" else f"{chk.tol:g}"


def _figure(graph: str, chk: OutputCheck, value: float, cases: int) -> dict[str, Any]:
    figure: dict[str, Any] = {"component": graph, "output": chk.name, "kind": chk.kind, "value": value, "tol": chk.tol}
    if chk.kind == "allclose":
        figure["rtol"] = chk.rtol
    if chk.kind == "snr_db":
        figure.update(snr_value(value))
    return {**figure, "cases": cases}


def reference_artifact(
    family: FamilySpec | None = None, progress: Callable[[str], None] | None = None, **options: Any
) -> Path:
    """`family`'s FP32 ONNX artifact from its built-in weights (default: the default voice), exported into the
    cache on first use and whenever the family's ``reference`` hook says the cached copy is stale (`options`
    go to the family's plan, e.g. ``source_wheel``).

    Only that export needs torch; on a slim install without it, MissingExtraError (exit 3) says so.
    """
    import importlib.util

    from speedy.errors import MissingExtraError

    family = family or default_family()
    folder, fresh = family.hook("reference")()
    if fresh:
        return Path(folder)
    if importlib.util.find_spec("torch") is None:  # a slim install: exporting needs the build-time set
        raise MissingExtraError("torch", "export", f"exporting {family.name} (no ONNX artifact in {folder} yet)")
    say = progress or (lambda m: _LOGGER.info(m))
    say(f"first use: exporting {family.name} to ONNX (once; cached in {folder})")
    Path(folder).parent.mkdir(parents=True, exist_ok=True)
    export(None, Path(folder), family=family, force=True, progress=progress, **options)
    return Path(folder)
