"""Export stage: a torch artifact → an ONNX artifact (dynamic text length and frames, controls as inputs).

Each family declares its graph contract in `speedy.families.graph_spec`; after export, ONNX Runtime is run
against PyTorch on real sentences and any output out of tolerance raises `ExportParityError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speedy.artifacts import (
    Component,
    Manifest,
    atomic_artifact,
    lineage_step,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.calibration import snr_db
from speedy.errors import InputError, ModelError
from speedy.families.graph_spec import OPSET, GraphSpec
from speedy.stages.parity import ParityError, ParityFigure, family_spec

_LOGGER = logging.getLogger(__name__)

#: Short real sentences for the parity check (spoken by the real frontend).
CHECK_SENTENCES = ("今天天气很好。", "我们一起去公园散步吧！", "请在三点以前把报告发给我。")


class ExportParityError(ParityError):
    """ONNX Runtime disagrees with PyTorch beyond the family's tolerance (names output and difference)."""


@dataclass(frozen=True)
class ExportConfig:
    """Options of the export stage. `sentences` feed the parity check; `opset` is pinned by default."""

    opset: int = OPSET
    sentences: tuple[str, ...] = CHECK_SENTENCES
    check: bool = True
    threads: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 13 <= self.opset <= 21:
            raise InputError(f"--opset must be in [13, 21], got {self.opset}")


def export(
    source: Path | None,
    out: Path,
    config: ExportConfig = ExportConfig(),
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Export the torch artifact at `source` (None = the embedded default voice) to ONNX in `out`.

    Returns the written manifest; its `extra["parity"]` lists the ONNX-vs-PyTorch figures.
    """
    from speedy.runtime.torch_backend import load_torch_modules

    say = progress or (lambda m: _LOGGER.info(m))
    if source is None:
        from speedy.families import default_family

        source = default_family().hook("torch_artifact")(progress=progress)
    src = read_manifest(source)
    if any(c.format != "torch" for c in src.components.values()):
        raise InputError(
            f"export: {source} is not a torch artifact (formats: "
            f"{', '.join(c.format for c in src.components.values())}); export takes a torch artifact"
        )
    spec = family_spec(src, "export")
    modules = load_torch_modules(src, Path(source))
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        comps: dict[str, Component] = {}
        examples = _examples(src, modules, config.sentences)
        for name in ("acoustic", "vocoder"):
            say(f"exporting {name} to ONNX (opset {config.opset})")
            path = staging / f"{name}.onnx"
            _export_one(modules[name], examples[name][0], spec.component(name), path, config.opset)
            _add_metadata(path, src, name)
            comps[name] = Component(
                file=path.name,
                format="onnx",
                precision="fp32",
                inputs=spec.component(name).inputs,
                outputs=spec.component(name).outputs,
                sha256=sha256_file(path),
                dynamic_axes={
                    k: {str(a): n for a, n in v.items()} for k, v in spec.component(name).dynamic_axes.items()
                },
                extra={"opset": config.opset},
            )
        figures: list[ParityFigure] = []
        if config.check:
            say("checking ONNX Runtime against PyTorch on real sentences")
            for name in ("acoustic", "vocoder"):
                figures += check_parity(
                    staging / f"{name}.onnx", name, spec.component(name), examples[name], config.threads
                )
        step = lineage_step(
            "export",
            {"opset": config.opset, "source": str(source), "check": config.check},
            time.perf_counter() - start,
            "torch",
            "onnx",
            "onnxruntime",
        )
        manifest = src.with_step(
            step,
            components=comps,
            extra={
                **dict(src.extra),
                "parity": [f.__dict__ for f in figures],
                "exported_from": {n: c.sha256 for n, c in src.components.items()},
            },
        )
        write_manifest(staging, manifest)
    return manifest


def _examples(manifest: Manifest, modules: dict, sentences: Sequence[str]) -> dict[str, list]:
    """Real inputs and PyTorch outputs per component: [(inputs tuple, outputs tuple), ...]."""
    import torch

    from speedy.frontend import text_to_utterances

    table = {s: i for i, s in enumerate(manifest.frontend.symbols)}
    out: dict[str, list] = {"acoustic": [], "vocoder": []}
    one = torch.ones(1)
    with torch.inference_mode():
        for text in sentences:
            for utt in text_to_utterances(text):
                ids = torch.tensor([[table[p] for p in utt.phones]], dtype=torch.long)
                controls = (one, torch.zeros(1), one, one)
                mel, dur = modules["acoustic"](ids, *controls)
                out["acoustic"].append(((ids, *controls), (mel, dur)))
                wav = modules["vocoder"](mel)
                out["vocoder"].append(((mel,), (wav,)))
    if not out["acoustic"]:
        raise ModelError("export: the check sentences produced no utterances")
    return out


def _export_one(module, example: tuple, spec: GraphSpec, path: Path, opset: int) -> None:
    import torch

    inputs, _ = example
    try:
        torch.onnx.export(
            module,
            inputs,
            str(path),
            input_names=list(spec.inputs),
            output_names=list(spec.outputs),
            dynamic_axes=spec.dynamic_axes,
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    except Exception as e:  # the exporter raises many types; one line names the component
        raise ModelError(f"export: torch.onnx.export failed for {path.stem}: {str(e).splitlines()[0][:300]}") from e


def _add_metadata(path: Path, manifest: Manifest, name: str) -> None:
    """Key audio facts into the ONNX file's metadata_props (sherpa-onnx's habit)."""
    import onnx

    model = onnx.load(str(path))
    facts = {
        "family": manifest.family,
        "component": name,
        "sample_rate": manifest.audio.sample_rate,
        "hop_size": manifest.audio.hop_size,
        "n_mels": manifest.audio.n_mels,
        "mel_normalization": manifest.audio.mel_normalization,
        "producer": "openspeedy",
    }
    del model.metadata_props[:]
    for k, v in facts.items():
        model.metadata_props.add(key=k, value=str(v))
    onnx.save(model, str(path))


def check_parity(path: Path, name: str, spec: GraphSpec, examples: list, threads: int | None) -> list[ParityFigure]:
    """Run the ONNX file on each example and compare with PyTorch per `spec.checks`; raise on failure."""
    from speedy.runtime.onnx_backend import make_session

    sess = make_session(path, threads)
    worst: dict[str, float] = {}
    for inputs, ref_outputs in examples:
        feed = {n: t.numpy() for n, t in zip(spec.inputs, inputs)}
        got = dict(zip(spec.outputs, sess.run(list(spec.outputs), feed)))
        ref = dict(zip(spec.outputs, (t.numpy() for t in ref_outputs)))
        for chk in spec.checks:
            a, b = ref[chk.name], got[chk.name]
            if a.shape != b.shape:
                raise ExportParityError(f"export: {name}.{chk.name} shape {b.shape} ≠ PyTorch {a.shape}")
            if chk.kind == "exact":
                v = float(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
                if v != 0:
                    raise ExportParityError(f"export: {name}.{chk.name} differs from PyTorch (max |Δ| {v:g})")
            elif chk.kind == "max_abs":
                v = float(np.abs(a - b).max())
                if v > chk.tol:
                    raise ExportParityError(f"export: {name}.{chk.name} max |Δ| {v:.3g} > tolerance {chk.tol:g}")
            else:
                v = snr_db(a, b)
                if v < chk.tol:
                    raise ExportParityError(f"export: {name}.{chk.name} SNR {v:.1f} dB < {chk.tol:g} dB")
            prev = worst.get(chk.name)
            worst[chk.name] = v if prev is None else (min(prev, v) if chk.kind == "snr_db" else max(prev, v))
    return [ParityFigure(name, c.name, c.kind, worst[c.name], c.tol) for c in spec.checks]
