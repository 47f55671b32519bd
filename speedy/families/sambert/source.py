"""Read a Sambert-HifiGan model folder as ModelScope downloads it (nothing is downloaded here).

Layout (current ModelScope revisions, e.g. ``damo/speech_sambert-hifigan_tts_zh-cn_16k``)::

    <model_dir>/voices/voices.json               {"voices": ["zhitian_emo", ...]}; the first is the default
    <model_dir>/voices/<voice>/audio_config.yaml
    <model_dir>/voices/<voice>/am/config.yaml    Model.KanTtsSAMBERT.params, linguistic_unit
    <model_dir>/voices/<voice>/am/ckpt/checkpoint_<N>.pth     {"model": state_dict, ...}
    <model_dir>/voices/<voice>/voc/config.yaml   Model.Generator.params
    <model_dir>/voices/<voice>/voc/ckpt/checkpoint_<N>.pth    {"model": {"generator": state_dict}, ...}

The highest ``N`` is used. Vocabulary sizes come from the checkpoint's embedding shapes, weight-norm
pairs of the vocoder are folded, and both state dicts must match the modules exactly. The legacy
2022 layout (``voices.zip``, ``pytorch_model.bin``) and the SE, NSF, byte-input, filled-pause and
PQMF variants are refused with a one-line :class:`~speedy.errors.ModelError`. ``modelscope`` itself
is not needed.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speedy.errors import ModelError

_LOGGER = logging.getLogger(__name__)

_CKPT_RE = re.compile(r"^checkpoint_(\d+)\.pth$")

EMBEDDING_KEYS = {
    "sy": "text_encoder.sy_emb.weight",
    "tone": "text_encoder.tone_emb.weight",
    "syllable_flag": "text_encoder.syllable_flag_emb.weight",
    "word_segment": "text_encoder.ws_emb.weight",
    "emotion": "emo_tokenizer.weight",
    "speaker": "spk_tokenizer.weight",
}
"""Vocabulary name → the checkpoint key whose first dimension is its size."""

_TRAINING_ONLY_PREFIXES = ("align_attention.",)


@dataclass(frozen=True)
class AudioConfig:
    """``audio_config.yaml``: the mel the acoustic model predicts and the vocoder consumes."""

    sample_rate: int
    hop_size: int
    win_length: int
    n_fft: int
    n_mels: int
    fmin: float
    fmax: float
    norm_type: str = "mean_std"
    min_level_db: float = -100.0
    ref_level_db: float = 20.0


@dataclass(frozen=True)
class SambertVoice:
    """Where one voice's files are and what its configs say (before any weights are loaded)."""

    name: str
    folder: Path
    am_params: dict[str, Any]
    voc_params: dict[str, Any]
    am_checkpoint: Path
    voc_checkpoint: Path
    audio: AudioConfig
    linguistic_unit: dict[str, Any] = field(default_factory=dict)
    has_mask: bool = True

    @property
    def speakers(self) -> list[str]:
        """``linguistic_unit.speaker_list`` (speaker id = index)."""
        raw = self.linguistic_unit.get("speaker_list", "")
        return [s.strip() for s in str(raw).split(",") if s.strip()]


@dataclass
class LoadedSambert:
    """A voice with its modules loaded (eval mode, CPU, float32)."""

    voice: SambertVoice
    acoustic: Any  # SambertAcoustic
    vocoder: Any  # KanHifiGan


def list_voices(model_dir: Path | str) -> list[str]:
    """Voice names of ``voices/voices.json`` in file order (the first is the default)."""
    root = _check_root(Path(model_dir))
    path = root / "voices" / "voices.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read voices.json ({exc})") from exc
    voices = data.get("voices") if isinstance(data, dict) else None
    if not isinstance(voices, list) or not voices or not all(isinstance(v, str) for v in voices):
        raise ModelError(f'{path}: expected {{"voices": [names...]}} with at least one voice')
    return voices


def read_voice(model_dir: Path | str, voice: str | None = None) -> SambertVoice:
    """Locate and parse one voice's configs (``voice=None``: the default voice)."""
    root = Path(model_dir)
    names = list_voices(root)
    name = voice or names[0]
    folder = root / "voices" / name
    if name not in names or not folder.is_dir():
        raise ModelError(
            f"voice {name!r} not found in {root} (available: {', '.join(n for n in names if (root / 'voices' / n).is_dir())})"
        )
    am_cfg = _read_yaml(folder / "am" / "config.yaml")
    voc_cfg = _read_yaml(folder / "voc" / "config.yaml")
    audio = _read_audio(folder / "audio_config.yaml")
    am_params = _dig(am_cfg, ("Model", "KanTtsSAMBERT", "params"), folder / "am" / "config.yaml")
    voc_params = _dig(voc_cfg, ("Model", "Generator", "params"), folder / "voc" / "config.yaml")
    for flag, what in (
        ("SE", "speaker-embedding (SE)"),
        ("NSF", "NSF"),
        ("using_byte", "byte-input"),
        ("FP", "filled-pause (FP)"),
    ):
        if am_params.get(flag, False):
            raise ModelError(
                f"voice {name!r}: the {what} Sambert variant is not supported (am/config.yaml sets {flag})"
            )
    if (folder / "am" / "se.npy").exists():
        raise ModelError(
            f"voice {name!r}: the speaker-embedding (SE) Sambert variant is not supported (am/se.npy present)"
        )
    return SambertVoice(
        name=name,
        folder=folder,
        am_params=dict(am_params),
        voc_params=dict(voc_params),
        am_checkpoint=latest_checkpoint(folder / "am" / "ckpt"),
        voc_checkpoint=latest_checkpoint(folder / "voc" / "ckpt"),
        audio=audio,
        linguistic_unit=dict(am_cfg.get("linguistic_unit") or {}),
        has_mask=_has_mask(root),
    )


def load_sambert(model_dir: Path | str, voice: str | None = None) -> LoadedSambert:
    """Read a voice and load its acoustic model and vocoder strictly.

    Raises:
        ModelError: not a model folder, missing voice or file, unsupported variant, unreadable or
            truncated checkpoint, or a state dict whose keys/shapes do not match (first few named).
    """
    from speedy.families.sambert.kan_hifigan import KanHifiGan, KanHifiGanConfig, fold_weight_norm
    from speedy.families.sambert.model import SambertAcoustic, SambertConfig

    info = read_voice(model_dir, voice)
    am_state = _state_dict(load_checkpoint(info.am_checkpoint), ("model",), info.am_checkpoint)
    if "text_encoder.byte_index_emb.weight" in am_state:
        raise ModelError(f"voice {info.name!r}: byte-input Sambert checkpoints are not supported")
    am_state = {k: v for k, v in am_state.items() if not k.startswith(_TRAINING_ONLY_PREFIXES)}
    vocab = vocab_sizes(am_state, info.am_checkpoint)
    acoustic = SambertAcoustic(SambertConfig.from_params(info.am_params, vocab))
    _load(acoustic.load_checkpoint_state, am_state, info.am_checkpoint)

    voc_cfg = KanHifiGanConfig.from_params(info.voc_params)
    if voc_cfg.in_channels != acoustic.config.num_mels:
        raise ModelError(
            f"voice {info.name!r}: vocoder takes {voc_cfg.in_channels} mel bins, acoustic model gives {acoustic.config.num_mels}"
        )
    if voc_cfg.hop_size != info.audio.hop_size:
        raise ModelError(
            f"voice {info.name!r}: vocoder hop {voc_cfg.hop_size} != audio_config hop_length {info.audio.hop_size}"
        )
    voc_state = _state_dict(load_checkpoint(info.voc_checkpoint), ("model", "generator"), info.voc_checkpoint)
    vocoder = KanHifiGan(voc_cfg)
    _load(vocoder.load_checkpoint_state, fold_weight_norm(voc_state), info.voc_checkpoint)
    _LOGGER.info(
        "loaded sambert voice %s (am %s, voc %s)", info.name, info.am_checkpoint.name, info.voc_checkpoint.name
    )
    return LoadedSambert(voice=info, acoustic=acoustic, vocoder=vocoder)


def vocab_sizes(state: dict[str, Any], where: Path) -> dict[str, int]:
    """Embedding-table sizes read from the acoustic state dict's embedding shapes."""
    sizes = {}
    for name, key in EMBEDDING_KEYS.items():
        if key not in state:
            raise ModelError(f"{where}: acoustic checkpoint has no {key} (needed for the {name} vocabulary size)")
        sizes[name] = int(state[key].shape[0])
    return sizes


def latest_checkpoint(folder: Path) -> Path:
    """``checkpoint_<N>.pth`` with the highest ``N`` in ``folder``."""
    found = []
    if folder.is_dir():
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.match(p.name)) and p.is_file()]
    if not found:
        raise ModelError(f"{folder}: no checkpoint_<N>.pth found")
    return max(found)[1]


def load_checkpoint(path: Path) -> Any:
    """``torch.load`` on CPU, tensors-only first; a pickle with other objects is retried in full.

    ModelScope checkpoints also hold optimizer and scheduler states, some of which (``Counter``
    milestones) are outside ``weights_only``; model folders are the user's own download.
    """
    import torch

    errors = (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        AttributeError,
        ModuleNotFoundError,
    )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise ModelError(f"{path}: cannot read checkpoint (truncated or corrupt): {_first_line(exc)}") from exc
        _LOGGER.warning("%s holds non-tensor objects; loading it with full unpickling", path)
    except errors as exc:
        raise ModelError(f"{path}: cannot read checkpoint (truncated or corrupt): {_first_line(exc)}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except errors as exc:
        raise ModelError(f"{path}: cannot read checkpoint (truncated or corrupt): {_first_line(exc)}") from exc


def _load(loader: Any, state: dict[str, Any], where: Path) -> None:
    try:
        loader(state)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from exc


def _state_dict(ckpt: Any, path: tuple[str, ...], where: Path) -> dict[str, Any]:
    node = ckpt
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise ModelError(f"{where}: expected a checkpoint with {'/'.join(path)}, found keys {_keys(node)}")
        node = node[key]
    if not isinstance(node, dict) or not node:
        raise ModelError(f"{where}: {'/'.join(path)} is not a state dict")
    import torch

    bad = [k for k, v in node.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{where}: {'/'.join(path)} holds non-tensors: {', '.join(map(str, bad[:3]))}")
    return {k: v.float() if v.is_floating_point() else v for k, v in node.items()}


def _check_root(root: Path) -> Path:
    if not root.is_dir():
        raise ModelError(f"{root} is not a folder")
    if (root / "voices" / "voices.json").is_file():
        return root
    legacy = [
        p.relative_to(root).as_posix()
        for p in (root / "voices.zip", root / "am" / "pytorch_model.bin", root / "vocoder" / "pytorch_model.bin")
        if p.exists()
    ]
    if legacy:
        raise ModelError(
            f"{root}: the legacy 2022 ModelScope layout ({', '.join(legacy)}) is not supported; use a current model revision"
        )
    raise ModelError(f"{root} is not a Sambert-HifiGan model folder (no voices/voices.json)")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path} is missing") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot parse YAML: {_first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a mapping")
    return data


def _dig(data: dict[str, Any], keys: tuple[str, ...], where: Path) -> dict[str, Any]:
    node: Any = data
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise ModelError(f"{where}: missing {'.'.join(keys)}")
        node = node[key]
    if not isinstance(node, dict):
        raise ModelError(f"{where}: {'.'.join(keys)} is not a mapping")
    return node


def _read_audio(path: Path) -> AudioConfig:
    data = _read_yaml(path)
    cfg = data.get("audio_config", data)
    try:
        return AudioConfig(
            sample_rate=int(cfg["sampling_rate"]),
            hop_size=int(cfg["hop_length"]),
            win_length=int(cfg["win_length"]),
            n_fft=int(cfg["n_fft"]),
            n_mels=int(cfg["n_mels"]),
            fmin=float(cfg.get("fmin", 0.0)),
            fmax=float(cfg.get("fmax", int(cfg["sampling_rate"]) / 2)),
            norm_type=str(cfg.get("norm_type", "mean_std")),
            min_level_db=float(cfg.get("min_level_db", -100.0)),
            ref_level_db=float(cfg.get("ref_level_db", 20.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: missing or bad audio setting {_first_line(exc)}") from exc


def _has_mask(root: Path) -> bool:
    """``configuration.json``'s ``model.am.linguistic_unit.has_mask`` (default true)."""
    path = root / "configuration.json"
    if not path.is_file():
        return True
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return bool(data.get("model", {}).get("am", {}).get("linguistic_unit", {}).get("has_mask", True))
    except (OSError, ValueError, AttributeError):
        _LOGGER.warning("%s: unreadable, assuming has_mask = true", path)
        return True


def _keys(node: Any) -> str:
    return ", ".join(map(str, list(node)[:5])) if isinstance(node, dict) else type(node).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
