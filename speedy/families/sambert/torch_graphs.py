"""Export Sambert-HifiGan as per-piece ONNX graphs for the host loop, with a parity check.

Whole-model export fails on the autoregressive duration predictor and PNCA decoder, so each piece
of :class:`~speedy.families.sambert.model.SambertAcoustic` (and the vocoder) becomes its own graph, named as
:data:`speedy.families.sambert.loop.GRAPH_NAMES`; :class:`~speedy.families.sambert.loop.SambertLoop`
chains them. Every graph carries the loop's config in its ``metadata_props``.

The same loop also runs on the PyTorch modules (:func:`torch_graphs`), which is how real inputs for
each graph are recorded: graphs are traced on one sentence and checked in ONNX Runtime against
PyTorch on another of a different length, so the dynamic axes are exercised too.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from speedy.errors import ModelError, OutputError
from speedy.families.host_loop import GraphRunner
from speedy.families.sambert.graphs import GRAPHS
from speedy.families.sambert.kan_hifigan import KanHifiGan
from speedy.families.sambert.loop import (
    CONFIG_METADATA_KEY,
    GRAPH_NAMES,
    SambertInputs,
    SambertLoop,
    SambertLoopConfig,
)
from speedy.families.sambert.model import SambertAcoustic

_LOGGER = logging.getLogger(__name__)

OPSET = 17
"""ONNX opset of every Sambert graph."""

ATOL = 1e-4
RTOL = 1e-3
"""Parity tolerance per element: ``|onnx - torch| <= ATOL + RTOL * |torch|``."""


@dataclass(frozen=True)
class GraphSpec:
    """One exported piece: the module method, its input/output names and dynamic axes."""

    method: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    module: str = "acoustic"


#: The torch method behind each graph of speedy.families.sambert.graphs.GRAPHS.
METHODS = {
    "encoder": "encode",
    "variance": "predict_variance",
    "duration_step": "duration_step",
    "decoder_memory": "decoder_memory",
    "decoder_step": "decoder_step",
    "postnet": "postnet",
    "vocoder": "forward",
}
SPECS: dict[str, GraphSpec] = {
    g.name: GraphSpec(METHODS[g.name], g.inputs, g.outputs, {k: dict(v) for k, v in g.dynamic_axes.items()}, g.role)
    for graphs in GRAPHS.values()
    for g in graphs
}


class _Method(nn.Module):
    """Expose one method of a module as ``forward`` (positional tensors in, tuple out)."""

    def __init__(self, owner: nn.Module, method: str) -> None:
        super().__init__()
        self.owner = owner
        self.method = method

    def forward(self, *args: Tensor) -> Any:
        return getattr(self.owner, self.method)(*args)


def loop_config(acoustic: SambertAcoustic, vocoder: KanHifiGan | None, sample_rate: int) -> SambertLoopConfig:
    """The host-loop settings implied by the modules."""
    cfg = acoustic.config
    return SambertLoopConfig(
        outputs_per_step=cfg.outputs_per_step,
        num_mels=cfg.num_mels,
        decoder_layers=cfg.decoder_num_layers,
        decoder_heads=cfg.decoder_num_heads,
        decoder_head_dim=cfg.decoder_head_dim,
        duration_lstm_layers=2,
        duration_lstm_units=cfg.dur_pred_lstm_units,
        max_len=cfg.max_len,
        hop_size=vocoder.hop_size if vocoder is not None else 0,
        sample_rate=sample_rate,
        vocab_sizes=cfg.vocab_sizes,
    )


def torch_graphs(acoustic: SambertAcoustic, vocoder: KanHifiGan | None = None) -> dict[str, GraphRunner]:
    """The graphs as PyTorch callables with the ONNX names (numpy feeds in, numpy outputs out)."""
    owners = {"acoustic": acoustic, "vocoder": vocoder}

    def runner(spec: GraphSpec) -> GraphRunner:
        fn = getattr(owners[spec.module], spec.method)

        @torch.no_grad()
        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            out = fn(*(torch.from_numpy(np.asarray(feeds[name])) for name in spec.inputs))
            return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

        return run

    return {name: runner(spec) for name, spec in SPECS.items() if owners[spec.module] is not None}


def record_feeds(
    acoustic: SambertAcoustic, vocoder: KanHifiGan | None, inputs: SambertInputs, step_index: int = 3
) -> dict[str, dict[str, np.ndarray]]:
    """Run the host loop on PyTorch and keep each graph's feeds (call ``step_index`` for step graphs)."""
    recorded: dict[str, dict[str, np.ndarray]] = {}

    def recording(name: str, fn: GraphRunner) -> GraphRunner:
        calls = [0]

        def run(feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
            if calls[0] <= step_index:
                recorded[name] = {k: np.array(v, copy=True) for k, v in feeds.items()}
            calls[0] += 1
            return fn(feeds)

        return run

    graphs = {name: recording(name, fn) for name, fn in torch_graphs(acoustic, vocoder).items()}
    loop = SambertLoop(graphs, loop_config(acoustic, vocoder, 0))
    if vocoder is not None:
        loop.synthesize(inputs)
    else:
        loop.acoustic(inputs)
    return recorded


def sample_inputs(acoustic: SambertAcoustic, length: int, seed: int) -> SambertInputs:
    """Random in-vocabulary symbols of ``length`` (for tracing and checks; content does not matter)."""
    rng = np.random.default_rng(seed)
    sizes = acoustic.config.vocab_sizes
    return SambertInputs(**{k: rng.integers(0, max(n - 3, 1), length) for k, n in sizes.items()})


def export_sambert_graphs(
    source: Path | str | Any,
    out_dir: Path | str,
    *,
    voice: str | None = None,
    check: bool = True,
    sample_rate: int | None = None,
) -> dict[str, Path]:
    """Write ``<name>.onnx`` for every graph into ``out_dir`` (created atomically; must not exist or be empty).

    Args:
        source: a ModelScope model folder, a :class:`~speedy.families.sambert.source.LoadedSambert`,
            or an ``(acoustic, vocoder)`` pair (vocoder may be None: no ``vocoder.onnx``).
        voice: voice of a model folder (default: its first).
        check: compare ONNX Runtime with PyTorch on every graph (raises :class:`ModelError` beyond tolerance).
        sample_rate: recorded in the metadata (default: the voice's audio config, else 16000).

    Returns:
        Graph name → path of its ONNX file.
    """
    acoustic, vocoder, rate = _resolve(source, voice)
    rate = sample_rate or rate
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out} exists and is not an empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        cfg = loop_config(acoustic, vocoder, rate)
        trace = record_feeds(acoustic, vocoder, sample_inputs(acoustic, 24, seed=0))
        owners = {"acoustic": acoustic, "vocoder": vocoder}
        paths = {}
        for name in GRAPH_NAMES:
            spec = SPECS[name]
            owner = owners[spec.module]
            if owner is None:
                continue
            paths[name] = _export_one(owner, name, spec, trace[name], tmp / f"{name}.onnx", cfg)
        if check:
            diffs = check_sambert_graphs(acoustic, vocoder, paths)
            _LOGGER.info("sambert ONNX parity (max abs diff): %s", ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {name: out / path.name for name, path in paths.items()}


def check_sambert_graphs(
    acoustic: SambertAcoustic, vocoder: KanHifiGan | None, paths: Mapping[str, Path], length: int = 17
) -> dict[str, float]:
    """ONNX Runtime vs PyTorch on recorded feeds of a ``length``-symbol sentence: max abs diff per graph.

    Raises:
        ModelError: a graph differs beyond ``ATOL + RTOL·|torch|`` (names the graph and output).
    """
    import onnxruntime as ort

    feeds = record_feeds(acoustic, vocoder, sample_inputs(acoustic, length, seed=1))
    reference = torch_graphs(acoustic, vocoder)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a check, not a benchmark: avoid spinning threads on shared cores
    diffs: dict[str, float] = {}
    for name, path in paths.items():
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, feeds[name])
        want = reference[name](feeds[name])
        worst = 0.0
        for out_name, g, w in zip(SPECS[name].outputs, got, want):
            if g.shape != w.shape:
                raise ModelError(f"{path.name}: output {out_name} has shape {g.shape}, PyTorch gives {w.shape}")
            diff = np.abs(g.astype(np.float64) - w)
            if np.any(diff > ATOL + RTOL * np.abs(w)):
                raise ModelError(f"{path.name}: output {out_name} differs from PyTorch by up to {diff.max():.3g}")
            worst = max(worst, float(diff.max(initial=0.0)))
        diffs[name] = worst
    return diffs


def _export_one(
    owner: nn.Module, name: str, spec: GraphSpec, feeds: Mapping[str, np.ndarray], path: Path, cfg: SambertLoopConfig
) -> Path:
    import onnx

    args = tuple(torch.from_numpy(np.asarray(feeds[k])) for k in spec.inputs)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", torch.jit.TracerWarning
        )  # shape-dependent branches are fixed per graph by design
        warnings.simplefilter("ignore", UserWarning)  # exporter notes on LSTM batch size / shape inference
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # the TorchScript exporter, chosen on purpose (as stages/export.py)
        torch.onnx.export(
            _Method(owner, spec.method),
            args,
            str(path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=spec.dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    kept = {i.name for i in model.graph.input}
    if kept != set(spec.inputs):
        raise ModelError(f"{name}: exported inputs {sorted(kept)} differ from {list(spec.inputs)}")
    for key, value in (
        (CONFIG_METADATA_KEY, cfg.to_json()),
        ("speedy.graph", name),
        ("sample_rate", str(cfg.sample_rate)),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _resolve(source: Any, voice: str | None) -> tuple[SambertAcoustic, KanHifiGan | None, int]:
    if isinstance(source, (str, Path)):
        from speedy.families.sambert.source import load_sambert

        source = load_sambert(source, voice)
    if hasattr(source, "acoustic") and hasattr(source, "voice"):
        return source.acoustic.eval(), source.vocoder.eval(), source.voice.audio.sample_rate
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], SambertAcoustic):
        voc = source[1]
        if voc is not None and not isinstance(voc, KanHifiGan):
            raise ModelError(f"export: expected a KanHifiGan vocoder, got {type(voc).__name__}")
        return source[0].eval(), voc.eval() if voc is not None else None, 16000
    raise ModelError(
        f"export: expected a model folder, LoadedSambert or (acoustic, vocoder), got {type(source).__name__}"
    )
