"""Write a Sambert-HifiGan model folder in ModelScope's layout with random weights.

No real weights can be fetched here, so tests build the folder the reader expects::

    voices/voices.json
    voices/<v>/audio_config.yaml
    voices/<v>/am/config.yaml, am/ckpt/checkpoint_<N>.pth   {"model": sd, "optimizer": ..., "steps": N}
    voices/<v>/voc/config.yaml, voc/ckpt/checkpoint_<N>.pth {"model": {"generator": sd_wn, ...}, "scheduler": ...}

Weights are random in the exact key layout (the vocoder in weight-norm form, ``weight_g``/``weight_v``),
with the duration predictor's output bias raised so that random weights predict a few frames per
symbol. ``size="16k"`` uses the real 16 kHz config sizes (395 acoustic, 318 vocoder entries);
``size="small"`` keeps the layout of the vocoder but shrinks every width and depth for fast tests.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from speedy.families.sambert.kan_hifigan import KanHifiGan, KanHifiGanConfig
from speedy.families.sambert.model import SambertAcoustic, SambertConfig

DURATION_BIAS = 1.5
"""``variance_adaptor.duration_predictor.fc.bias``: exp(1.5) - 1 ≈ 3.5 frames per symbol."""

VOCAB = {"sy": 147, "tone": 10, "syllable_flag": 8, "word_segment": 8, "emotion": 36, "speaker": 4}

AM_PARAMS_16K: dict[str, Any] = {
    "max_len": 800,
    "embedding_dim": 512,
    "encoder_num_layers": 8,
    "encoder_num_heads": 8,
    "encoder_num_units": 128,
    "encoder_ffn_inner_dim": 1024,
    "encoder_dropout": 0.1,
    "encoder_attention_dropout": 0.1,
    "encoder_relu_dropout": 0.1,
    "encoder_projection_units": 32,
    "speaker_units": 32,
    "emotion_units": 32,
    "predictor_filter_size": 41,
    "predictor_fsmn_num_layers": 3,
    "predictor_num_memory_units": 128,
    "predictor_ffn_inner_dim": 256,
    "predictor_dropout": 0.1,
    "predictor_shift": 0,
    "predictor_lstm_units": 128,
    "dur_pred_prenet_units": [128, 128],
    "dur_pred_lstm_units": 128,
    "decoder_prenet_units": [256, 256],
    "decoder_num_layers": 12,
    "decoder_num_heads": 8,
    "decoder_num_units": 128,
    "decoder_ffn_inner_dim": 1024,
    "decoder_dropout": 0.1,
    "decoder_attention_dropout": 0.1,
    "decoder_relu_dropout": 0.1,
    "outputs_per_step": 3,
    "num_mels": 80,
    "postnet_filter_size": 41,
    "postnet_fsmn_num_layers": 4,
    "postnet_num_memory_units": 256,
    "postnet_ffn_inner_dim": 512,
    "postnet_dropout": 0.1,
    "postnet_shift": 17,
    "postnet_lstm_units": 128,
    "MAS": False,
}

AM_PARAMS_SMALL: dict[str, Any] = {
    **AM_PARAMS_16K,
    "max_len": 64,
    "embedding_dim": 32,
    "encoder_num_layers": 2,
    "encoder_num_heads": 2,
    "encoder_num_units": 16,
    "encoder_ffn_inner_dim": 32,
    "encoder_projection_units": 8,
    "speaker_units": 8,
    "emotion_units": 8,
    "predictor_filter_size": 5,
    "predictor_fsmn_num_layers": 2,
    "predictor_num_memory_units": 16,
    "predictor_ffn_inner_dim": 16,
    "predictor_lstm_units": 8,
    "dur_pred_prenet_units": [8, 8],
    "dur_pred_lstm_units": 8,
    "decoder_prenet_units": [16, 16],
    "decoder_num_layers": 2,
    "decoder_num_heads": 2,
    "decoder_num_units": 16,
    "decoder_ffn_inner_dim": 32,
    "postnet_filter_size": 5,
    "postnet_fsmn_num_layers": 2,
    "postnet_num_memory_units": 16,
    "postnet_ffn_inner_dim": 16,
    "postnet_shift": 1,
    "postnet_lstm_units": 8,
}

VOC_PARAMS_16K: dict[str, Any] = {
    "in_channels": 80,
    "out_channels": 1,
    "channels": 256,
    "kernel_size": 7,
    "upsample_scales": [10, 5, 2, 2],
    "upsample_kernal_sizes": [20, 10, 4, 4],
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilations": [[1, 3, 5, 7], [1, 3, 5, 7], [1, 3, 5, 7]],
    "bias": True,
    "causal": True,
    "nonlinear_activation": "LeakyReLU",
    "nonlinear_activation_params": {"negative_slope": 0.1},
    "use_weight_norm": True,
}

VOC_PARAMS_SMALL: dict[str, Any] = {**VOC_PARAMS_16K, "channels": 16}

AUDIO_16K: dict[str, Any] = {
    "wav_normalize": True,
    "trim_silence": True,
    "trim_silence_threshold_db": 60,
    "preemphasize": False,
    "sampling_rate": 16000,
    "hop_length": 200,
    "win_length": 1000,
    "n_fft": 2048,
    "n_mels": 80,
    "fmin": 0.0,
    "fmax": 8000.0,
    "phone_level_feature": True,
    "norm_type": "mean_std",
    "max_norm": 1.0,
    "symmetric": False,
    "min_level_db": -100.0,
    "ref_level_db": 20,
    "num_workers": 16,
}


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's trained weights (keys, shapes, float32 bytes in key order), which tells
    one fixture checkpoint from another. The fixed position tables are left out: they are written by this
    project's own code, so a bug there must show as a numerical difference, not as a changed fixture."""
    import hashlib

    from speedy.families.sambert.model import FIXED_TABLE_KEYS

    h = hashlib.sha256()
    for key in sorted(k for k in state if k not in FIXED_TABLE_KEYS):
        value = state[key].detach().to(torch.float32).contiguous()
        h.update(f"{key}:{tuple(value.shape)};".encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


def acoustic_state(params: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random acoustic state dict in checkpoint layout (duration bias raised)."""
    torch.manual_seed(seed)
    model = SambertAcoustic(SambertConfig.from_params(params, VOCAB))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["variance_adaptor.duration_predictor.fc.bias"].fill_(DURATION_BIAS)
    return state


def vocoder_state(params: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random generator state dict in weight-norm form (``weight_g``, ``weight_v``, ``bias`` per conv)."""
    torch.manual_seed(seed + 1)
    model = KanHifiGan(KanHifiGanConfig.from_params(params))
    state: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.endswith(".weight"):
            prefix = key[: -len(".weight")]
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            state[prefix + ".weight_g"] = norm * (0.5 + torch.rand_like(norm))
            state[prefix + ".weight_v"] = value.clone()
        else:
            state[key] = value.detach().clone()
    return state


def write_sambert_folder(
    root: Path,
    voices: tuple[str, ...] = ("zhitian_emo",),
    size: str = "small",
    seed: int = 0,
    am_step: int = 980000,
    voc_step: int = 1,
) -> Path:
    """Create ``root`` as a ModelScope Sambert-HifiGan folder; returns ``root``."""
    am_params = AM_PARAMS_16K if size == "16k" else AM_PARAMS_SMALL
    voc_params = VOC_PARAMS_16K if size == "16k" else VOC_PARAMS_SMALL
    (root / "voices").mkdir(parents=True, exist_ok=True)
    (root / "voices" / "voices.json").write_text(json.dumps({"voices": list(voices)}), encoding="utf-8")
    (root / "configuration.json").write_text(
        json.dumps({"framework": "pytorch", "task": "text-to-speech", "model": {"type": "sambert-hifigan"}}),
        encoding="utf-8",
    )
    for i, name in enumerate(voices):
        folder = root / "voices" / name
        for sub in ("am/ckpt", "voc/ckpt"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        _yaml(folder / "audio_config.yaml", {"audio_config": AUDIO_16K})
        _yaml(
            folder / "am" / "config.yaml",
            {
                "model_type": "sambert",
                "Model": {"KanTtsSAMBERT": {"params": am_params}},
                "linguistic_unit": {
                    "cleaners": "english_cleaners",
                    "lfeat_type_list": "sy,tone,syllable_flag,word_segment,emo_category,speaker_category",
                    "speaker_list": "F7",
                    "language": "PinYin",
                },
            },
        )
        _yaml(folder / "voc" / "config.yaml", {"model_type": "hifigan", "Model": {"Generator": {"params": voc_params}}})
        am = acoustic_state(am_params, seed + 10 * i)
        torch.save(
            {"model": am, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "steps": am_step},
            folder / "am" / "ckpt" / f"checkpoint_{am_step}.pth",
        )
        voc = vocoder_state(voc_params, seed + 10 * i)
        torch.save(
            {
                "model": {"generator": voc, "discriminator": {}},
                "scheduler": {"generator": {"milestones": collections.Counter({200000: 1}), "gamma": 0.5}},
                "steps": voc_step,
            },
            folder / "voc" / "ckpt" / f"checkpoint_{voc_step}.pth",
        )
    return root


def _yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
