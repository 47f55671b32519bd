"""Writing a pruned artifact: smaller modules of a family as its pruned variant (`PruneMap.family`).

config.json is the source's plus ``"pruned": {"acoustic": {group: units}, "vocoder": {...},
"calibration": {...}}`` (group names from the family's `PruneMap.groups`; the prosody calibration the
source model was loaded with, when the acoustic module has one). The pruned variant's loader lives in the
family's package (its `torch_loaders` entry for `PruneMap.family`), which rebuilds the modules at those
widths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from torch import nn

from speedy.artifacts import Manifest, atomic_artifact, lineage_step, sha256_file, write_manifest
from speedy.families import prune_map
from speedy.models.registry import read_config


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
    """Write `student` (smaller modules of `src`'s family) as its pruned-variant torch artifact, atomically.

    Args:
        components: the components whose widths changed (recorded in config.json's ``pruned``).
        stage: (stage name, its options, its report) for the lineage and ``manifest.extra[stage name]``.
        config_updates: {config.json section: entries to replace} (e.g. a shallower vocoder's dilations).
    """
    import json

    from safetensors.torch import save_file

    from speedy.prune.surgery import groups_for, widths

    name, options, report = stage
    pm = prune_map(src.family, name)
    cfg = read_config(source)
    for section, entries in (config_updates or {}).items():
        cfg[section] = {**cfg.get(section, {}), **entries}
    pruned = dict(cfg.get("pruned", {}))
    for c in components:
        pruned[c] = widths(groups_for(c, student[c]))
    cal = getattr(student["acoustic"], "calibration", None)
    if cal is not None:
        pruned["calibration"] = asdict(cal)
    cfg.update(family=pm.family, pruned=pruned)
    with atomic_artifact(out, force=force) as staging:
        comps = dict(src.components)
        for c, comp in src.components.items():
            path = staging / pm.files[c]
            state = {k: v.detach().contiguous() for k, v in student[c].state_dict().items()}
            save_file(state, str(path), metadata={"pruned_by": "openspeedy"})
            comps[c] = replace(comp, file=pm.files[c], sha256=sha256_file(path))
        (staging / "config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")
        step = lineage_step(name, {**options, "source": str(source)}, seconds, "torch", "safetensors")
        manifest = src.with_step(
            step, family=pm.family, components=comps, extra={**dict(src.extra), name: dict(report)}
        )
        write_manifest(staging, manifest)
    return manifest
