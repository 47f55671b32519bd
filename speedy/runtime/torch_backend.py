"""Torch-family runtime backends: eager torch ("torch"), TorchScript ("torchscript") and torch.export
programs ("torch-export").

Every runner follows the protocols in `speedy.runtime`: numpy in, numpy out. The acoustic runner takes
ids (1, T) int64 and controls float32[4] = (speed ×, pitch semitones, pitch_range ×, energy ×) and returns
mel (1, L, n_mels) float32 and durations (1, T) int64; the vocoder runner takes mel (B, L, n_mels) float32
and returns a waveform (B, L·hop) float32. Runners run under `torch.inference_mode()`.

torch is imported inside functions only: importing this module costs nothing on the ONNX path.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.errors import ModelError

_LOGGER = logging.getLogger(__name__)


def load_torch_modules(manifest: Manifest, root: Path) -> dict[str, Any]:
    """Build the family's eager modules from a torch artifact folder.

    Args:
        manifest: the folder's manifest; its `family` picks the loader in `speedy.models.registry`.
        root: the artifact folder (holds the weight files and the family's config.json).

    Returns:
        {"acoustic": nn.Module, "vocoder": nn.Module}, eval mode, float32, CPU, no parameter requires grad.
    """
    from speedy.models.registry import get_loader

    acoustic, vocoder, _cfg = get_loader(manifest.family)(Path(root))
    modules = {"acoustic": acoustic.eval(), "vocoder": vocoder.eval()}
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

    def __call__(self, ids: np.ndarray, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ids (1, T) int64; controls (4,) float32 → mel (1, L, n_mels) float32, durations (1, T) int64."""
        import torch

        c = np.asarray(controls, dtype=np.float32).reshape(-1)
        if c.shape[0] != 4:
            raise ModelError(f"acoustic runner: expected 4 controls (speed, pitch, pitch_range, energy), got {c.shape[0]}")
        with torch.inference_mode():
            t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
            ctrl = [torch.tensor([float(v)], dtype=torch.float32) for v in c]
            mel, dur = self.fn(t_ids, *ctrl)
        return mel.float().numpy(), dur.to(torch.int64).numpy()


class TorchVocoder:
    """Vocoder runner around any callable `mel (B, L, n_mels) -> wav (B, L·hop)` (or (B, 1, L·hop))."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        """mel (B, L, n_mels) float32 → waveform (B, L·hop) float32."""
        import torch

        with torch.inference_mode():
            wav = self.fn(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)))
        wav = wav.float().numpy()
        return wav.reshape(wav.shape[0], -1)


def _runner(name: str, fn: Any) -> TorchAcoustic | TorchVocoder:
    return TorchAcoustic(fn) if name == "acoustic" else TorchVocoder(fn)


def load_component(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torch": eager modules built by the family loader from the folder's weights + config.json."""
    _set_threads(options)
    modules = load_torch_modules(manifest, Path(root))
    return _runner(name, modules[name])


def load_torchscript(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torchscript": a `torch.jit.save`d module (traced or scripted), frozen for inference."""
    import torch

    _set_threads(options)
    path = Path(root) / manifest.components[name].file
    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
    except (RuntimeError, OSError, ValueError) as e:
        raise ModelError(f"{path.name}: torch.jit.load cannot read it ({str(e).splitlines()[0][:200]})") from None
    return _runner(name, module)


def load_torch_export(manifest: Manifest, name: str, root: Path, options: Any) -> TorchAcoustic | TorchVocoder:
    """Format "torch-export": a `torch.export.save`d ExportedProgram (.pt2) run through `.module()`."""
    import torch

    _set_threads(options)
    path = Path(root) / manifest.components[name].file
    try:
        program = torch.export.load(str(path))
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise ModelError(f"{path.name}: torch.export.load cannot read it ({str(e).splitlines()[0][:200]})") from None
    return _runner(name, program.module())
