"""Torch-family runtime backends: eager torch ("torch"), TorchScript ("torchscript") and torch.export
programs ("torch-export").

Every runner follows the protocols in `speedy.runtime`: numpy in, numpy out. The acoustic runner takes
ids (1, T) int64 and controls float32[4] = (speed ×, pitch semitones, pitch_range ×, energy ×) and returns
mel (1, L, n_mels) float32 and durations (1, T) int64; the vocoder runner takes mel (B, L, n_mels) float32
and returns a waveform (B, L·hop) float32. Runners run under `torch.inference_mode()`.

torch is imported inside functions only: importing this module costs nothing on the ONNX path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.errors import ModelError
from speedy.runtime.receptive import torch_width

_LOGGER = logging.getLogger(__name__)

#: Smallest token count the exported acoustic program takes. Padding a shorter input with id 0 is NOT
#: transparent (the variance predictors' second conv sees the pad position), so the bound is 1.
MIN_TOKENS = 1


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
            raise ModelError(
                f"acoustic runner: expected 4 controls (speed, pitch, pitch_range, energy), got {c.shape[0]}"
            )
        t_ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        ctrl = [torch.tensor([float(v)], dtype=torch.float32) for v in c]
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
    if not taken >= {"acoustic", "vocoder"}:
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


# ---- compile --backend torch: torch.export programs -------------------------------------------------

PT2_SUFFIX = ".pt2"


@contextlib.contextmanager
def _export_friendly_length_regulator(module: Any, max_frames: int) -> Iterator[bool]:
    """Swap the family module's `length_regulate` for one that tells torch.export the frame count's bounds.

    The eager length regulator makes L = Σ durations with `torch.arange(total)`: an unbacked symbol
    that export cannot prove non-zero when reshaping, so it refuses ("Could not guard on data-dependent
    expression Ne(u0, 0)"). The replacement computes the same frames and adds `torch._check`s
    1 <= L <= max_frames, which the saved program keeps as run-time asserts. Yields whether it swapped.
    """
    import sys

    import torch

    mod = sys.modules.get(type(module).__module__)
    original = getattr(mod, "length_regulate", None)
    if mod is None or original is None:
        yield False
        return
    attrs = vars(mod)  # the module's namespace (a module's attributes are not declared to mypy)

    def length_regulate(h: Any, durations: Any) -> Any:
        cum = torch.cumsum(durations[0], dim=0)
        total = cum[-1].item()
        torch._check(total >= 1)
        torch._check(total <= max_frames)
        frames = torch.arange(total, device=h.device, dtype=cum.dtype)
        index = (frames.unsqueeze(1) >= cum.unsqueeze(0)).sum(dim=1)
        return h[0].index_select(0, index).unsqueeze(0)

    attrs["length_regulate"] = length_regulate
    try:
        yield True
    finally:
        attrs["length_regulate"] = original


def export_program(
    module: Any, name: str, example: tuple, max_seq_len: int, max_frames: int, min_frames: int
) -> tuple[Any, bool]:
    """`torch.export.export` of one component with dynamic tokens (acoustic) or frames (vocoder).

    Returns (ExportedProgram, whether the length regulator was swapped for its export-friendly twin).
    Raises ModelError with the exporter's first line when the component cannot be exported.
    """
    import torch
    from torch.export import Dim

    if name == "acoustic":
        dyn: tuple = ({1: Dim("tokens", min=MIN_TOKENS, max=max_seq_len)}, None, None, None, None)
    else:
        dyn = ({1: Dim("frames", min=max(2, min_frames), max=max_frames)},)
    try:
        with _export_friendly_length_regulator(module, max_frames) as swapped:
            program = torch.export.export(module, example, dynamic_shapes=dyn, strict=False)
        return program, swapped
    except Exception as e:  # export raises many internal types; one line says which component and why
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise ModelError(f"compile: torch.export failed for {name}: {first[:300]}") from e


def compile_torch_export(
    src: Manifest, source: Path, staging: Path, config: Any, checks: Any, say: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write `<name>.pt2` per component; a component that cannot be exported stays "torch" with the reason.

    Returns (components, notes per component).
    """
    import torch

    from speedy.stages.compile import replace_component

    if config.threads:
        torch.set_num_threads(int(config.threads))
    modules = load_torch_modules(src, source)
    examples = _export_examples(src, checks)
    comps: dict[str, Any] = {}
    notes: dict[str, Any] = {}
    for name in ("acoustic", "vocoder"):
        comp = src.components[name]
        say(f"{name}: torch.export with dynamic {'tokens' if name == 'acoustic' else 'frames'}")
        try:
            program, swapped = export_program(
                modules[name], name, examples[name], config.max_seq_len, config.max_frames, src.audio.min_vocoder_frames
            )
        except ModelError as e:
            _LOGGER.warning("%s; keeping it as eager torch", e)
            keep_torch_files(source, staging, src)
            comps[name] = comp
            notes[name] = {"format": "torch", "reason": str(e)}
            continue
        path = staging / f"{name}{PT2_SUFFIX}"
        torch.export.save(program, str(path))
        bounds = (
            {"min_tokens": MIN_TOKENS, "max_tokens": config.max_seq_len, "max_frames": config.max_frames}
            if name == "acoustic"
            else {"min_frames": max(2, src.audio.min_vocoder_frames), "max_frames": config.max_frames, "batch": 1}
        )
        comps[name] = replace_component(comp, path, "torch-export", **bounds)
        notes[name] = {"format": "torch-export", **bounds, "torch": torch.__version__}
        if swapped:
            notes[name]["length_regulator"] = (
                "exported through a twin with torch._check(1 <= frames <= "
                "max_frames): the eager one's frame count is unbacked"
            )
    return comps, notes


def _export_examples(src: Manifest, checks: Any) -> dict[str, tuple]:
    """Example inputs for export: distinct tensors per input (aliased inputs would be baked in as one)."""
    import torch

    from speedy.stages.parity import check_ids

    ids = torch.from_numpy(check_ids(src)[0])
    frames = max(16, src.audio.min_vocoder_frames + 6)
    mel = torch.from_numpy(checks.vocoder[0][0]) if checks is not None else torch.randn(1, frames, src.audio.n_mels)
    controls = tuple(torch.tensor([v], dtype=torch.float32) for v in (1.0, 0.0, 1.0, 1.0))
    return {"acoustic": (ids, *controls), "vocoder": (mel,)}


def keep_torch_files(source: Path, staging: Path, src: Manifest) -> None:
    """Link (or copy) the torch artifact's files into `staging` so that a "torch" component still loads."""
    import shutil

    for f in Path(source).iterdir():
        if f.is_file() and f.name != "manifest.json" and not (staging / f.name).exists():
            try:
                os.link(f, staging / f.name)
            except OSError:
                shutil.copyfile(f, staging / f.name)
