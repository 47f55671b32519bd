"""The distillation loop: layer-wise then end-to-end, deterministic per step, resumable from a checkpoint.

Every step draws its batch from a generator seeded with (seed, step), so a run resumed from a checkpoint
(student, projections, optimiser state, step) makes the same updates as an uninterrupted one.

Loss per step, student vs teacher on the same mel crops:
- multi-resolution STFT on the full-band waveform and on the sub-bands (spectral convergence + log |X|);
- log-mel L1 and waveform L1;
- while `feature_weight(step) > 0`: each stage's output (after its residual stack), mapped to the
  teacher's width by a learned 1×1 projection, against the teacher's (MSE relative to its power), so every
  stage gets a local signal at once (FitNets / TinyBERT-style hint losses). The weight falls linearly to 0
  over the first `feature_fraction` of the steps; the projections are dropped afterwards.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from speedy.distill.data import Pairs
from speedy.distill.losses import feature_mse, log_mel_l1, multi_resolution_stft, subband_stft
from speedy.errors import InputError, ModelError
from speedy.prune.recover import warmup_cosine

_LOGGER = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, Mapping[str, float]], None]
"""(step done, total steps, smoothed losses by name) after every step."""


class DistillInterrupted(ModelError):
    """Stopped by the user; the checkpoint holds the last step and `--resume` continues (exit 3)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation options.

    steps: optimiser steps. lr: peak Adam learning rate (betas 0.5/0.9, as GAN vocoders train), linear
    warm-up over `warmup` steps then cosine decay to lr/10. batch: crops per step. feature_weight /
    feature_fraction: the hint loss's starting weight and the share of the steps over which it decays to 0.
    checkpoint_seconds: wall time between checkpoints. seed: the data order. max_seconds: stop once this much
    training time has passed, even short of `steps` (a wall-clock budget holds when the machine slows down
    after the steps were planned; the state records the steps reached).
    """

    steps: int = 2000
    lr: float = 5e-4
    warmup: int = 50
    batch: int = 8
    feature_weight: float = 1.0
    feature_fraction: float = 0.5
    checkpoint_seconds: float = 180.0
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= 10_000_000:
            raise InputError(f"--steps must be in [1, 10000000], got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lr must be a positive number, got {self.lr}")
        if not 1 <= self.batch <= 1024:
            raise InputError(f"--batch must be in [1, 1024], got {self.batch}")
        if not 0.0 <= self.feature_fraction <= 1.0 or self.feature_weight < 0:
            raise InputError("feature_fraction must be in [0, 1] and feature_weight >= 0")

    def lr_at(self, step: int) -> float:
        """Linear warm-up then cosine decay from lr to lr/10 over `steps`."""
        return warmup_cosine(step, self.lr, self.warmup, self.steps)

    def hint_at(self, step: int) -> float:
        """The hint loss's weight at `step`."""
        span = self.feature_fraction * self.steps
        return 0.0 if span <= 0 else self.feature_weight * max(0.0, 1.0 - step / span)


@dataclass
class TrainState:
    """What a checkpoint restores besides the weights."""

    step: int = 0
    optimizer: dict[str, Any] | None = None
    losses: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def projections(student: nn.Module, teacher: nn.Module, keep: Mapping[str, Tensor] | None = None) -> nn.ModuleList:
    """One 1×1 conv per stage mapping the student's stream width to the teacher's, started as the channel
    selection the cut made (identity at width 1)."""
    out = nn.ModuleList()
    for s, (su, tu) in enumerate(zip(student.upsamples, teacher.upsamples)):
        cs, ct = su.out_channels, tu.out_channels
        proj = nn.Conv1d(cs, ct, 1)
        with torch.no_grad():
            proj.weight.zero_()
            proj.bias.zero_()
            idx = keep[f"stage{s}.stream"] if keep is not None else torch.arange(cs)
            proj.weight[idx, torch.arange(cs), 0] = 1.0
        out.append(proj)
    return out


def _stage_outputs(model: nn.Module, store: list[Tensor]) -> list[Any]:
    return [stack[-1].register_forward_hook(lambda _m, _a, y: store.append(y)) for stack in model.stacks]


def step_loss(
    teacher: nn.Module,
    student: nn.Module,
    proj: nn.ModuleList,
    mel: Tensor,
    bands_t: Tensor,
    hint: float,
    sample_rate: int,
) -> dict[str, Tensor]:
    """Every loss term for one batch: mel (B, L, n_mels), teacher sub-bands (B, bands, N)."""
    hidden_s: list[Tensor] = []
    handles = _stage_outputs(student, hidden_s) if hint > 0 else []
    try:
        bands = student.subbands(mel)
    finally:
        for h in handles:
            h.remove()
    wav, wav_t = student.synthesize_subbands(bands), teacher.synthesize_subbands(bands_t)
    terms = {
        "stft": multi_resolution_stft(wav_t, wav),
        "subband": subband_stft(bands_t, bands),
        "mel": log_mel_l1(wav_t, wav, sample_rate),
        "wav": torch.nn.functional.l1_loss(wav, wav_t),
    }
    if hint > 0:
        hidden_t: list[Tensor] = []
        handles = _stage_outputs(teacher, hidden_t)
        try:
            with torch.no_grad():
                teacher.subbands(mel)
        finally:
            for h in handles:
                h.remove()
        terms["hint"] = hint * sum(feature_mse(t, p(s)) for p, s, t in zip(proj, hidden_s, hidden_t)) / len(proj)
    return terms


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> Any:
    """Treat SIGTERM (a scheduler or `kill` stopping the job) like Ctrl-C: checkpoint, then exit 3. Returns the
    handler it replaced, or None off the main thread (where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


def batch_at(pairs: Pairs, cfg: TrainConfig, step: int) -> tuple[Tensor, Tensor]:
    """The batch of `step`: the same whether or not the run was resumed."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    idx = torch.randint(0, len(pairs), (cfg.batch,), generator=gen).numpy()
    return torch.from_numpy(pairs.mels[idx]), torch.from_numpy(pairs.bands[idx])


def train(
    teacher: nn.Module,
    student: nn.Module,
    proj: nn.ModuleList,
    pairs: Pairs,
    cfg: TrainConfig,
    sample_rate: int,
    *,
    state: TrainState | None = None,
    checkpoint: Callable[[TrainState], None] | None = None,
    progress: ProgressFn | None = None,
    device: str = "cpu",
) -> TrainState:
    """Distil `student` (trained in place) from `teacher` on `pairs`; returns where it stopped.

    Raises:
        DistillInterrupted: Ctrl-C; the checkpoint callback has saved the last finished step.
    """
    state = state or TrainState()
    teacher.to(device).eval()
    student.to(device).train()
    proj.to(device).train()
    params = [*student.parameters(), *proj.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.9))
    if state.optimizer is not None:
        opt.load_state_dict(state.optimizer)
    smooth = dict(state.losses)
    t0, last_ckpt = time.perf_counter() - state.seconds, time.perf_counter()

    def save() -> None:
        state.optimizer = opt.state_dict()
        state.seconds = time.perf_counter() - t0
        if checkpoint is not None:
            checkpoint(state)

    previous = _stop_on_sigterm()
    try:
        while state.step < cfg.steps:
            mel, bands_t = (t.to(device) for t in batch_at(pairs, cfg, state.step))
            terms = step_loss(teacher, student, proj, mel, bands_t, cfg.hint_at(state.step), sample_rate)
            loss = sum(terms.values())
            assert isinstance(loss, Tensor)
            if not torch.isfinite(loss):
                raise ModelError(f"distill: loss is {float(loss)} at step {state.step}; lower --lr")
            for g in opt.param_groups:
                g["lr"] = cfg.lr_at(state.step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state.step += 1
            for k, v in {**terms, "total": loss}.items():
                value = float(v.detach())
                smooth[k] = value if k not in smooth else 0.98 * smooth[k] + 0.02 * value
            state.losses = dict(smooth)
            if progress is not None:
                progress(state.step, cfg.steps, smooth)
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - t0 >= cfg.max_seconds
            if time.perf_counter() - last_ckpt >= cfg.checkpoint_seconds or state.step == cfg.steps or out_of_time:
                save()
                last_ckpt = time.perf_counter()
            if out_of_time:
                _LOGGER.warning(
                    "distill: the time budget ran out at step %d of the %d planned (the machine got slower than "
                    "when the steps were planned)",
                    state.step,
                    cfg.steps,
                )
                break
    except KeyboardInterrupt:
        if state.step > 0:
            save()
        raise DistillInterrupted(
            f"distill: stopped at step {state.step}/{cfg.steps}; run the same command with --resume to continue"
        ) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        student.eval().cpu()
        teacher.cpu()
        for p in params:
            p.requires_grad_(False)
    state.seconds = time.perf_counter() - t0
    _LOGGER.info("distill: %d steps in %.0f s, final loss %.4f", state.step, state.seconds, smooth.get("total", 0))
    return state
