"""Sambert acoustic-model configuration (``am/config.yaml``) and checkpoint-key checks, torch-free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from speedy.errors import ModelError

_UNSUPPORTED_FLAGS = {
    "SE": "speaker-embedding (SE)",
    "NSF": "NSF (mel + f0 + uv)",
    "FP": "filled-pause (FP)",
    "using_byte": "byte-input",
}


@dataclass(frozen=True)
class SambertConfig:
    """``Model.KanTtsSAMBERT.params`` of ``am/config.yaml`` plus the vocabulary sizes.

    Field names are the YAML keys (defaults: KAN-TTS ``sambert_16k.yaml``); ``sy`` … ``speaker`` are the
    embedding-table sizes, which KAN-TTS injects at load time and :mod:`speedy.families.sambert.source`
    reads from the checkpoint's embedding shapes. Dropout keys are ignored (inference only).
    """

    sy: int = 147
    tone: int = 10
    syllable_flag: int = 8
    word_segment: int = 8
    emotion: int = 36
    speaker: int = 4
    max_len: int = 800
    embedding_dim: int = 512
    encoder_num_layers: int = 8
    encoder_num_heads: int = 8
    encoder_num_units: int = 128
    encoder_ffn_inner_dim: int = 1024
    encoder_projection_units: int = 32
    speaker_units: int = 32
    emotion_units: int = 32
    predictor_filter_size: int = 41
    predictor_fsmn_num_layers: int = 3
    predictor_num_memory_units: int = 128
    predictor_ffn_inner_dim: int = 256
    predictor_shift: int = 0
    predictor_lstm_units: int = 128
    dur_pred_prenet_units: tuple[int, ...] = (128, 128)
    dur_pred_lstm_units: int = 128
    decoder_prenet_units: tuple[int, ...] = (256, 256)
    decoder_num_layers: int = 12
    decoder_num_heads: int = 8
    decoder_num_units: int = 128
    decoder_ffn_inner_dim: int = 1024
    outputs_per_step: int = 3
    num_mels: int = 80
    postnet_filter_size: int = 41
    postnet_fsmn_num_layers: int = 4
    postnet_num_memory_units: int = 256
    postnet_ffn_inner_dim: int = 512
    postnet_shift: int = 17
    postnet_lstm_units: int = 128

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_units") and isinstance(value, (list, tuple)):
                value = tuple(int(v) for v in value)
                object.__setattr__(self, f.name, value)
                if not value or min(value) <= 0:
                    raise ModelError(f"sambert config: {f.name} must be non-empty positive integers, got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool):
                raise ModelError(f"sambert config: {f.name} must be an integer, got {value!r}")
            elif value < 0 or (value == 0 and not f.name.endswith("_shift")):
                raise ModelError(f"sambert config: {f.name} must be positive, got {value}")
        for part in ("encoder", "decoder"):
            units, heads = getattr(self, f"{part}_num_units"), getattr(self, f"{part}_num_heads")
            if units % heads:
                raise ModelError(
                    f"sambert config: {part}_num_units {units} is not divisible by {part}_num_heads {heads}"
                )

    @property
    def d_memory(self) -> int:
        """Decoder memory width: ``r`` projected text frames + speaker + emotion (160 for 16 kHz)."""
        return self.encoder_projection_units * self.outputs_per_step + self.speaker_units + self.emotion_units

    @property
    def d_condition(self) -> int:
        """Variance-predictor input width: text + speaker + emotion (96 for 16 kHz)."""
        return self.encoder_projection_units + self.speaker_units + self.emotion_units

    @property
    def decoder_head_dim(self) -> int:
        return self.decoder_num_units // self.decoder_num_heads

    @property
    def vocab_sizes(self) -> dict[str, int]:
        """Embedding-table sizes by input stream (``sy``, ``tone``, ``syllable_flag``, ``ws``, ``emotion``, ``speaker``)."""
        return {
            "sy": self.sy,
            "tone": self.tone,
            "syllable_flag": self.syllable_flag,
            "ws": self.word_segment,
            "emotion": self.emotion,
            "speaker": self.speaker,
        }

    @classmethod
    def from_params(cls, params: Mapping[str, Any], vocab: Mapping[str, int]) -> SambertConfig:
        """Build from the YAML ``params`` mapping and vocabulary sizes; refuse unsupported variants."""
        for flag, name in _UNSUPPORTED_FLAGS.items():
            if params.get(flag, False):
                raise ModelError(f"sambert: the {name} variant is not supported (am/config.yaml sets {flag}: true)")
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in params.items() if k in names}
        values.update({k: int(v) for k, v in vocab.items() if k in names})
        try:
            return cls(**values)
        except TypeError as exc:
            raise ModelError(f"sambert config: {exc}") from exc


def check_state_dict(own: Mapping[str, Any], state: Mapping[str, Any], what: str, limit: int = 3) -> None:
    """Raise a one-line :class:`ModelError` naming the first few missing, unexpected or mis-shaped keys."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{label}: {', '.join(items[:limit])}{more}")
    if problems:
        raise ModelError(f"{what} does not match the model: " + "; ".join(problems))


def count_parameters(module: Any) -> int:
    """Number of parameters (for logs and reports)."""
    return sum(p.numel() for p in module.parameters())
