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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from speedy.errors import InputError, ModelError
from speedy.families.host_loop import as_runner

GRAPHS = ("encoder", "decoder_step", "postnet")
STEP_STATE = ("att_h", "att_c", "dec_h", "dec_c", "att_w", "att_wcum", "context")


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
    #: The gate is obeyed only once the attention peaks within this many symbols of the input's end
    #: (None = ttskit's plain rule). Some voices' gates fire after two or three frames on short inputs
    #: (Xiaogang on 你好。 stopped at frame 3 with the plain rule, measured); Tacotron 2 ports commonly
    #: guard the stop this way.
    stop_attention_margin: int | None = 4
    #: Decoding stops at this many frames per input symbol (and never beyond ``max_decoder_steps``):
    #: ≈ 5 frames per symbol is normal speech, so a lost attention cannot run on for 14 s.
    max_frames_per_symbol: int = 12
    #: Stop as well once the attention has stayed on the last two symbols (``~ _``) for this many frames
    #: (None = never): Xiaowei's gate never passes 0.18 (logit −1.5; measured on three eval sentences),
    #: so with the gate alone every sentence ran to the step limit.
    end_hold_frames: int | None = 10
    #: Attention window (symbols before, after the previous frame's attention peak); energies outside
    #: get −1e4 (None = ttskit's unrestricted attention). Without it some voices' first attention lands
    #: on the end token of a short input and decoding stops at once (Xiaogang on 你好。: peak at symbol
    #: 10 of 12 from step 0, 3 frames of output; Aiwei on 吗？ with a (2, 6) window: peak on the end
    #: token from step 0, 4 frames; measured). The peak advances about one symbol per 5 frames.
    attention_window: tuple[int, int] | None = (2, 3)


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


def sigmoid(x: float) -> float:
    """The stop probability of a gate logit, in float32 as the reference computes it."""
    return float(np.float32(1.0) / (np.float32(1.0) + np.exp(-np.float32(x))))


def attention_bias(focus: int, symbols: int, config: LoopConfig) -> np.ndarray:
    """``(1, symbols)`` float32 added to the attention energies: 0 inside the window around ``focus``."""
    bias = np.zeros((1, symbols), np.float32)
    if config.attention_window is not None:
        back, front = config.attention_window
        bias[0, : max(0, focus - back)] = -1e4
        bias[0, focus + front + 1 :] = -1e4
    return bias


def step_limit(symbols: int, config: LoopConfig) -> int:
    """Most decoder steps for an input of ``symbols`` ids."""
    return max(1, min(config.max_decoder_steps, config.max_frames_per_symbol * symbols))


def should_stop(gate: float, focus: int, symbols: int, config: LoopConfig, hold: int = 0) -> bool:
    """Whether the step with gate logit ``gate`` and attention peak ``focus`` ends the utterance;
    ``hold``: frames in a row (this one included) whose attention peaked on the last two symbols."""
    if config.end_hold_frames is not None and hold >= config.end_hold_frames:
        return True
    if sigmoid(gate) <= config.gate_threshold:
        return False
    margin = config.stop_attention_margin
    return margin is None or focus >= symbols - margin


def end_frame(gates: np.ndarray, stopped: bool) -> int:
    """Frames kept, as ttskit's ``sdk_api`` cuts: the stopping frame is dropped; when the step limit
    ended decoding, the frames up to the most probable stop (or all, if that is frame 0)."""
    if stopped:
        return max(1, int(gates.size) - 1)
    return int(np.argmax(gates)) or int(gates.size)


class TtskitLoop:
    """Runs the encoder, decoder-step and postnet graphs for one utterance at a time."""

    def __init__(self, graphs: Mapping[str, Any], config: LoopConfig) -> None:
        missing = [g for g in GRAPHS if g not in graphs]
        if missing:
            raise ModelError(f"ttskit loop: missing graphs {', '.join(missing)}")
        self.config = config
        self.graphs = dict(graphs)  # as given (sessions or callables), for callers that check what runs
        self._run = {name: as_runner(g, "ttskit") for name, g in graphs.items()}

    def decode(
        self, ids: np.ndarray, speaker: np.ndarray, seed: int | None = None, max_steps: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """ids ``(T,)`` int64, speaker ``(32,)`` float32 → (decoder mel ``(1, L, 80)``, gate logits
        ``(L,)``, attention argmax per frame ``(L,)``, whether the stop rule fired (False: the step limit
        ended it)), before the postnet and untrimmed."""
        cfg, run = self.config, self._run
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(1, -1))
        if ids.size == 0:
            raise InputError("ttskit: no symbols to speak")
        spk = np.ascontiguousarray(np.asarray(speaker, dtype=np.float32).reshape(1, -1))
        memory, processed = run["encoder"]({"ids": ids, "speaker": spk})
        t = memory.shape[1]
        z = np.zeros
        state = dict(
            att_h=z((1, cfg.attention_rnn_dim), np.float32),
            att_c=z((1, cfg.attention_rnn_dim), np.float32),
            dec_h=z((1, cfg.decoder_rnn_dim), np.float32),
            dec_c=z((1, cfg.decoder_rnn_dim), np.float32),
            att_w=z((1, t), np.float32),
            att_wcum=z((1, t), np.float32),
            context=z((1, cfg.memory_dim), np.float32),
        )
        masks = prenet_masks(cfg.seed if seed is None else seed, cfg)
        limit = max_steps or step_limit(t, cfg)
        frame = z((1, cfg.n_mels), np.float32)
        frames: list[np.ndarray] = []
        gates: list[float] = []
        focus: list[int] = []
        hold = 0
        step = run["decoder_step"]
        while True:
            bias = attention_bias(focus[-1] if focus else 0, t, cfg)
            frame, gate, *new = step(
                {
                    "frame": frame,
                    "prenet_mask": masks(len(frames)),
                    **state,
                    "memory": memory,
                    "processed": processed,
                    "att_bias": bias,
                }
            )
            state = dict(zip(STEP_STATE, new))
            frames.append(frame)
            gates.append(float(gate.reshape(-1)[0]))
            focus.append(int(np.argmax(state["att_w"][0])))
            hold = hold + 1 if focus[-1] >= t - 2 else 0
            stopped = should_stop(gates[-1], focus[-1], t, cfg, hold)
            if stopped or len(frames) >= limit:
                break
        mel = np.stack([f[0] for f in frames])[None].astype(np.float32)
        return mel, np.asarray(gates, np.float32), np.asarray(focus, np.int64), stopped

    def acoustic(
        self, ids: np.ndarray, speaker: np.ndarray, seed: int | None = None, max_steps: int | None = None
    ) -> LoopResult:
        """Symbols + speaker vector → postnet mel trimmed at ttskit's end frame (see :func:`end_frame`)."""
        start = time.perf_counter()
        mel, gates, focus, stopped = self.decode(ids, speaker, seed, max_steps)
        (post,) = self._run["postnet"]({"mel": mel})
        end = end_frame(gates, stopped)
        durations = np.bincount(focus[:end], minlength=int(np.asarray(ids).size)).astype(np.int64)
        return LoopResult(
            mel=post[0, :end],
            steps=int(gates.size),
            end=end,
            stopped=stopped,
            durations=durations,
            gates=gates,
            seconds=time.perf_counter() - start,
        )
