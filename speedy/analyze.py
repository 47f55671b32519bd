"""Per-layer sensitivity of both components: quantization, pruning, run-time and parameter shares.

For every layer/block (a top-level module, or one element of a module list: ``encoder.0``,
``duration_predictor``, ``postnet``, ``stacks.1``, …) of the acoustic model and the vocoder:

- quantization: MCD vs FP32 when only this layer is INT8 (static QDQ, calibrated once), and when only
  it stays float while everything else (both components) is INT8;
- pruning: MCD vs the unpruned torch pipeline when a fraction of its heads / channels is removed by
  the chosen criterion (real surgery, `speedy.prune`);
- its share of ONNX Runtime kernel time (FP32 graphs, SessionOptions.enable_profiling) and of the
  learned parameters of the whole voice.

Rows are ranked by "cost saved per dB lost": the best of INT8 (saves 3/4 of the layer's parameter bytes)
and pruning a fraction f (saves f × the mean of its parameter and time shares), divided by the dB that
action costs (floored at 0.05 dB). `quantize --recipe mixed --sensitivity FILE` reads the JSON through
`speedy.stages.mixed.groups_from_sensitivity` / `mixed_scores` instead of measuring again.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest, read_manifest
from speedy.errors import InputError

_LOGGER = logging.getLogger(__name__)

OTHER = "(other)"
"""Row of graph nodes outside every named module (length regulator, positions, PQMF, pads)."""
DB_FLOOR = 0.05
INT8_BYTES_SAVED = 0.75


@dataclass(frozen=True)
class AnalyzeConfig:
    """Options of `analyze`.

    texts: sentences to score on (None = the eval corpus); sentences: how many of them;
    fractions: pruning fractions to try per layer, each in (0, 1); criterion: pruning criterion;
    calib_sentences: calibration sentences for INT8; profile_runs: profiled passes over the inputs.
    """

    texts: tuple[str, ...] | None = None
    sentences: int = 4
    fractions: tuple[float, ...] = (0.25, 0.5)
    criterion: str = "taylor"
    calib_sentences: int = 16
    profile_runs: int = 3
    threads: int | None = None
    quant: bool = True
    prune: bool = True

    def __post_init__(self) -> None:
        from speedy.prune.criteria import CRITERIA

        if not 1 <= self.sentences <= 64:
            raise InputError(f"--sentences must be in [1, 64], got {self.sentences}")
        if not self.fractions or any(not 0.0 < f < 1.0 for f in self.fractions):
            raise InputError(f"--fractions must be in (0, 1), got {', '.join(map(str, self.fractions)) or 'none'}")
        if self.criterion not in CRITERIA:
            raise InputError(f"unknown --criterion {self.criterion!r}; choose one of: {', '.join(CRITERIA)}")
        if not 1 <= self.calib_sentences <= 5000 or not 1 <= self.profile_runs <= 100:
            raise InputError("--calib-sentences must be in [1, 5000] and profile runs in [1, 100]")


@dataclass(frozen=True)
class Layer:
    """One analysed unit: `name` is its module path (ONNX scope ``/<name>/…`` or ``/<name>.<i>/…``)."""

    component: str
    name: str
    kind: str
    params: int


def model_layers(component: str, model: Any) -> list[Layer]:
    """Top-level modules of `model`; module lists of blocks are split per element (lists of convs are not)."""
    from torch import nn

    out = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList) and not all(type(c) is nn.Conv1d for c in child):
            for i, c in enumerate(child):
                kind = type(c).__name__ if not isinstance(c, nn.ModuleList) else "residual-stack"
                out.append(Layer(component, f"{name}.{i}", kind, sum(p.numel() for p in c.parameters())))
        else:
            kind = "conv-stack" if isinstance(child, nn.ModuleList) else type(child).__name__
            out.append(Layer(component, name, kind, sum(p.numel() for p in child.parameters())))
    return [*out, Layer(component, OTHER, "graph", 0)]


def layer_of(node: str, names: Sequence[str]) -> str:
    """The layer an ONNX node belongs to, by its first scope: ``/stacks.0.1/conv1/Conv`` -> ``stacks.0``."""
    parts = node.split("/")
    if len(parts) < 3:
        return OTHER
    head = parts[1]
    for n in names:
        if head == n or head.startswith(n + "."):
            return n
    return OTHER


def quantizable_nodes(path: Path, op_types: Sequence[str], names: Sequence[str]) -> dict[str, list[str]]:
    """{layer: node names of `op_types`} in the ONNX file at `path`."""
    import onnx

    out: dict[str, list[str]] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        if node.op_type in op_types:
            out.setdefault(layer_of(node.name, names), []).append(node.name)
    return out


def profile_times(
    path: Path, feeds: Sequence[Mapping[str, np.ndarray]], runs: int, threads: int | None, workdir: Path
) -> dict[str, float]:
    """{node name: total kernel µs} from an ONNX Runtime profile of `runs` passes over `feeds` (after a warm-up)."""
    import onnxruntime as ort

    from speedy.runtime.onnx_backend import session_options

    so = session_options(threads)
    so.enable_profiling = True
    so.profile_file_prefix = str(workdir / path.stem)
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    for _ in range(runs + 1):
        for f in feeds:
            sess.run(None, dict(f))
    events = json.loads(Path(sess.end_profiling()).read_text(encoding="utf-8"))
    totals: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            node = e["name"][: -len("_kernel_time")]
            totals[node] = totals.get(node, 0.0) + float(e.get("dur", 0))
    return totals


def _resolve_sources(source: Path | None, say: Callable[[str], None]) -> tuple[Manifest, Path, Path | None, Path]:
    """-> (FP32 ONNX manifest, its folder, torch artifact folder or None, temp root to delete)."""
    tmp = Path(tempfile.mkdtemp(prefix="speedy-analyze-"))
    if source is None:
        from speedy.families import default_family

        source = default_family().hook("torch_artifact")()
    src = read_manifest(source)
    formats = {c.format for c in src.components.values()}
    if formats == {"torch"}:
        from speedy.stages.export import ExportConfig, export

        say("exporting the torch artifact to FP32 ONNX for profiling and INT8 trials")
        onnx_dir = tmp / "fp32"
        export(Path(source), onnx_dir, ExportConfig(check=False))
        return read_manifest(onnx_dir), onnx_dir, Path(source), tmp
    if formats == {"onnx"} and all(c.precision == "fp32" for c in src.components.values()):
        torch_dir = None
        for step in reversed(src.lineage):
            cand = Path(str(step.options.get("source", ""))) if step.stage == "export" else None
            if cand is not None and (cand / "manifest.json").is_file():
                torch_dir = cand
                break
        if torch_dir is None:
            say("no torch artifact in the lineage: pruning sensitivity is skipped")
        return src, Path(source), torch_dir, tmp
    raise InputError(
        f"analyze: {source} is {src.precision} {'/'.join(sorted(formats))}; analyze takes a torch "
        "artifact or its FP32 ONNX export ('speedy export' first)"
    )


def analyze(
    source: Path | None, config: AnalyzeConfig = AnalyzeConfig(), *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Measure every layer of both components; returns the JSON report (rows sorted by saved per dB).

    Returns:
        {"source", "sentences", "criterion", "fractions", "all_int8_mcd_db",
         "layers": [{"component", "name", "kind", "params", "param_share", "time_share", "quant_mcd_db",
                     "float_keep_mcd_db", "float_gain_db", "prune_mcd_db": {fraction: dB},
                     "onnx_nodes": [...], "saved_per_db", "best_action"}]}
        where dB figures are MCD vs FP32 / unpruned on the chosen sentences and shares are of the voice;
        a prune figure is null where the cut changed an utterance's length beyond ×1.4 (durations broke).
    """
    import shutil

    from speedy.calibration import acoustic_feeds, calibration_ids
    from speedy.corpus import load_corpus
    from speedy.stages.int8 import vocoder_feeds
    from speedy.stages.quantize import QuantRecipe

    say = progress or (lambda m: _LOGGER.info(m))
    texts = list(config.texts) if config.texts else load_corpus("eval")[: config.sentences]
    texts = texts[: config.sentences]
    src, root, torch_dir, tmp = _resolve_sources(source, say)
    try:
        layers = _torch_layers(torch_dir) if torch_dir is not None else _onnx_layers(src, root)
        names = {c: [x.name for x in layers if x.component == c] for c in ("acoustic", "vocoder")}
        ops = QuantRecipe.int8_static().op_types
        paths = {c: root / src.components[c].file for c in ("acoustic", "vocoder")}
        nodes = {c: quantizable_nodes(paths[c], ops[c], names[c]) for c in paths}
        eval_ids = calibration_ids(src, texts, 4 * len(texts))
        feeds = {"acoustic": acoustic_feeds(src.components["acoustic"], eval_ids)}
        feeds["vocoder"] = vocoder_feeds(
            paths["acoustic"],
            src.components["acoustic"],
            src.components["vocoder"],
            eval_ids,
            src.audio.min_vocoder_frames,
        )
        say(f"profiling ONNX Runtime ({config.profile_runs} runs over {len(eval_ids)} utterances)")
        times: dict[tuple[str, str], float] = {}
        for c in paths:
            for node, us in profile_times(paths[c], feeds[c], config.profile_runs, config.threads, tmp).items():
                key = (c, layer_of(node, names[c]))
                times[key] = times.get(key, 0.0) + us
        quant: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        base = None
        if config.quant:
            from speedy.prune.sensitivity import quant_sensitivity

            base, quant = quant_sensitivity(src, root, texts, nodes, config.calib_sentences, tmp, say)
        pruned: dict[tuple[str, str], dict[str, float | None]] = {}
        if config.prune and torch_dir is not None:
            from speedy.prune.sensitivity import prune_sensitivity

            pruned = prune_sensitivity(
                read_manifest(torch_dir), torch_dir, eval_ids, config.fractions, config.criterion, say
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = _rows(layers, times, quant, pruned, nodes, base)
    return {
        "source": str(source) if source else "default voice",
        "sentences": texts,
        "criterion": config.criterion,
        "fractions": list(config.fractions),
        "all_int8_mcd_db": base,
        "layers": rows,
    }


def _torch_layers(torch_dir: Path) -> list[Layer]:
    from speedy.runtime.torch_backend import load_torch_modules

    mods = load_torch_modules(read_manifest(torch_dir), torch_dir)
    return [*model_layers("acoustic", mods["acoustic"]), *model_layers("vocoder", mods["vocoder"])]


def _onnx_layers(src: Manifest, root: Path) -> list[Layer]:
    """Layers from ONNX initializer scopes when no torch weights are at hand (parameters by scope)."""
    import onnx

    out: list[Layer] = []
    for c in ("acoustic", "vocoder"):
        counts: dict[str, int] = {}
        for init in onnx.load(str(root / src.components[c].file)).graph.initializer:
            head = init.name.split(".")[0] if "." in init.name else OTHER
            counts[head] = counts.get(head, 0) + int(np.prod(init.dims))
        out += [Layer(c, n, "onnx-scope", k) for n, k in counts.items() if n != OTHER] + [Layer(c, OTHER, "graph", 0)]
    return out


def _rows(
    layers: Sequence[Layer],
    times: Mapping[tuple[str, str], float],
    quant: Mapping[tuple[str, str], tuple[float | None, float | None]],
    pruned: Mapping[tuple[str, str], Mapping[str, float | None]],
    nodes: Mapping[str, Mapping[str, list[str]]],
    base: float | None,
) -> list[dict[str, Any]]:
    total_params = max(1, sum(x.params for x in layers))
    total_time = max(1e-9, sum(times.values()))
    rows = []
    for x in layers:
        key = (x.component, x.name)
        p_share, t_share = x.params / total_params, times.get(key, 0.0) / total_time
        q_only, q_float = quant.get(key, (None, None))
        options: list[tuple[float, str]] = []
        if q_only is not None and p_share > 0:
            options.append((INT8_BYTES_SAVED * p_share / max(q_only, DB_FLOOR), "int8"))
        for f, db in pruned.get(key, {}).items():
            if db is None:  # durations broke: not a candidate
                continue
            options.append((float(f) * (p_share + t_share) / 2 / max(db, DB_FLOOR), f"prune {f}"))
        best = max(options) if options else (0.0, "-")
        rows.append(
            {
                "component": x.component,
                "name": x.name,
                "kind": x.kind,
                "params": x.params,
                "param_share": round(p_share, 5),
                "time_share": round(t_share, 5),
                "quant_mcd_db": q_only,
                "float_keep_mcd_db": q_float,
                "float_gain_db": None if q_float is None or base is None else round(base - q_float, 4),
                "prune_mcd_db": dict(pruned.get(key, {})),
                "onnx_nodes": list(nodes.get(x.component, {}).get(x.name, [])),
                "saved_per_db": round(best[0], 5),
                "best_action": best[1],
            }
        )
    return sorted(rows, key=lambda r: -r["saved_per_db"])
