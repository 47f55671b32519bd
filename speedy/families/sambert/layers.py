"""Building blocks of the Sambert acoustic model (KAN-TTS ``KanTtsSAMBERT``), inference only.

Written in this project from the published architecture; attribute names are those of the KAN-TTS
checkpoints (``slf_attn.w_qkv``, ``pnca_attn.w_h_kv``, ``fsmn.memory_block_lst.N.conv_dw`` …) so that
``ckpt["model"]`` loads with ``strict=True``. Dropout is inference-time identity and kept only where
it holds an index in a checkpoint's ``ModuleList`` (the prenets).

Everything runs at batch size 1: the autoregressive parts carry per-utterance band widths and the
exporter builds batch-1 graphs. Tensors are ``(batch, time, channels)`` unless stated otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def sinusoid_table(n_position: int, depth: int) -> Tensor:
    """Encoder position table ``(1, n_position, depth)``: sin in the first half, cos in the second.

    Positions start at 1 and the angle of column ``j`` is ``pos / 10000 ** (j / (depth / 2 - 1))``,
    computed in float64 and stored in float32 (the table KAN-TTS checkpoints carry).
    """
    half = depth // 2
    pos = torch.arange(1, n_position + 1, dtype=torch.float64)[:, None]
    rate = torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), torch.arange(half, dtype=torch.float64) / (depth / 2 - 1)
    )
    angle = pos / rate[None, :]
    table = torch.zeros(n_position, depth, dtype=torch.float64)
    table[:, :half] = torch.sin(angle)
    table[:, half : 2 * half] = torch.cos(angle)
    return table.float().unsqueeze(0)


def duration_inv_timescales(depth: int) -> Tensor:
    """Divisors ``(depth,)`` of the within-token frame position: ``10000 ** (2 * (i // 2) / depth)``."""
    idx = torch.arange(depth, dtype=torch.float64)
    return torch.pow(
        torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(idx, 2, rounding_mode="floor") / depth
    ).float()


def attend(q: Tensor, k: Tensor, v: Tensor, temperature: float, allowed: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention over ``(heads, len_q, d_head)`` × ``(heads, len_k, d_head)``.

    ``allowed`` (bool, broadcastable to ``(heads, len_q, len_k)``) masks keys with ``-inf``.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) / temperature
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """``(1, T, n_head * d_head)`` → ``(n_head, T, d_head)``."""
    return x.reshape(x.shape[1], n_head, -1).transpose(0, 1)


def merge_heads(x: Tensor) -> Tensor:
    """``(n_head, T, d_head)`` → ``(1, T, n_head * d_head)``."""
    return x.transpose(0, 1).reshape(1, x.shape[1], -1)


class Prenet(nn.Module):
    """Linear + ReLU (+ dropout slot) per entry of ``units``, then an optional output Linear.

    Checkpoint indices: ``fcs.0``, ``fcs.3``, ``fcs.6`` … (every third module is a Linear).
    """

    def __init__(self, in_units: int, units: Sequence[int], out_units: int = 0) -> None:
        super().__init__()
        self.fcs = nn.ModuleList()
        for d_in, d_out in zip([in_units, *units[:-1]], units):
            self.fcs.extend([nn.Linear(d_in, d_out), nn.ReLU(), nn.Identity()])
        if out_units:
            self.fcs.append(nn.Linear(units[-1], out_units))

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.fcs:
            x = layer(x)
        return x


class MultiHeadSelfAttention(nn.Module):
    """Pre-norm self-attention; the residual is added only when input and output widths match."""

    def __init__(self, n_head: int, d_in: int, d_model: int, d_head: int) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.temperature = math.sqrt(d_head)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)
        self.w_qkv = nn.Linear(d_in, 3 * n_head * d_head)
        self.fc = nn.Linear(n_head * d_head, d_model)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.w_qkv(self.layer_norm(x)).chunk(3, dim=-1)
        out = attend(
            split_heads(q, self.n_head), split_heads(k, self.n_head), split_heads(v, self.n_head), self.temperature
        )
        out = self.fc(merge_heads(out))
        return out + x if out.shape[-1] == x.shape[-1] else out


class PositionwiseConvFeedForward(nn.Module):
    """Pre-norm conv FFN with residual: ``x + w_2(relu(w_1(ln(x))))`` (kernels ``kernel_size``)."""

    def __init__(self, d_in: int, d_hid: int, kernel_size: tuple[int, int]) -> None:
        super().__init__()
        self.w_1 = nn.Conv1d(d_in, d_hid, kernel_size[0], padding=(kernel_size[0] - 1) // 2)
        self.w_2 = nn.Conv1d(d_hid, d_in, kernel_size[1], padding=(kernel_size[1] - 1) // 2)
        self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        out = F.relu(self.w_1(self.layer_norm(x).transpose(1, 2)))
        if mask is not None:
            out = out.masked_fill(mask.unsqueeze(1), 0.0)
        return self.w_2(out).transpose(1, 2) + x


class FFTBlock(nn.Module):
    """Encoder layer: self-attention then conv FFN (kernels 3 and 1)."""

    def __init__(self, d_in: int, d_model: int, n_head: int, d_head: int, d_inner: int) -> None:
        super().__init__()
        self.slf_attn = MultiHeadSelfAttention(n_head, d_in, d_model, d_head)
        self.pos_ffn = PositionwiseConvFeedForward(d_model, d_inner, (3, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.pos_ffn(self.slf_attn(x))


class MultiHeadPNCAAttention(nn.Module):
    """PNCA attention: causal self-attention over past frames (``x``) plus attention over the
    upsampled text memory (``h``), both restricted to bands; outputs are summed, plus the residual.
    """

    def __init__(self, n_head: int, d_model: int, d_mem: int, d_head: int) -> None:
        super().__init__()
        self.n_head, self.d_head = n_head, d_head
        self.temperature = math.sqrt(d_head)
        self.layer_norm = nn.LayerNorm(d_model, eps=1e-6)
        self.w_x_qkv = nn.Linear(d_model, 3 * n_head * d_head)
        self.fc_x = nn.Linear(n_head * d_head, d_model)
        self.w_h_kv = nn.Linear(d_mem, 2 * n_head * d_head)
        self.fc_h = nn.Linear(n_head * d_head, d_model)

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Memory ``(1, M, d_mem)`` → keys, values ``(n_head, M, d_head)``; computed once per utterance."""
        h_k, h_v = self.w_h_kv(memory).chunk(2, dim=-1)
        return split_heads(h_k, self.n_head), split_heads(h_v, self.n_head)

    def frame_qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One frame ``(1, 1, d_model)`` → q, k, v ``(n_head, 1, d_head)`` from the normalised input."""
        q, k, v = self.w_x_qkv(self.layer_norm(x)).chunk(3, dim=-1)
        return split_heads(q, self.n_head), split_heads(k, self.n_head), split_heads(v, self.n_head)

    def combine(self, x: Tensor, out_x: Tensor, out_h: Tensor) -> Tensor:
        """Project both attention outputs ``(n_head, 1, d_head)`` and add the residual ``x``."""
        return self.fc_x(merge_heads(out_x)) + self.fc_h(merge_heads(out_h)) + x


class PNCABlock(nn.Module):
    """Decoder layer: PNCA attention then a position-wise FFN (kernels 1 and 1)."""

    def __init__(self, d_model: int, d_mem: int, n_head: int, d_head: int, d_inner: int) -> None:
        super().__init__()
        self.pnca_attn = MultiHeadPNCAAttention(n_head, d_model, d_mem, d_head)
        self.pos_ffn = PositionwiseConvFeedForward(d_model, d_inner, (1, 1))


class FeedForwardNet(nn.Module):
    """FSMN projection: ``w_2(relu(w_1(x)))`` with 1×1 convs, ``w_2`` without bias."""

    def __init__(self, d_in: int, d_hid: int, d_out: int) -> None:
        super().__init__()
        self.w_1 = nn.Conv1d(d_in, d_hid, 1)
        self.w_2 = nn.Conv1d(d_hid, d_out, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_2(F.relu(self.w_1(x.transpose(1, 2)))).transpose(1, 2)


class MemoryBlockV2(nn.Module):
    """FSMN memory: depthwise conv over time (left/right context shifted by ``shift``) plus input."""

    def __init__(self, d: int, filter_size: int, shift: int) -> None:
        super().__init__()
        left = int(round((filter_size - 1) / 2)) + max(shift, 0)
        right = int((filter_size - 1) / 2) - max(shift, 0)
        self.lp, self.rp = left, right
        self.conv_dw = nn.Conv1d(d, d, filter_size, groups=d, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:
            x = x.masked_fill(mask.unsqueeze(-1), 0.0)
        out = self.conv_dw(F.pad(x.transpose(1, 2), (self.lp, self.rp))).transpose(1, 2) + x
        if mask is not None:
            out = out.masked_fill(mask.unsqueeze(-1), 0.0)
        return out


class FsmnEncoderV2(nn.Module):
    """Stack of (projection, memory block) pairs with a residual where widths match."""

    def __init__(self, filter_size: int, num_layers: int, d_in: int, d_memory: int, d_inner: int, shift: int) -> None:
        super().__init__()
        self.ffn_lst = nn.ModuleList(
            [FeedForwardNet(d_in if i == 0 else d_memory, d_inner, d_memory) for i in range(num_layers)]
        )
        self.memory_block_lst = nn.ModuleList([MemoryBlockV2(d_memory, filter_size, shift) for _ in range(num_layers)])

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for ffn, block in zip(self.ffn_lst, self.memory_block_lst):
            out = block(ffn(x), mask)
            x = out + x if out.shape[-1] == x.shape[-1] else out
        return x


class VarFsmnRnnNARPredictor(nn.Module):
    """Pitch or energy per token: FSMN, bidirectional LSTM, Linear → ``(1, T)``."""

    def __init__(
        self, d_in: int, filter_size: int, num_layers: int, d_memory: int, d_inner: int, shift: int, lstm_units: int
    ) -> None:
        super().__init__()
        self.fsmn = FsmnEncoderV2(filter_size, num_layers, d_in, d_memory, d_inner, shift)
        self.blstm = nn.LSTM(d_memory, lstm_units, num_layers=1, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * lstm_units, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.blstm(self.fsmn(x))
        return self.fc(out).squeeze(-1)


class VarRnnARPredictor(nn.Module):
    """Autoregressive log-duration predictor: prenet on the previous output, 2-layer LSTM, ReLU head."""

    def __init__(self, cond_units: int, prenet_units: Sequence[int], lstm_units: int) -> None:
        super().__init__()
        self.prenet = Prenet(1, prenet_units)
        self.lstm = nn.LSTM(prenet_units[-1] + cond_units, lstm_units, num_layers=2, batch_first=True)
        self.fc = nn.Linear(lstm_units, 1)

    def step(self, prev: Tensor, cond: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One token.

        Args:
            prev: previous log-duration ``(1, 1)`` (zeros before the first token).
            cond: this token's condition ``(1, 1, cond_units)``.
            h, c: LSTM state ``(2, 1, lstm_units)`` (zeros before the first token).

        Returns:
            log-duration ``(1, 1)`` (``log(frames + 1)``, ≥ 0), and the new ``h``, ``c``.
        """
        x = torch.cat([self.prenet(prev.unsqueeze(-1)), cond], dim=-1)
        out, (h, c) = self.lstm(x, (h, c))
        return F.relu(self.fc(out).squeeze(-1)), h, c


class PostNet(nn.Module):
    """Mel residual: FSMN (shifted context), LSTM, Linear → ``(1, L, num_mels)``."""

    def __init__(
        self, num_mels: int, filter_size: int, num_layers: int, d_memory: int, d_inner: int, shift: int, lstm_units: int
    ) -> None:
        super().__init__()
        self.fsmn = FsmnEncoderV2(filter_size, num_layers, num_mels, d_memory, d_inner, shift)
        self.lstm = nn.LSTM(d_memory, lstm_units, num_layers=1, batch_first=True)
        self.fc = nn.Linear(lstm_units, num_mels)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        out, _ = self.lstm(self.fsmn(x, mask))
        return self.fc(out)
