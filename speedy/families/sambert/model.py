"""Sambert acoustic model (ModelScope / KAN-TTS ``KanTtsSAMBERT``) for inference, written in this project.

Parameter names equal the keys of ``ckpt["model"]`` in a KAN-TTS ``checkpoint_N.pth`` (395 entries for
the 16 kHz configs), so a real checkpoint loads with ``strict=True``; only the two fixed tables
(``…position_enc.position_enc`` and ``…dur_position_encoder.inv_timescales``) may be absent and are then
recomputed. Training-only parts (alignment attention, teacher forcing) are left out; the SE, NSF,
byte-input and filled-pause variants are refused by :class:`SambertConfig`.

The model is split into the pieces the exporter turns into graphs, each a method here:

==================  ==============================================================================
``encode``          symbol ids ``(1, T)`` ×6 → text ``(1, T, P)``, emotion ``(1, T, E)``, speaker ``(1, T, S)``
``predict_variance`` → pitch, energy ``(1, T)``, text + pitch/energy embeddings, duration condition
``duration_step``   one token of the autoregressive duration LSTM, explicit ``h``/``c``
``decoder_memory``  length-regulated features → decoder memory ``(1, M, D)`` and its per-layer keys/values
``decoder_step``    one PNCA step (``r`` mel frames) with an explicit self-attention cache and band inputs
``postnet``         decoder mel ``(1, L, n_mels)`` → final mel
==================  ==============================================================================

:meth:`SambertAcoustic.forward` chains them the way KAN-TTS' ``forward`` does at inference (masked
full-width band attention, as in the reference), and is what the ONNX host loop
(:mod:`speedy.families.sambert.loop`) reproduces.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from speedy.errors import ModelError
from speedy.families.sambert.config import SambertConfig, check_state_dict, count_parameters
from speedy.families.sambert.layers import (
    FFTBlock,
    PNCABlock,
    PostNet,
    Prenet,
    VarFsmnRnnNARPredictor,
    VarRnnARPredictor,
    attend,
    duration_inv_timescales,
    sinusoid_table,
)
from speedy.families.sambert.loop import IDENTITY_CONTROLS, SambertInputs

__all__ = [
    "IDENTITY_CONTROLS",
    "SambertAcoustic",
    "SambertConfig",
    "SambertInputs",
    "SambertOutput",
    "check_state_dict",
    "count_parameters",
]

_LOGGER = logging.getLogger(__name__)

FIXED_TABLE_KEYS = (
    "text_encoder.ling_enc.position_enc.position_enc",
    "variance_adaptor.dur_position_encoder.inv_timescales",
)
"""Deterministic tables stored in checkpoints; tolerated when missing (recomputed)."""


@dataclass(frozen=True)
class SambertOutput:
    """Result of :meth:`SambertAcoustic.forward` (batch 1, padding trimmed).

    Attributes:
        mel: final mel ``(L, num_mels)`` (postnet output + decoder output), KAN-TTS normalisation.
        dec_mel: decoder mel before the postnet ``(L, num_mels)``.
        durations: frames per symbol ``(T,)`` int64; ``L = durations.sum()``.
        log_durations: predicted ``log(frames + 1)`` ``(T,)``.
        pitch, energy: per-symbol predictions ``(T,)`` (normalised units, before controls).
        band: the decoder's attention band width (``x_band_width = h_band_width``).
    """

    mel: Tensor
    dec_mel: Tensor
    durations: Tensor
    log_durations: Tensor
    pitch: Tensor
    energy: Tensor
    band: int


class _PositionTable(nn.Module):
    def __init__(self, max_len: int, depth: int) -> None:
        super().__init__()
        self.position_enc = nn.Parameter(sinusoid_table(max_len, depth), requires_grad=False)


class _DurationPositions(nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.inv_timescales = nn.Parameter(duration_inv_timescales(depth), requires_grad=False)


class SelfAttentionEncoder(nn.Module):
    def __init__(self, cfg: SambertConfig) -> None:
        super().__init__()
        d_model, heads = cfg.encoder_num_units, cfg.encoder_num_heads
        d_ins = [cfg.embedding_dim] + [d_model] * (cfg.encoder_num_layers - 1)
        self.d_model = d_model
        self.fft = nn.ModuleList(
            [FFTBlock(d, d_model, heads, d_model // heads, cfg.encoder_ffn_inner_dim) for d in d_ins]
        )
        self.ln = nn.LayerNorm(d_model, eps=1e-6)
        self.position_enc = _PositionTable(cfg.max_len, cfg.embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        table: Tensor = self.position_enc.position_enc
        if x.shape[1] > table.shape[1]:  # the reference grows its table the same way
            table = sinusoid_table(x.shape[1], table.shape[2]).to(x)
        x = x * self.d_model**0.5 + table[:, : x.shape[1]]
        for layer in self.fft:
            x = layer(x)
        return self.ln(x)


class TextFftEncoder(nn.Module):
    def __init__(self, cfg: SambertConfig) -> None:
        super().__init__()
        d_emb = cfg.embedding_dim
        self.sy_emb = nn.Embedding(cfg.sy, d_emb)
        self.tone_emb = nn.Embedding(cfg.tone, d_emb)
        self.syllable_flag_emb = nn.Embedding(cfg.syllable_flag, d_emb)
        self.ws_emb = nn.Embedding(cfg.word_segment, d_emb)
        self.ling_enc = SelfAttentionEncoder(cfg)
        self.ling_proj = nn.Linear(cfg.encoder_num_units, cfg.encoder_projection_units, bias=False)

    def forward(self, sy: Tensor, tone: Tensor, syllable_flag: Tensor, ws: Tensor) -> Tensor:
        emb = self.sy_emb(sy) + self.tone_emb(tone) + self.syllable_flag_emb(syllable_flag) + self.ws_emb(ws)
        return self.ling_proj(self.ling_enc(emb))


class VarianceAdaptor(nn.Module):
    def __init__(self, cfg: SambertConfig) -> None:
        super().__init__()
        pred = (
            cfg.d_condition,
            cfg.predictor_filter_size,
            cfg.predictor_fsmn_num_layers,
            cfg.predictor_num_memory_units,
            cfg.predictor_ffn_inner_dim,
            cfg.predictor_shift,
            cfg.predictor_lstm_units,
        )
        self.pitch_predictor = VarFsmnRnnNARPredictor(*pred)
        self.energy_predictor = VarFsmnRnnNARPredictor(*pred)
        self.duration_predictor = VarRnnARPredictor(cfg.d_condition, cfg.dur_pred_prenet_units, cfg.dur_pred_lstm_units)
        self.dur_position_encoder = _DurationPositions(cfg.encoder_projection_units)
        self.pitch_emb = nn.Conv1d(1, cfg.encoder_projection_units, kernel_size=9, padding=4)
        self.energy_emb = nn.Conv1d(1, cfg.encoder_projection_units, kernel_size=9, padding=4)


class HybridAttentionDecoder(nn.Module):
    def __init__(self, cfg: SambertConfig) -> None:
        super().__init__()
        d_model, heads = cfg.decoder_num_units, cfg.decoder_num_heads
        self.d_model = d_model
        self.prenet = Prenet(cfg.num_mels, cfg.decoder_prenet_units, d_model)
        self.dec_in_proj = nn.Linear(d_model + cfg.d_memory, d_model)
        self.pnca = nn.ModuleList(
            [
                PNCABlock(d_model, cfg.d_memory, heads, d_model // heads, cfg.decoder_ffn_inner_dim)
                for _ in range(cfg.decoder_num_layers)
            ]
        )
        self.ln = nn.LayerNorm(d_model, eps=1e-6)
        self.dec_out_proj = nn.Linear(d_model, cfg.num_mels * cfg.outputs_per_step)

    def blocks(self) -> list[PNCABlock]:
        """The PNCA layers as their class (iterating a ModuleList gives plain Modules to a type checker)."""
        return [b for b in self.pnca if isinstance(b, PNCABlock)]


class MelPNCADecoder(nn.Module):
    def __init__(self, cfg: SambertConfig) -> None:
        super().__init__()
        self.mel_dec = HybridAttentionDecoder(cfg)


def band_masks(step: Tensor, n_keys: int, x_band: Tensor, h_band: Tensor) -> tuple[Tensor, Tensor]:
    """Allowed keys for decoder step ``step`` over a cache/memory of ``n_keys`` positions.

    Self-attention sees cached frames ``[step - x_band, step)`` (plus the new frame, handled by the
    caller); memory attention sees ``[step, step + h_band]``. Returns bool ``(1, 1, n_keys)`` each.
    """
    pos = torch.arange(n_keys, device=step.device).view(1, 1, -1)
    x_allowed = (pos >= step - x_band) & (pos < step)
    h_allowed = (pos >= step) & (pos <= step + h_band)
    return x_allowed, h_allowed


class SambertAcoustic(nn.Module):
    """KAN-TTS ``KanTtsSAMBERT`` at inference, batch 1. See the module docstring for the pieces."""

    def __init__(self, config: SambertConfig | None = None) -> None:
        super().__init__()
        cfg = config or SambertConfig()
        self.config = cfg
        self.text_encoder = TextFftEncoder(cfg)
        self.spk_tokenizer = nn.Embedding(cfg.speaker, cfg.speaker_units)
        self.emo_tokenizer = nn.Embedding(cfg.emotion, cfg.emotion_units)
        self.variance_adaptor = VarianceAdaptor(cfg)
        self.mel_decoder = MelPNCADecoder(cfg)
        self.mel_postnet = PostNet(
            cfg.num_mels,
            cfg.postnet_filter_size,
            cfg.postnet_fsmn_num_layers,
            cfg.postnet_num_memory_units,
            cfg.postnet_ffn_inner_dim,
            cfg.postnet_shift,
            cfg.postnet_lstm_units,
        )
        self.eval()

    # ---- graph pieces ---------------------------------------------------------------------------
    def encode(
        self, sy: Tensor, tone: Tensor, syllable_flag: Tensor, ws: Tensor, emotion: Tensor, speaker: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Ids ``(1, T)`` int64 → text ``(1, T, P)``, emotion ``(1, T, E)``, speaker ``(1, T, S)`` features."""
        return self.text_encoder(sy, tone, syllable_flag, ws), self.emo_tokenizer(emotion), self.spk_tokenizer(speaker)

    def predict_variance(
        self, text: Tensor, emo: Tensor, spk: Tensor, controls: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pitch and energy per symbol, and the inputs of the duration predictor and length regulator.

        Args:
            text, emo, spk: encoder outputs ``(1, T, ·)``.
            controls: ``(4,)`` float = pitch scale, pitch shift, energy scale, energy shift, applied to
                the predictions (normalised units) before they are embedded; ``IDENTITY_CONTROLS`` = none.

        Returns:
            pitch ``(1, T)``, energy ``(1, T)`` (raw predictions), ``text_aug`` ``(1, T, P)`` = text +
            pitch/energy embeddings, ``dur_cond`` ``(1, T, P + S + E)``.
        """
        va = self.variance_adaptor
        cond = torch.cat([text, spk, emo], dim=-1)
        pitch = va.pitch_predictor(cond)
        energy = va.energy_predictor(cond)
        pitch_c = pitch * controls[0] + controls[1]
        energy_c = energy * controls[2] + controls[3]
        text_aug = (
            text
            + va.pitch_emb(pitch_c.unsqueeze(1)).transpose(1, 2)
            + va.energy_emb(energy_c.unsqueeze(1)).transpose(1, 2)
        )
        return pitch, energy, text_aug, torch.cat([text_aug, spk, emo], dim=-1)

    def duration_step(self, prev: Tensor, cond: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One duration token; see :meth:`VarRnnARPredictor.step` (state ``(2, 1, lstm_units)``)."""
        return self.variance_adaptor.duration_predictor.step(prev, cond, h, c)

    def decoder_memory(
        self, lr_text: Tensor, dur_pos: Tensor, lr_emo: Tensor, lr_spk: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Length-regulated features → decoder memory and its keys/values.

        Args:
            lr_text, lr_emo, lr_spk: symbol features repeated per frame and zero-padded to a multiple of
                ``r`` frames, ``(1, M·r, ·)``.
            dur_pos: 1-based frame index within its symbol, 0 on padding, ``(1, M·r)`` float.

        Returns:
            memory ``(1, M, d_memory)``; keys and values ``(layers, heads, M, d_head)``.
        """
        r = self.config.outputs_per_step
        pos = dur_pos.unsqueeze(-1) / self.variance_adaptor.dur_position_encoder.inv_timescales
        even = (torch.arange(pos.shape[-1]) % 2 == 0).to(pos.device)
        text = lr_text + torch.where(even, torch.sin(pos), torch.cos(pos))
        n = text.shape[1] // r
        memory = torch.cat(
            [
                text.reshape(1, n, -1),
                lr_spk.reshape(1, n, -1)[:, :, : lr_spk.shape[-1]],
                lr_emo.reshape(1, n, -1)[:, :, : lr_emo.shape[-1]],
            ],
            dim=-1,
        )
        kv = [block.pnca_attn.memory_kv(memory) for block in self.mel_decoder.mel_dec.blocks()]
        return memory, torch.stack([k for k, _ in kv]), torch.stack([v for _, v in kv])

    def _decoder_input(self, prev_frame: Tensor, memory_frame: Tensor) -> Tensor:
        dec = self.mel_decoder.mel_dec
        x = dec.dec_in_proj(torch.cat([memory_frame, dec.prenet(prev_frame)], dim=-1))
        return x * dec.d_model**0.5

    def decoder_step(
        self,
        prev_frame: Tensor,
        memory_frame: Tensor,
        x_k: Tensor,
        x_v: Tensor,
        h_k: Tensor,
        h_v: Tensor,
        step: Tensor,
        x_band: Tensor,
        h_band: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One PNCA step with an explicit cache.

        Args:
            prev_frame: last mel frame of the previous step ``(1, 1, num_mels)`` (zeros at step 0).
            memory_frame: ``memory[:, step]`` ``(1, 1, d_memory)``.
            x_k, x_v: self-attention cache ``(layers, heads, M, d_head)``; positions ``< step`` are valid.
            h_k, h_v: memory keys/values from :meth:`decoder_memory`.
            step, x_band, h_band: int64 scalars.

        Returns:
            ``r`` mel frames ``(1, 1, r·num_mels)``, and this step's keys and values
            ``(layers, heads, 1, d_head)`` for the caller to store at cache position ``step``.
        """
        dec = self.mel_decoder.mel_dec
        x_allowed, h_allowed = band_masks(step, x_k.shape[2], x_band, h_band)
        x_allowed = torch.cat([x_allowed, torch.ones_like(x_allowed[:, :, :1])], dim=-1)
        x = self._decoder_input(prev_frame, memory_frame)
        new_k, new_v = [], []
        for i, block in enumerate(dec.blocks()):
            att = block.pnca_attn
            q, k, v = att.frame_qkv(x)
            out_x = attend(q, torch.cat([x_k[i], k], dim=1), torch.cat([x_v[i], v], dim=1), att.temperature, x_allowed)
            out_h = attend(q, h_k[i], h_v[i], att.temperature, h_allowed)
            x = block.pos_ffn(att.combine(x, out_x, out_h))
            new_k.append(k)
            new_v.append(v)
        return dec.dec_out_proj(dec.ln(x)), torch.stack(new_k), torch.stack(new_v)

    def postnet(self, dec_mel: Tensor) -> Tensor:
        """Decoder mel ``(1, L, num_mels)`` (unpadded) → final mel ``(1, L, num_mels)``."""
        return self.mel_postnet(dec_mel) + dec_mel

    # ---- reference inference --------------------------------------------------------------------
    def _decode_reference(self, memory: Tensor, band: int) -> Tensor:
        """The KAN-TTS decoder loop: growing per-layer caches, band masks over the full key sets."""
        cfg, dec = self.config, self.mel_decoder.mel_dec
        n = memory.shape[1]
        rng = torch.arange(n)
        x_mask = (rng[None, :] >= (rng[:, None] - band).clamp_min(0)) & (rng[None, :] <= rng[:, None])  # (query, key)
        h_mask = (rng[None, :] >= rng[:, None]) & (rng[None, :] < (rng[:, None] + band + 1).clamp_max(n + 1))
        h_kv = [block.pnca_attn.memory_kv(memory) for block in dec.blocks()]
        caches: list[tuple[list[Tensor], list[Tensor]]] = [([], []) for _ in dec.pnca]
        frame = memory.new_zeros(1, 1, cfg.num_mels)
        outputs = []
        for step in range(n):
            x = self._decoder_input(frame, memory[:, step : step + 1])
            for block, (ks, vs), (h_k, h_v) in zip(dec.blocks(), caches, h_kv):
                att = block.pnca_attn
                q, k, v = att.frame_qkv(x)
                ks.append(k)
                vs.append(v)
                out_x = attend(
                    q, torch.cat(ks, dim=1), torch.cat(vs, dim=1), att.temperature, x_mask[step : step + 1, : step + 1]
                )
                out_h = attend(q, h_k, h_v, att.temperature, h_mask[step : step + 1])
                x = block.pos_ffn(att.combine(x, out_x, out_h))
            out = dec.dec_out_proj(dec.ln(x))
            outputs.append(out)
            frame = out[:, :, -cfg.num_mels :]
        return torch.cat(outputs, dim=1).reshape(1, -1, cfg.num_mels)

    @torch.no_grad()
    def forward(self, inputs: SambertInputs, controls: Tensor | None = None) -> SambertOutput:
        """Symbols → mel, as KAN-TTS' ``forward`` at inference (batch 1, no targets).

        The length regulator, frame positions, padding to ``r`` frames and the masked postnet follow
        the reference; the decoder runs its masked full-width loop (:meth:`_decode_reference`).
        """
        cfg = self.config
        ids = {k: torch.from_numpy(v).long().unsqueeze(0) for k, v in inputs.as_dict().items()}
        text, emo, spk = self.encode(**ids)
        ctl = torch.tensor(IDENTITY_CONTROLS) if controls is None else controls.float()
        pitch, energy, text_aug, cond = self.predict_variance(text, emo, spk, ctl)
        n_lstm, units = 2, cfg.dur_pred_lstm_units
        h = c = text.new_zeros(n_lstm, 1, units)
        prev = text.new_zeros(1, 1)
        log_dur = []
        for i in range(cond.shape[1]):
            prev, h, c = self.duration_step(prev, cond[:, i : i + 1], h, c)
            log_dur.append(prev)
        log_durations = torch.cat(log_dur, dim=-1)
        durations = torch.exp(log_durations) - 1
        reps = (durations + 0.5).long()
        frames = int(reps.sum())
        if frames == 0:
            raise ModelError("sambert: the duration predictor gave zero frames for every symbol")
        # Length regulation as one-hot matmul (the reference formulation), padded to r frames.
        cum = torch.cumsum(F.pad(reps.float(), (1, 0)), dim=1)[:, None, :]
        rng = torch.arange(frames)[None, :, None]
        onehot = ((cum[:, :, :-1] <= rng) & (cum[:, :, 1:] > rng)).float()
        pad = (-frames) % cfg.outputs_per_step
        lr = [F.pad(torch.matmul(onehot, t), (0, 0, 0, pad)) for t in (text_aug, emo, spk)]
        offsets = torch.matmul(onehot, cum[:, 0, :-1].unsqueeze(-1)).squeeze(-1)
        dur_pos = F.pad(rng[:, :, 0] - offsets + 1, (0, pad))
        memory, _, _ = self.decoder_memory(lr[0], dur_pos, lr[1], lr[2])
        band = int(durations.max() / cfg.outputs_per_step + 0.5)
        dec = self._decode_reference(memory, band)
        valid = torch.arange(dec.shape[1]) < frames
        dec = dec.masked_fill(~valid[None, :, None], 0.0)
        post = (self.mel_postnet(dec, ~valid[None]) + dec)[:, :frames]
        return SambertOutput(
            mel=post[0],
            dec_mel=dec[0, :frames],
            durations=reps[0],
            log_durations=log_durations[0],
            pitch=pitch[0],
            energy=energy[0],
            band=band,
        )

    # ---- loading --------------------------------------------------------------------------------
    def load_checkpoint_state(self, state: Mapping[str, Tensor]) -> None:
        """Load ``ckpt["model"]`` strictly; only the fixed tables may be missing (recomputed).

        Raises:
            ModelError: naming the first missing / unexpected keys or mismatched shapes.
        """
        state = dict(state)
        own = self.state_dict()
        for key in FIXED_TABLE_KEYS:
            if key not in state:
                state[key] = own[key]
            elif key == FIXED_TABLE_KEYS[0] and state[key].shape != own[key].shape:
                state[key] = (
                    state[key][:, : own[key].shape[1]] if state[key].shape[1] >= own[key].shape[1] else own[key]
                )
        check_state_dict(own, state, "acoustic checkpoint")
        self.load_state_dict(state, strict=True)
