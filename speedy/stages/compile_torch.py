"""`speedy compile --backend torch`: torch.export programs (".pt2") of a torch artifact's components,
run by speedy.runtime.torch_backend ("torch-export"). A component that cannot be exported stays eager
torch, with the reason in the manifest.

torch is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from speedy.artifacts import Manifest, replace_component
from speedy.errors import ModelError
from speedy.runtime.torch_backend import load_torch_modules

_LOGGER = logging.getLogger(__name__)

#: Smallest token count the exported acoustic program takes. Padding a shorter input with id 0 is NOT
#: transparent (the variance predictors' second conv sees the pad position), so the bound is 1.
MIN_TOKENS = 1


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

    from speedy.controls import DEFAULT_CONTROLS
    from speedy.stages.parity import check_ids

    ids = torch.from_numpy(check_ids(src)[0])
    frames = max(16, src.audio.min_vocoder_frames + 6)
    mel = torch.from_numpy(checks.vocoder[0][0]) if checks is not None else torch.randn(1, frames, src.audio.n_mels)
    controls = tuple(torch.tensor([v], dtype=torch.float32) for v in DEFAULT_CONTROLS.values())
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
