"""Torch networks of the ttskit family (inference only), with the checkpoints' parameter names.

Mellotron in ``train-mspk`` mode is Tacotron 2 with a speaker vector: no GST, no F0 prenet, one frame
per decoder step. Written here after reading ttskit's ``mellotron/model.py`` and ``melgan/model``:

- encoder: embedding (145 → 256) → 3 × (conv k5 → batch norm → ReLU) → BiLSTM (2 × 128); the speaker
  vector ``(32,)`` goes through ``speaker_embedding`` (Linear 32 → 32) and is appended to every
  position: memory ``(1, T, 288)``; the attention's memory projection ``(1, T, 64)`` is computed once;
- decoder step: prenet (2 × Linear 128 + ReLU + dropout **kept on at inference**, p = 0.5, as in
  Tacotron 2; the masks are explicit inputs here) → attention LSTMCell (512) → location-sensitive
  attention (conv k31 over previous and cumulative weights) → decoder LSTMCell (512) → mel frame (80)
  and stop-gate logit;
- postnet: 5 × (conv k5 → batch norm, tanh on the first four), added to the decoder's mel;
- MelGAN (22.05 kHz, hop 256 = 8·8·2·2): ``(mel + 5) / 5`` → conv k7 (512) → 4 × (LeakyReLU 0.2 →
  transposed conv → residual stack of 3 dilated blocks 1/3/9) → conv k7 (1) → tanh.

Mel: natural log of a Slaney mel spectrogram (TacotronSTFT, clamp 1e-5), ``(frames, 80)`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speedy.errors import ModelError

N_MELS = 80
HOP = 256
SAMPLE_RATE = 22050
MELGAN_UPSAMPLES = ((512, 256, 16, 8, 4), (256, 128, 16, 8, 4), (128, 64, 4, 2, 1), (64, 32, 4, 2, 1))


@dataclass(frozen=True)
class MellotronConfig:
    """Sizes read from the hparams JSON (values of the shipped checkpoint in comments)."""

    n_symbols: int = 145
    symbols_embedding_dim: int = 256
    encoder_kernel_size: int = 5
    encoder_n_convolutions: int = 3
    n_mel_channels: int = N_MELS
    attention_rnn_dim: int = 512
    decoder_rnn_dim: int = 512
    prenet_dim: int = 128
    attention_dim: int = 64
    attention_location_n_filters: int = 16
    attention_location_kernel_size: int = 31
    postnet_embedding_dim: int = 256
    postnet_kernel_size: int = 5
    postnet_n_convolutions: int = 5
    n_speakers: int = 32
    speaker_embedding_dim: int = 32

    @property
    def memory_dim(self) -> int:
        """Encoder output + speaker embedding width (288)."""
        return self.symbols_embedding_dim + self.speaker_embedding_dim

    @classmethod
    def from_hparams(cls, hp: dict[str, Any]) -> MellotronConfig:
        """Check the mode this family implements and take the sizes; ModelError names what differs."""
        need = {
            "train_mode": "train-mspk",
            "with_gst": False,
            "prenet_f0_dim": 0,
            "n_frames_per_step": 1,
            "token_embedding_size": 0,
            "prenet_rms_dim": 0,
        }
        for key, value in need.items():
            if hp.get(key, value) != value:
                raise ModelError(f"ttskit hparams: {key} is {hp.get(key)!r}; this family implements {value!r}")
        if hp.get("encoder_embedding_dim", 256) != hp.get("symbols_embedding_dim", 256):
            raise ModelError("ttskit hparams: encoder_embedding_dim differs from symbols_embedding_dim")
        try:
            return cls(**{k: int(hp[k]) for k in cls.__dataclass_fields__ if k in hp})
        except (TypeError, ValueError) as exc:
            raise ModelError(f"ttskit hparams: {exc}") from None


class _Conv(nn.Module):
    """ttskit's ConvNorm: a Conv1d under ``.conv``."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, k, padding=(k - 1) // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Linear(nn.Module):
    """ttskit's LinearNorm: a Linear under ``.linear_layer``."""

    def __init__(self, cin: int, cout: int, bias: bool = True) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(cin, cout, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


def _conv_bn(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(_Conv(cin, cout, k), nn.BatchNorm1d(cout))


class _Encoder(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        d = c.symbols_embedding_dim
        self.convolutions = nn.ModuleList(
            [_conv_bn(d, d, c.encoder_kernel_size) for _ in range(c.encoder_n_convolutions)]
        )
        self.lstm = nn.LSTM(d, d // 2, 1, batch_first=True, bidirectional=True)


class _Prenet(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [_Linear(c.n_mel_channels, c.prenet_dim, bias=False), _Linear(c.prenet_dim, c.prenet_dim, bias=False)]
        )


class _LocationLayer(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        self.location_conv = _Conv(2, c.attention_location_n_filters, c.attention_location_kernel_size, bias=False)
        self.location_dense = _Linear(c.attention_location_n_filters, c.attention_dim, bias=False)


class _Attention(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        self.query_layer = _Linear(c.attention_rnn_dim, c.attention_dim, bias=False)
        self.memory_layer = _Linear(c.memory_dim, c.attention_dim, bias=False)
        self.v = _Linear(c.attention_dim, 1, bias=False)
        self.location_layer = _LocationLayer(c)


class _Decoder(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        self.prenet = _Prenet(c)
        self.attention_rnn = nn.LSTMCell(c.prenet_dim + c.memory_dim, c.attention_rnn_dim)
        self.attention_layer = _Attention(c)
        self.decoder_rnn = nn.LSTMCell(c.attention_rnn_dim + c.memory_dim, c.decoder_rnn_dim)
        self.linear_projection = _Linear(c.decoder_rnn_dim + c.memory_dim, c.n_mel_channels)
        self.gate_layer = _Linear(c.decoder_rnn_dim + c.memory_dim, 1)


class _Postnet(nn.Module):
    def __init__(self, c: MellotronConfig) -> None:
        super().__init__()
        n, e, k = c.n_mel_channels, c.postnet_embedding_dim, c.postnet_kernel_size
        sizes = [n] + [e] * (c.postnet_n_convolutions - 1) + [n]
        self.convolutions = nn.ModuleList([_conv_bn(a, b, k) for a, b in zip(sizes[:-1], sizes[1:])])


class Mellotron(nn.Module):
    """The parameters, under the checkpoint's names; the graphs below run its parts."""

    def __init__(self, config: MellotronConfig = MellotronConfig()) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.n_symbols, config.symbols_embedding_dim)
        self.encoder = _Encoder(config)
        self.decoder = _Decoder(config)
        self.postnet = _Postnet(config)
        self.speaker_embedding = nn.Linear(config.n_speakers, config.speaker_embedding_dim)


class EncoderGraph(nn.Module):
    """ids ``(1, T)`` int64, speaker ``(1, 32)`` → memory ``(1, T, 288)``, processed memory ``(1, T, 64)``."""

    def __init__(self, m: Mellotron) -> None:
        super().__init__()
        self.m = m

    def forward(self, ids: torch.Tensor, speaker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.m.embedding(ids).transpose(1, 2)
        for conv in self.m.encoder.convolutions:
            x = F.relu(conv(x))
        text, _ = self.m.encoder.lstm(x.transpose(1, 2))
        spk = self.m.speaker_embedding(speaker)[:, None].expand(-1, text.shape[1], -1)
        memory = torch.cat((text, spk), dim=2)
        return memory, self.m.decoder.attention_layer.memory_layer(memory)


#: Decoder-step inputs and outputs, in order (the state tensors come back under ``<name>_out``).
STEP_STATE = ("att_h", "att_c", "dec_h", "dec_c", "att_w", "att_wcum", "context")
STEP_INPUTS = ("frame", "prenet_mask", *STEP_STATE, "memory", "processed", "att_bias")
STEP_OUTPUTS = ("frame_out", "gate", *(f"{s}_out" for s in STEP_STATE))


class DecoderStepGraph(nn.Module):
    """One decoder step with explicit state (ttskit ``Decoder.decode`` at inference).

    Inputs: frame ``(1, 80)`` (previous mel frame, zeros first), prenet_mask ``(2, 1, 128)`` (the two
    prenet dropout masks, each 0 or 1/(1−p)), att_h/att_c/dec_h/dec_c ``(1, 512)``, att_w/att_wcum
    ``(1, T)``, context ``(1, 288)``, memory ``(1, T, 288)``, processed ``(1, T, 64)``, att_bias ``(1, T)``
    (added to the attention energies: 0, or −1e4 outside the host's attention window).
    Outputs: the new frame ``(1, 80)``, gate logit ``(1, 1)`` and the seven new states.
    """

    def __init__(self, m: Mellotron) -> None:
        super().__init__()
        self.d = m.decoder

    def forward(
        self,
        frame: torch.Tensor,
        prenet_mask: torch.Tensor,
        att_h: torch.Tensor,
        att_c: torch.Tensor,
        dec_h: torch.Tensor,
        dec_c: torch.Tensor,
        att_w: torch.Tensor,
        att_wcum: torch.Tensor,
        context: torch.Tensor,
        memory: torch.Tensor,
        processed: torch.Tensor,
        att_bias: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        d = self.d
        x = frame
        for i, layer in enumerate(d.prenet.layers):
            x = F.relu(layer(x)) * prenet_mask[i]
        att_h, att_c = d.attention_rnn(torch.cat((x, context), -1), (att_h, att_c))
        a = d.attention_layer
        loc = a.location_layer.location_dense(
            a.location_layer.location_conv(torch.stack((att_w, att_wcum), 1)).transpose(1, 2)
        )
        energies = a.v(torch.tanh(a.query_layer(att_h)[:, None] + loc + processed)).squeeze(-1) + att_bias
        att_w = torch.softmax(energies, dim=1)
        context = torch.bmm(att_w[:, None], memory).squeeze(1)
        att_wcum = att_wcum + att_w
        dec_h, dec_c = d.decoder_rnn(torch.cat((att_h, context), -1), (dec_h, dec_c))
        out = torch.cat((dec_h, context), dim=1)
        return d.linear_projection(out), d.gate_layer(out), att_h, att_c, dec_h, dec_c, att_w, att_wcum, context


class PostnetGraph(nn.Module):
    """mel ``(1, L, 80)`` from the decoder → mel + postnet(mel) ``(1, L, 80)``."""

    def __init__(self, m: Mellotron) -> None:
        super().__init__()
        self.p = m.postnet

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.transpose(1, 2)
        y = x
        last = len(self.p.convolutions) - 1
        for i, conv in enumerate(self.p.convolutions):
            y = conv(y) if i == last else torch.tanh(conv(y))
        return (x + y).transpose(1, 2)


class _ResStack(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(
                    nn.LeakyReLU(0.2),
                    nn.ReflectionPad1d(3**i),
                    nn.Conv1d(ch, ch, 3, dilation=3**i),
                    nn.LeakyReLU(0.2),
                    nn.Conv1d(ch, ch, 1),
                )
                for i in range(3)
            ]
        )
        self.shortcuts = nn.ModuleList([nn.Conv1d(ch, ch, 1) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, shortcut in zip(self.blocks, self.shortcuts):
            x = shortcut(x) + block(x)
        return x


class MelGAN(nn.Module):
    """mel ``(B, L, 80)`` (natural-log mel) → waveform ``(B, L · 256)`` float32 in [−1, 1]."""

    def __init__(self, n_mels: int = N_MELS) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), nn.Conv1d(n_mels, 512, 7)]
        for cin, cout, k, s, p in MELGAN_UPSAMPLES:
            layers += [nn.LeakyReLU(0.2), nn.ConvTranspose1d(cin, cout, k, stride=s, padding=p), _ResStack(cout)]
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), nn.Conv1d(32, 1, 7), nn.Tanh()]
        self.generator = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        wav = self.generator((mel.transpose(1, 2) + 5.0) / 5.0)
        return wav.reshape(wav.shape[0], -1)


def check_state_dicts(weights: Any) -> None:
    """Load both state dicts strictly into fresh modules; ModelError on another shape or key set."""
    config = MellotronConfig.from_hparams(weights.hparams)
    for module, sd, what in (
        (Mellotron(config), weights.mellotron, "mellotron.kuangdd-mspk.pt"),
        (MelGAN(config.n_mel_channels), weights.melgan, "melgan.kuangdd.pt"),
    ):
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise ModelError(f"ttskit: {what} is not the expected checkpoint ({' '.join(lines[1:2])[:200]})") from None


def load_modules(weights: Any) -> tuple[Mellotron, MelGAN]:
    """Both networks in eval mode with the wheel's weights."""
    config = MellotronConfig.from_hparams(weights.hparams)
    mellotron, melgan = Mellotron(config), MelGAN(config.n_mel_channels)
    mellotron.load_state_dict(weights.mellotron, strict=True)
    melgan.load_state_dict(weights.melgan, strict=True)
    return mellotron.eval(), melgan.eval()


@torch.inference_mode()
def reference_inference(
    m: Mellotron, ids: torch.Tensor, speaker: torch.Tensor, masks: Callable[[int], torch.Tensor], loop: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """The PyTorch reference of ttskit's ``Tacotron2.inference`` (mspk, one utterance).

    ``masks(step)`` gives the prenet dropout masks ``(2, 1, 128)`` of a step (the host loop draws the
    same ones). Decoding stops by ``loop`` (a :class:`speedy.families.ttskit.loop.LoopConfig`): after
    the first step whose sigmoid(gate) exceeds the threshold (once the attention reached the input's
    end), or at the step limit. Returns the decoder mel ``(1, L, 80)``, the postnet mel ``(1, L, 80)``,
    the gate logits ``(L,)`` (untrimmed; ``loop.end_frame`` trims) and whether the gate stopped it.
    """
    from speedy.families.ttskit.loop import attention_bias, should_stop, step_limit

    memory, processed = EncoderGraph(m)(ids, speaker)
    step = DecoderStepGraph(m)
    c = m.config
    t = memory.shape[1]
    z = torch.zeros
    state = [
        z(1, c.attention_rnn_dim),
        z(1, c.attention_rnn_dim),
        z(1, c.decoder_rnn_dim),
        z(1, c.decoder_rnn_dim),
        z(1, t),
        z(1, t),
        z(1, c.memory_dim),
    ]
    frame = z(1, c.n_mel_channels)
    frames: list[torch.Tensor] = []
    gates: list[torch.Tensor] = []
    limit = step_limit(t, loop)
    focus = hold = 0
    while True:
        bias = torch.from_numpy(attention_bias(focus, t, loop))
        frame, gate, *state = step(frame, masks(len(frames)), *state, memory, processed, bias)
        focus = int(torch.argmax(state[4][0]))
        frames.append(frame)
        gates.append(gate[0, 0])
        hold = hold + 1 if focus >= t - 2 else 0
        stopped = should_stop(float(gate[0, 0]), focus, t, loop, hold)
        if stopped or len(frames) >= limit:
            break
    mel = torch.stack(frames, 1)
    return mel, PostnetGraph(m)(mel), torch.stack(gates), stopped
