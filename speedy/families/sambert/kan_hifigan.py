"""KAN-TTS HiFi-GAN generator (the vocoder of ModelScope's Sambert-HifiGan), inference only.

Written in this project. Parameter names equal the keys of ``ckpt["model"]["generator"]`` after
weight-norm folding (``conv_pre.conv1d``, ``transpose_upsamples.i.1.deconv``,
``repeat_upsamples.i.2.conv1d``, ``conv_blocks.k.convs{1,2}.j.conv1d``, ``conv_post.conv1d``); a
checkpoint holds 318 entries (``weight_g``/``weight_v``/``bias`` per conv) for the 16 kHz config.

It differs from the HiFi-GAN paper's generator (:mod:`speedy.models.hifigan`) in ways that matter
for parity:

- before every upsampling stage ``x = sin(x) + x``;
- each stage sums a transposed conv and a *repeat* branch (nearest upsampling, LeakyReLU, conv),
  the transposed output cut to the repeat branch's length;
- with ``causal: true`` every conv pads ``(k - 1) · dilation`` on the left only, and the transposed
  convs drop their last ``k - stride`` samples;
- residual blocks use ``convs1`` (dilated) and ``convs2`` (dilation 1) pairs; block outputs are averaged;
- the final activation is LeakyReLU with PyTorch's default slope 0.01 (not the configured 0.1).

Boundary layout (as every OpenSpeedy vocoder): mel ``(batch, frames, n_mels)`` → waveform
``(batch, frames · hop)`` in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speedy.errors import ModelError


@dataclass(frozen=True)
class KanHifiGanConfig:
    """``Model.Generator.params`` of ``voc/config.yaml`` (defaults: KAN-TTS ``hifigan_v1_16k.yaml``).

    ``upsample_kernel_sizes`` is read from the YAML's ``upsample_kernal_sizes`` (sic).
    """

    in_channels: int = 80
    channels: int = 256
    kernel_size: int = 7
    upsample_scales: tuple[int, ...] = (10, 5, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (20, 10, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5, 7), (1, 3, 5, 7), (1, 3, 5, 7))
    causal: bool = True
    negative_slope: float = 0.1

    def __post_init__(self) -> None:
        for name in ("upsample_scales", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(
            self, "resblock_dilations", tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilations)
        )
        if len(self.upsample_scales) != len(self.upsample_kernel_sizes) or not self.upsample_scales:
            raise ModelError(
                "hifigan config: upsample_scales and upsample_kernal_sizes must have the same non-zero length"
            )
        if len(self.resblock_dilations) != len(self.resblock_kernel_sizes):
            raise ModelError("hifigan config: resblock_dilations needs one list per resblock kernel size")
        if self.kernel_size % 2 == 0 or any(k % 2 == 0 for k in self.resblock_kernel_sizes):
            raise ModelError("hifigan config: kernel_size and resblock_kernel_sizes must be odd")
        if self.channels % (2 ** len(self.upsample_scales)):
            raise ModelError(f"hifigan config: channels {self.channels} must halve {len(self.upsample_scales)} times")

    @property
    def hop_size(self) -> int:
        hop = 1
        for s in self.upsample_scales:
            hop *= s
        return hop

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> KanHifiGanConfig:
        """Build from the YAML mapping; refuse PQMF, NSF, no-repeat and non-LeakyReLU variants."""
        if int(params.get("out_channels", 1)) != 1:
            raise ModelError("hifigan: multi-band (PQMF, out_channels > 1) vocoders are not supported")
        if params.get("nsf_params"):
            raise ModelError("hifigan: the NSF vocoder variant (nsf_params) is not supported")
        if not params.get("repeat_upsample", True):
            raise ModelError("hifigan: repeat_upsample: false is not supported")
        if params.get("nonlinear_activation", "LeakyReLU") != "LeakyReLU":
            raise ModelError(f"hifigan: activation {params['nonlinear_activation']!r} is not supported")
        slope = (params.get("nonlinear_activation_params") or {}).get("negative_slope", 0.1)
        try:
            return cls(
                in_channels=int(params.get("in_channels", 80)),
                channels=int(params.get("channels", 512)),
                kernel_size=int(params.get("kernel_size", 7)),
                upsample_scales=params.get("upsample_scales", (8, 8, 2, 2)),
                upsample_kernel_sizes=params.get(
                    "upsample_kernal_sizes", params.get("upsample_kernel_sizes", (16, 16, 4, 4))
                ),
                resblock_kernel_sizes=params.get("resblock_kernel_sizes", (3, 7, 11)),
                resblock_dilations=params.get("resblock_dilations", ((1, 3, 5),) * 3),
                causal=bool(params.get("causal", True)),
                negative_slope=float(slope),
            )
        except (TypeError, ValueError) as exc:
            raise ModelError(f"hifigan config: {exc}") from exc


class Conv(nn.Module):
    """``conv1d`` holder; causal: left padding ``(k - 1) · dilation``, else ``padding`` both sides."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, dilation: int = 1, padding: int = 0, causal: bool = True
    ) -> None:
        super().__init__()
        self.causal_pad = (kernel - 1) * dilation if causal else 0
        self.conv1d = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=0 if causal else padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv1d(F.pad(x, (self.causal_pad, 0)) if self.causal_pad else x)


class TransposedConv(nn.Module):
    """``deconv`` holder; causal: no padding, last ``k - stride`` samples dropped (length × stride)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, causal: bool) -> None:
        super().__init__()
        self.trim = kernel - stride if causal else 0
        self.deconv = nn.ConvTranspose1d(c_in, c_out, kernel, stride, padding=0 if causal else (kernel - stride) // 2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.deconv(x)
        return y[:, :, : y.shape[-1] - self.trim] if self.trim else y


class ResidualBlock(nn.Module):
    """Pairs of (dilated conv, dilation-1 conv), each preceded by LeakyReLU, with residuals."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int], slope: float, causal: bool) -> None:
        super().__init__()
        self.slope = slope
        self.convs1 = nn.ModuleList(
            [Conv(channels, channels, kernel, d, d * (kernel - 1) // 2, causal) for d in dilations]
        )
        self.convs2 = nn.ModuleList([Conv(channels, channels, kernel, 1, (kernel - 1) // 2, causal) for _ in dilations])

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, self.slope)), self.slope)) + x
        return x


class KanHifiGan(nn.Module):
    """KAN-TTS HiFi-GAN generator; see the module docstring for its non-vanilla parts."""

    def __init__(self, config: KanHifiGanConfig | None = None) -> None:
        super().__init__()
        cfg = config or KanHifiGanConfig()
        self.config = cfg
        k, slope, causal = cfg.kernel_size, cfg.negative_slope, cfg.causal
        self.conv_pre = Conv(cfg.in_channels, cfg.channels, k, 1, (k - 1) // 2, causal)
        self.transpose_upsamples = nn.ModuleList()
        self.repeat_upsamples = nn.ModuleList()
        self.conv_blocks = nn.ModuleList()
        ch = cfg.channels
        for scale, up_k in zip(cfg.upsample_scales, cfg.upsample_kernel_sizes):
            self.transpose_upsamples.append(
                nn.Sequential(nn.LeakyReLU(slope), TransposedConv(ch, ch // 2, up_k, scale, causal))
            )
            self.repeat_upsamples.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=scale, mode="nearest"),
                    nn.LeakyReLU(slope),
                    Conv(ch, ch // 2, k, 1, (k - 1) // 2, causal),
                )
            )
            ch //= 2
            for rk, dils in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations):
                self.conv_blocks.append(ResidualBlock(ch, rk, dils, slope, causal))
        self.conv_post = Conv(ch, 1, k, 1, (k - 1) // 2, causal)
        self.eval()

    @property
    def hop_size(self) -> int:
        return self.config.hop_size

    def forward(self, mel: Tensor) -> Tensor:
        """Mel ``(batch, frames, n_mels)`` → waveform ``(batch, frames · hop)``."""
        x = self.conv_pre(mel.transpose(1, 2))
        n_k = len(self.config.resblock_kernel_sizes)
        for i, (rep_up, trans_up) in enumerate(zip(self.repeat_upsamples, self.transpose_upsamples)):
            x = torch.sin(x) + x
            rep = rep_up(x)
            x = rep + trans_up(x)[:, :, : rep.shape[-1]]
            blocks = self.conv_blocks[i * n_k : (i + 1) * n_k]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / n_k
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).squeeze(1)

    def load_checkpoint_state(self, state: Mapping[str, Tensor]) -> None:
        """Load a folded generator state dict strictly (see :func:`fold_weight_norm`)."""
        from speedy.families.sambert.config import check_state_dict

        check_state_dict(self.state_dict(), state, "vocoder checkpoint")
        self.load_state_dict(dict(state), strict=True)


def fold_weight_norm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Replace each ``<p>.weight_g`` / ``<p>.weight_v`` pair by ``<p>.weight`` (what ``remove_weight_norm`` does).

    KAN-TTS applies weight norm with ``dim=0`` to every conv and transposed conv.

    Raises:
        ModelError: a ``weight_g`` without its ``weight_v`` or the reverse.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_g"):
            prefix = key[: -len(".weight_g")]
            v = state.get(prefix + ".weight_v")
            if v is None:
                raise ModelError(f"vocoder checkpoint: {key} has no matching {prefix}.weight_v")
            out[prefix + ".weight"] = torch._weight_norm(v.float(), value.float(), 0)
        elif key.endswith(".weight_v"):
            if key[: -len(".weight_v")] + ".weight_g" not in state:
                raise ModelError(f"vocoder checkpoint: {key} has no matching weight_g")
        else:
            out[key] = value
    return out
