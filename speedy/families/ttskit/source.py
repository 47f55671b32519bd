"""The ttskit 0.3.8 wheel from PyPI: located, checksum-checked, read with torch, never installed.

The wheel (``pip download ttskit==0.3.8 --no-deps``; its own dependencies are old) ships
``ttskit/resource/model/{mellotron.kuangdd-mspk.pt, mellotron.kuangdd-mspk.hparams.json, melgan.kuangdd.pt}``.
Both ``.pt`` files are whole pickled modules (``torch.save(model)``) whose classes live in the wheel's
``mellotron``/``melgan`` packages. They are read with ``torch.load(weights_only=True)``: the wheel's
classes are allow-listed as an empty ``nn.Module`` stand-in (:class:`_Stub`), so no code from the wheel
runs; torch's own layer classes, ``WeightNorm``, ``set`` and ``OrderedDict`` are allow-listed as they are.
The state dicts are then checked against the expected key set and shapes.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speedy.errors import ModelError
from speedy.families.wheels import PinnedWheel, locate

_LOGGER = logging.getLogger(__name__)

VERSION = "0.3.8"
SHA256 = "edb0610f0ca27198a6eadc6788b16c28203ae0951c4fc456077026805382e373"
ENV_WHEEL = "SPEEDY_TTSKIT_WHEEL"
PIP_TIMEOUT_S = 600
MELLOTRON_ASSET = "ttskit/resource/model/mellotron.kuangdd-mspk.pt"
HPARAMS_ASSET = "ttskit/resource/model/mellotron.kuangdd-mspk.hparams.json"
MELGAN_ASSET = "ttskit/resource/model/melgan.kuangdd.pt"
#: Classes of the wheel that the pickles name; each is read as a plain nn.Module holding its children.
_WHEEL_CLASSES = (
    "mellotron.model.Tacotron2",
    "mellotron.model.Encoder",
    "mellotron.model.Decoder",
    "mellotron.model.Prenet",
    "mellotron.model.Attention",
    "mellotron.model.LocationLayer",
    "mellotron.model.Postnet",
    "mellotron.layers.ConvNorm",
    "mellotron.layers.LinearNorm",
    "melgan.model.generator.Generator",
    "melgan.model.res_stack.ResStack",
)


@dataclass(frozen=True)
class TtskitWeights:
    """What the wheel holds, as plain tensors.

    Attributes:
        mellotron: Mellotron state dict (86 tensors, embedding ``(145, 256)`` …).
        melgan: MelGAN generator state dict with weight norm folded (``generator.N.weight``), 84 tensors.
        hparams: the hparams JSON (train_mode ``train-mspk``, 22050 Hz, hop 256, 80 mels …).
        decoder: the inference settings pickled with the decoder (``gate_threshold`` 0.8,
            ``max_decoder_steps`` 1200; the JSON says 0.5 / 1000 but ttskit runs the pickled module).
    """

    mellotron: dict[str, Any]
    melgan: dict[str, Any]
    hparams: dict[str, Any]
    decoder: dict[str, Any]


WHEEL = PinnedWheel("ttskit", VERSION, SHA256, ENV_WHEEL, timeout_s=PIP_TIMEOUT_S)


def locate_wheel(source_wheel: Path | None = None) -> Path:
    """A verified ttskit-0.3.8 wheel: ``source_wheel``, ``$SPEEDY_TTSKIT_WHEEL``, the cache, else pip download.

    The sha256 is checked every time; a mismatch (or a truncated file) raises ModelError (exit 3).
    """
    return locate(source_wheel, WHEEL)


def _stub_class() -> type:
    from torch import nn

    class _Stub(nn.Module):
        """Stand-in for a wheel class: keeps the pickled attributes, children, parameters and buffers."""

    return _Stub


def _safe_globals(stub: type) -> list[Any]:
    import collections

    from torch import nn

    weight_norm = sys.modules["torch.nn.utils.weight_norm"].WeightNorm
    torch_classes = [
        nn.Embedding,
        nn.ModuleList,
        nn.Sequential,
        nn.Conv1d,
        nn.ConvTranspose1d,
        nn.BatchNorm1d,
        nn.LSTM,
        nn.LSTMCell,
        nn.Linear,
        nn.ReflectionPad1d,
        nn.LeakyReLU,
        nn.Tanh,
        weight_norm,
        set,
        collections.OrderedDict,
    ]
    return [(stub, name) for name in _WHEEL_CLASSES] + torch_classes


def load_pickled_module(data: bytes, what: str) -> Any:
    """A whole pickled module from ``data`` (torch zip format) with ``weights_only=True``; ModelError if not."""
    import pickle

    import torch

    stub = _stub_class()
    try:
        with torch.serialization.safe_globals(_safe_globals(stub)):
            module = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        KeyError,
        AttributeError,
        zipfile.BadZipFile,
    ) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ttskit: cannot read {what} ({first})") from None
    if not isinstance(module, torch.nn.Module):
        raise ModelError(f"ttskit: {what} is a {type(module).__name__}, not a pickled module")
    return module


def _fold_weight_norm(sd: dict[str, Any]) -> dict[str, Any]:
    """``weight_g``/``weight_v`` pairs (norm over every dim but 0) → plain ``weight``."""
    import torch

    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key.endswith(".weight_v"):
            stem = key.removesuffix(".weight_v")
            g = sd[stem + ".weight_g"]
            norm = torch.linalg.vector_norm(value.reshape(value.shape[0], -1), dim=1).reshape(g.shape)
            out[stem + ".weight"] = (g / norm) * value
        elif not key.endswith(".weight_g"):
            out[key] = value
    return out


def read_wheel(source_wheel: Path | None = None) -> TtskitWeights:
    """Locate and verify the wheel, then read its checkpoints (no code from the wheel runs).

    Raises:
        ModelError: no wheel, wrong checksum, a member missing or unreadable, or the checkpoints'
        train mode / shapes are not the ``train-mspk`` Mellotron + MelGAN this family implements.
    """
    from speedy.families.ttskit.modules import check_state_dicts

    wheel = locate_wheel(source_wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            mel_bytes, voc_bytes = zf.read(MELLOTRON_ASSET), zf.read(MELGAN_ASSET)
            hparams = json.loads(zf.read(HPARAMS_ASSET).decode("utf-8"))
    except (KeyError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelError(f"{wheel.name}: cannot read the ttskit model files ({exc})") from None
    mellotron = load_pickled_module(mel_bytes, Path(MELLOTRON_ASSET).name)
    melgan = load_pickled_module(voc_bytes, Path(MELGAN_ASSET).name)
    decoder = getattr(mellotron, "decoder", None)
    settings = {k: getattr(decoder, k, None) for k in ("gate_threshold", "max_decoder_steps")}
    weights = TtskitWeights(
        mellotron={k: v.detach().clone() for k, v in mellotron.state_dict().items()},
        melgan=_fold_weight_norm({k: v.detach().clone() for k, v in melgan.state_dict().items()}),
        hparams=hparams,
        decoder=settings,
    )
    check_state_dicts(weights)
    return weights
