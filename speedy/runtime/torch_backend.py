"""Torch-family runtime backends: eager torch ("torch"), TorchScript ("torchscript") and torch.export
programs ("torch-export").

Every runner follows the protocols in `speedy.runtime`: numpy in, numpy out. The acoustic runner takes
ids (1, T) int64 and the controls by name (`speedy.controls.GraphControls`, passed to the module in its
input order: speed ×, pitch semitones, pitch_range ×, energy ×) and returns
mel (1, L, n_mels) float32 and durations (1, T) int64; the vocoder runner takes mel (B, L, n_mels) float32
and returns a waveform (B, L·hop) float32. Runners run under `torch.inference_mode()`.

torch is imported inside functions only: importing this module costs nothing on the ONNX path.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.controls import GraphControls
from speedy.errors import ModelError
from speedy.runtime.receptive import torch_width

_LOGGER = logging.getLogger(__name__)


def load_torch_modules(manifest: Manifest, root: Path) -> dict[str, Any]:
    """Build the family's eager modules from a torch artifact folder.

    Args:
        manifest: the folder's manifest; its `family` picks the loader its FamilySpec declares
            (`speedy.families.torch_loader`).
        root: the artifact folder (holds the weight files and the family's config.json).

    Returns:
        {"acoustic": nn.Module, "vocoder": nn.Module}, eval mode, float32, CPU, no parameter requires grad
        (no "acoustic" for a vocoder-only family, whose loader returns None for it).
    """
    from speedy.families import torch_loader

    acoustic, vocoder, _cfg = torch_loader(manifest.family)(Path(root))
    modules = {n: m.eval() for n, m in (("acoustic", acoustic), ("vocoder", vocoder)) if m is not None}
    for m in modules.values():  # inference only: tensors made under inference_mode may meet the weights
        m.requires_grad_(False)
    return modules


def _set_threads(options: Any) -> None:
    import torch

    threads = getattr(options, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))


class TorchAcoustic:
    """Acoustic runner around any callable `(ids, speed, pitch, pitch_range, energy) -> (mel, durations)`.

    The callable may be an eager module, a TorchScript module or a torch.export program's module.
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        """ids (1, T) int64; controls by name → mel (1, L, n_mels) float32, durations (1, T) int64."""
        import torch

        t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        ctrl = [torch.tensor([v], dtype=torch.float32) for v in controls.values()]
        mel, dur = _call("acoustic", self.fn, t_ids, *ctrl)
        return mel.float().numpy(), dur.to(torch.int64).numpy()


class TorchVocoder:
    """Vocoder runner around any callable `mel (B, L, n_mels) -> wav (B, L·hop)` (or (B, 1, L·hop))."""

    def __init__(self, fn: Any, one_by_one: bool = False) -> None:
        self.fn = fn
        self.one_by_one = one_by_one  # the program was exported for batch 1
        #: mel frames an output sample depends on (speedy.runtime.receptive); None = not known
        self.receptive_field_frames: float | None = None

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """mel (B, L, n_mels) float32 → waveform (B, L·hop) float32."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
        if self.one_by_one and x.shape[0] > 1:
            wav = torch.cat([_call("vocoder", self.fn, x[i : i + 1]).reshape(1, -1) for i in range(x.shape[0])])
        else:
            wav = _call("vocoder", self.fn, x)
        out = wav.float().numpy()
        return out.reshape(out.shape[0], -1)


def _call(name: str, fn: Any, *args: Any) -> Any:
    """fn(*args) under inference mode; an input outside a compiled program's bounds becomes a ModelError."""
    import torch

    try:
        with torch.inference_mode():
            return fn(*args)
    except (AssertionError, RuntimeError) as e:  # torch.export guards raise AssertionError, TorchScript RuntimeError
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        shapes = ", ".join(str(tuple(a.shape)) for a in args[:1])
        raise ModelError(f"{name}: the torch runtime refused input {shapes}: {first[:200]}") from None


def _runner(name: str, fn: Any) -> TorchAcoustic | TorchVocoder:
    return TorchAcoustic(fn) if name == "acoustic" else TorchVocoder(fn)


#: Modules built for one component wait here for the other one (the family loader builds both at once).
_PENDING: dict[tuple[str, ...], tuple[dict[str, Any], set[str]]] = {}


def load_component(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torch": eager modules built by the family loader from the folder's weights + config.json.

    The loader builds both components; the one not asked for is kept until it is asked for (the
    Synthesizer loads acoustic then vocoder), so a folder is read once, not twice.
    """
    _set_threads(options)
    key = (str(Path(root).resolve()), *(c.sha256 for c in manifest.components.values()))
    modules, taken = _PENDING.pop(key, (None, set()))
    if modules is None or name in taken:
        modules, taken = load_torch_modules(manifest, Path(root)), set()
    taken.add(name)
    if not taken >= set(modules):
        _PENDING.clear()  # one folder at a time: never hold more than one pair of modules
        _PENDING[key] = (modules, taken)
    runner = _runner(name, modules[name])
    if isinstance(runner, TorchVocoder):
        runner.receptive_field_frames = torch_width(modules[name], manifest.audio.n_mels)
    return runner


def load_torchscript(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torchscript": a `torch.jit.save`d module (traced or scripted), frozen for inference."""
    import torch

    _set_threads(options)
    path = Path(root) / manifest.components[name].file
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise ModelError(f"{path.name}: torch.jit.load cannot read it ({str(e).splitlines()[0][:200]})") from None
    return _runner(name, module)


def load_torch_export(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torch-export": a `torch.export.save`d ExportedProgram (.pt2) run through `.module()`."""
    import torch

    _set_threads(options)
    path = Path(root) / manifest.components[name].file
    try:
        program = torch.export.load(str(path))
    except (RuntimeError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise ModelError(f"{path.name}: torch.export.load cannot read it ({str(e).splitlines()[0][:200]})") from None
    module = program.module()
    if name == "acoustic":
        return TorchAcoustic(module)
    return TorchVocoder(module, one_by_one=manifest.components[name].extra.get("batch") == 1)
