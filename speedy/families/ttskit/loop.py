"""Host loop for the exported ttskit graphs (numpy + ONNX Runtime; imports no torch).

::

    encoder(ids, speaker) → memory
    decoder_step × L   (state carried here; stops when sigmoid(gate) > threshold or at max steps)
    postnet(all L frames) → trimmed at ttskit's end frame → (vocoder)

It reproduces :func:`speedy.families.ttskit.modules.reference_inference` step for step. The prenet's
dropout stays on at inference (Tacotron 2's design, which ttskit keeps): its masks come from a numpy
generator seeded per utterance (:func:`prenet_masks`), so a text, voice and seed always give the same
audio, and the PyTorch reference can be fed the very same masks.

Graphs are ``onnxruntime.InferenceSession`` objects or callables ``feeds -> list of outputs``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError

GRAPHS = ("encoder", "decoder_step", "postnet")
STEP_STATE = ("att_h", "att_c", "dec_h", "dec_c", "att_w", "att_wcum", "context")
GraphRunner = Callable[[Mapping[str, np.ndarray]], Sequence[np.ndarray]]


@dataclass(frozen=True)
class LoopConfig:
    """Sizes and stop rule of the decoder (recorded in the manifest's ``extra["graphs"]["loop"]``)."""

    n_mels: int = 80
    attention_rnn_dim: int = 512
    decoder_rnn_dim: int = 512
    memory_dim: int = 288
    prenet_dim: int = 128
    prenet_dropout: float = 0.5
    gate_threshold: float = 0.8
    max_decoder_steps: int = 1200
    seed: int = 1234


@dataclass(frozen=True)
class LoopResult:
    """One utterance: ``mel`` ``(L, 80)`` postnet mel trimmed at ``end``; ``steps`` decoder steps run;
    ``stopped`` whether the gate stopped it (else max steps); ``durations`` ``(T,)`` frames per symbol
    (argmax of each frame's attention); ``gates`` ``(steps,)`` logits; ``seconds`` wall time."""

    mel: np.ndarray
    steps: int
    end: int
    stopped: bool
    durations: np.ndarray
    gates: np.ndarray
    seconds: float


def prenet_masks(seed: int, config: LoopConfig) -> Callable[[int], np.ndarray]:
    """Step → the two prenet dropout masks ``(2, 1, prenet_dim)`` float32 (0 or 1/(1−p)), drawn in order."""
    rng = np.random.default_rng(seed)
    keep = np.float32(1.0 / (1.0 - config.prenet_dropout))
    drawn: list[np.ndarray] = []

    def mask(step: int) -> np.ndarray:
        while len(drawn) <= step:
            drawn.append((rng.random((2, 1, config.prenet_dim)) >= config.prenet_dropout).astype(np.float32) * keep)
        return drawn[step]

    return mask


def end_frame(gates: np.ndarray, threshold: float) -> int:
    """Frames kept, as ttskit's ``sdk_api`` cuts: the first frame whose stop probability exceeds
    ``threshold`` (that frame is dropped), else the most probable one, else all."""
    prob = 1.0 / (1.0 + np.exp(-gates.astype(np.float64)))
    return int(np.argmax(prob > threshold)) or int(np.argmax(prob)) or int(gates.size)


def as_runner(graph: Any) -> GraphRunner:
    """Wrap an ``InferenceSession`` (``run(None, feeds)``) or pass a callable through."""
    if hasattr(graph, "run") and hasattr(graph, "get_inputs"):
        return lambda feeds: graph.run(None, dict(feeds))
    if callable(graph):
        return graph
    raise ModelError(f"ttskit graph: expected an InferenceSession or a callable, got {type(graph).__name__}")


class TtskitLoop:
    """Runs the encoder, decoder-step and postnet graphs for one utterance at a time."""

    def __init__(self, graphs: Mapping[str, Any], config: LoopConfig) -> None:
        missing = [g for g in GRAPHS if g not in graphs]
        if missing:
            raise ModelError(f"ttskit loop: missing graphs {', '.join(missing)}")
        self.config = config
        self._run = {name: as_runner(g) for name, g in graphs.items()}

    def decode(self, ids: np.ndarray, speaker: np.ndarray, seed: int | None = None,
               max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """ids ``(T,)`` int64, speaker ``(32,)`` float32 → (decoder mel ``(1, L, 80)``, gate logits
        ``(L,)``, attention argmax per frame ``(L,)``), before the postnet and untrimmed."""
        cfg, run = self.config, self._run
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(1, -1))
        if ids.size == 0:
            raise InputError("ttskit: no symbols to speak")
        spk = np.ascontiguousarray(np.asarray(speaker, dtype=np.float32).reshape(1, -1))
        memory, processed = run["encoder"]({"ids": ids, "speaker": spk})
        t = memory.shape[1]
        z = np.zeros
        state = dict(att_h=z((1, cfg.attention_rnn_dim), np.float32), att_c=z((1, cfg.attention_rnn_dim), np.float32),
                     dec_h=z((1, cfg.decoder_rnn_dim), np.float32), dec_c=z((1, cfg.decoder_rnn_dim), np.float32),
                     att_w=z((1, t), np.float32), att_wcum=z((1, t), np.float32),
                     context=z((1, cfg.memory_dim), np.float32))
        masks = prenet_masks(cfg.seed if seed is None else seed, cfg)
        limit = max_steps or cfg.max_decoder_steps
        frame = z((1, cfg.n_mels), np.float32)
        frames, gates, focus = [], [], []
        step = run["decoder_step"]
        while True:
            frame, gate, *new = step({"frame": frame, "prenet_mask": masks(len(frames)), **state,
                                      "memory": memory, "processed": processed})
            state = dict(zip(STEP_STATE, new))
            frames.append(frame)
            gates.append(float(gate.reshape(-1)[0]))
            focus.append(int(np.argmax(state["att_w"][0])))
            if 1.0 / (1.0 + np.exp(-np.float32(gates[-1]))) > cfg.gate_threshold or len(frames) >= limit:
                break
        mel = np.stack([f[0] for f in frames])[None].astype(np.float32)
        return mel, np.asarray(gates, np.float32), np.asarray(focus, np.int64)

    def acoustic(self, ids: np.ndarray, speaker: np.ndarray, seed: int | None = None,
                 max_steps: int | None = None) -> LoopResult:
        """Symbols + speaker vector → postnet mel trimmed at ttskit's end frame (see :func:`end_frame`)."""
        start = time.perf_counter()
        mel, gates, focus = self.decode(ids, speaker, seed, max_steps)
        (post,) = self._run["postnet"]({"mel": mel})
        end = end_frame(gates, self.config.gate_threshold)
        stopped = bool(1.0 / (1.0 + np.exp(-np.float32(gates[-1]))) > self.config.gate_threshold)
        durations = np.bincount(focus[:end], minlength=int(np.asarray(ids).size)).astype(np.int64)
        return LoopResult(mel=post[0, :end], steps=int(gates.size), end=end, stopped=stopped, durations=durations,
                          gates=gates, seconds=time.perf_counter() - start)
