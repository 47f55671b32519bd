"""Dynamic INT8 for a ttskit artifact, per graph (no calibration data).

- ``decoder_step``: its MatMul/Gemm (the two LSTM cells, the projections) as DynamicQuantizeMatMul /
  MatMulInteger with per-channel INT8 weights: the step is weight-bound (≈ 4.7 M weights read per frame).
- ``postnet`` and ``vocoder``: their 1-D convolutions rewritten as unfold + MatMul
  (:func:`speedy.stages.conv_gemm.rewrite_convs`) and those MatMuls quantized the same way, because ONNX
  Runtime's INT8 GEMM is fast on this CPU class and its INT8 convolutions are not
  (``shared/notes/cpu-speed.md``). MelGAN's transposed convolutions stay float.
- ``encoder`` stays float (once per sentence, a few ms).

The autoregressive loop feeds the quantized step its own output, so the stop step may move: the
result is judged by DNSMOS and duration against the FP32 artifact, not by mel parity.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from speedy.artifacts import (
    Component,
    Manifest,
    atomic_artifact,
    lineage_step,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.errors import InputError, ModelError
from speedy.noise import library_stdout

GRAPHS = ("decoder_step", "postnet", "vocoder")
#: What ``speedy quantize --recipe int8-dynamic`` does to a ttskit artifact: the vocoder stays float
#: (INT8 MelGAN measured 0.6× the speed and −1.2 DNSMOS; see README.md).
STAGE_GRAPHS = ("decoder_step", "postnet")


def quantize_components(
    manifest: Manifest,
    src: Path,
    staging: Path,
    tmp: Path,
    graphs: Sequence[str] = STAGE_GRAPHS,
    say: Callable[[str], None] | None = None,
) -> dict[str, Component]:
    """Write every component of ``manifest`` into ``staging``: ``graphs`` in dynamic INT8, others copied.

    Returns the new components (precision ``int8-dynamic`` where quantized), each with
    the session settings their graphs declare (:func:`session_settings`).
    """
    comps = _quantize(manifest, src, staging, tmp, graphs, say)
    return {name: replace(comp, extra={**dict(comp.extra), **session_settings(name)}) for name, comp in comps.items()}


def session_settings(graph: str) -> dict[str, object]:
    """The session settings a ttskit graph declares (speedy.families.ttskit.graphs), recorded in its component's
    ``extra`` by export and quantize alike, so that an INT8 artifact is compared with an FP32 export that runs
    with the same threads."""
    from speedy.families.ttskit.graphs import GRAPHS as DECLARED

    extra = next(g.extra for gs in DECLARED.values() for g in gs if g.name == graph)
    return {k: dict(v) if hasattr(v, "items") else v for k, v in extra.items()}


def _quantize(
    manifest: Manifest,
    src: Path,
    staging: Path,
    tmp: Path,
    graphs: Sequence[str],
    say: Callable[[str], None] | None,
) -> dict[str, Component]:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from speedy.stages.conv_gemm import rewrite_convs

    unknown = [g for g in graphs if g not in GRAPHS]
    if unknown:
        raise InputError(f"ttskit quantize: cannot quantize {', '.join(unknown)} (choose from {', '.join(GRAPHS)})")
    comps = dict(manifest.components)
    for name, comp in manifest.components.items():
        dst = staging / comp.file
        if name not in graphs:
            shutil.copyfile(src / comp.file, dst)
            continue
        if comp.precision != "fp32":
            raise ModelError(f"ttskit quantize: {name} is {comp.precision}; start from the FP32 export")
        if say:
            say(f"quantizing {name} (dynamic INT8)")
        source, nodes = src / comp.file, None
        if name != "decoder_step":
            source = tmp / comp.file
            nodes = rewrite_convs(src / comp.file, source)
        with library_stdout():
            quantize_dynamic(
                str(source),
                str(dst),
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=nodes,
            )
        comps[name] = replace(
            comp,
            precision="int8-dynamic",
            sha256=sha256_file(dst),
            extra={**dict(comp.extra), "op_types": ["MatMul", "Gemm"], "conv_gemm": name != "decoder_step"},
        )
    return comps


def stage_int8(
    manifest: Manifest,
    src: Path,
    staging: Path,
    tmp: Path,
    recipe: Any,
    text: Sequence[str],
    say: Callable[[str], None],
) -> tuple[dict[str, Component], dict[str, object]]:
    """The quantize stage's INT8 for this family (its FamilySpec ``quantize`` hook): ``int8-dynamic`` on
    :data:`STAGE_GRAPHS`; other recipes are refused (no calibration path through the autoregressive loop
    yet, so `text` is unused)."""
    if recipe.name != "int8-dynamic":
        raise InputError(
            f"quantize: recipe {recipe.name} is not supported for ttskit artifacts; "
            "use int8-dynamic (decoder step + postnet) or fp16"
        )
    comps = quantize_components(manifest, src, staging, tmp, STAGE_GRAPHS, say)
    return comps, {"int8_graphs": list(STAGE_GRAPHS), "float_graphs": [n for n in comps if n not in STAGE_GRAPHS]}


def quantize_ttskit(
    src: Path,
    out: Path,
    graphs: Sequence[str] = GRAPHS,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write ``out``: the FP32 ttskit artifact ``src`` with ``graphs`` in dynamic INT8 (others copied)."""
    from speedy.families.ttskit import FAMILY

    manifest = read_manifest(src)
    if manifest.family != FAMILY:
        raise InputError(f"quantize_ttskit: {src} is a {manifest.family} artifact, not {FAMILY}")
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging, tempfile.TemporaryDirectory() as tmp:
        comps = quantize_components(manifest, src, staging, Path(tmp), graphs, progress)
        step = lineage_step(
            "quantize",
            {"recipe": "int8-dynamic", "graphs": list(graphs)},
            time.perf_counter() - start,
            "onnxruntime",
            "onnx",
        )
        write_manifest(staging, manifest.with_step(step, components=comps))
    return out
