"""The torch side of Sambert-HifiGan's per-piece graphs: each declared graph as a module (:class:`Method`), the
host loop run on PyTorch (:func:`torch_graphs`) and the feeds it records.

Whole-model export fails on the autoregressive duration predictor and PNCA decoder, so each piece
of :class:`~speedy.families.sambert.model.SambertAcoustic` (and the vocoder) becomes its own graph, named as
:data:`speedy.families.sambert.loop.GRAPH_NAMES`; :class:`~speedy.families.sambert.loop.SambertLoop`
chains them. Recording the loop's feeds on PyTorch is how real inputs for each graph are made: the export
plan (speedy.families.sambert.export) traces on one input and checks on another of a different length.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from speedy.families.graph_spec import GraphSpec, flat
from speedy.families.host_loop import GraphRunner
from speedy.families.sambert.graphs import GRAPHS
from speedy.families.sambert.kan_hifigan import KanHifiGan
from speedy.families.sambert.loop import (
    SambertInputs,
    SambertLoop,
    SambertLoopConfig,
)
from speedy.families.sambert.model import SambertAcoustic

_LOGGER = logging.getLogger(__name__)

OPSET = 17
"""ONNX opset of every Sambert graph."""


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


class Method(nn.Module):
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
        fn = getattr(owners[spec.role], METHODS[spec.name])

        @torch.no_grad()
        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            out = fn(*(torch.from_numpy(np.asarray(feeds[name])) for name in spec.inputs))
            return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

        return run

    return {g.name: runner(g) for g in flat(GRAPHS).values() if owners[g.role] is not None}


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
