"""ONNX Runtime's INT8 quantizers applied to one graph file: dynamic, and static QDQ from a calibration table.

The lowest layer of the quantize stage: `speedy.stages.int8` (every component for one recipe),
`speedy.stages.int8_graphs` (a host loop's graphs), the mixed recipe's search (`speedy.stages.mixed`) and
prune's sensitivity scan all call these, and they import no other stage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speedy.artifacts import Component, sha256_file
from speedy.calibration import CalibrationReader
from speedy.errors import ModelError
from speedy.noise import library_stdout

if TYPE_CHECKING:
    from speedy.stages.quantize import QuantRecipe


def calibration_cache(tmp: Path, name: str) -> Path:
    """Where component `name`'s calibration table lives in the stage's temporary folder `tmp` (written by the
    first `static_int8` call, reused by every later one, e.g. the mixed recipe's trials)."""
    return tmp / f"{name}.calib.json"


def scoped_nodes(model_path: Path, ops: Sequence[str], scopes: Sequence[str] | None) -> list[str] | None:
    """Names of the `ops` nodes under any of the `scopes` prefixes (None = no restriction)."""
    if not scopes:
        return None
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ops and n.name.startswith(tuple(scopes))]


def dynamic_int8(src: Path, dst: Path, ops: tuple[str, ...], recipe: QuantRecipe, scopes: Sequence[str] | None) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=list(ops),
        per_channel=recipe.per_channel,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=scoped_nodes(src, ops, scopes),
    )


def unshare_initializers(src: Path, dst: Path) -> bool:
    """Give every Conv/ConvTranspose its own copy of an initializer it shares with another node.

    MB-MelGAN's shortcut and second 1×1 conv share one bias tensor (the TFLite graph did, so the
    exporter kept one initializer). ORT's QDQ quantizer then cannot quantize that bias, leaves those
    convs as DequantizeLinear → float Conv, and the graph pays Q/DQ without the QLinearConv kernel.
    Returns False (and writes nothing) when no initializer is shared.
    """
    import onnx

    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in inits:
                users[name] = users.get(name, 0) + 1
    changed = False
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        for k, name in enumerate(node.input):
            if name in inits and users[name] > 1:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name.strip('/').replace('/', '_')}_{k}"
                model.graph.initializer.append(copy)
                node.input[k] = copy.name
                users[name] -= 1
                changed = True
    if changed:
        onnx.save(model, str(dst))
    return changed


def static_int8(
    src: Path,
    dst: Path,
    ops: tuple[str, ...],
    recipe: QuantRecipe,
    reader: CalibrationReader | None,
    cache: Path,
    exclude: Sequence[str],
    scopes: Sequence[str] | None = None,
) -> None:
    """Static QDQ quantization; the first call calibrates and writes `cache`, later calls reuse it."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType
    from onnxruntime.quantization import quantize_static as _quantize_static

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[recipe.calibration]
    unshared = cache.with_name(cache.name + ".unshared.onnx")
    if unshared.exists() or unshare_initializers(src, unshared):
        src = unshared
    try:
        # ORT's calibrators print progress to stdout: shown on stderr with -v (stdout is the --json object's)
        with library_stdout():
            _quantize_static(
                str(src),
                str(dst),
                calibration_data_reader=reader if not cache.exists() else None,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(ops),
                per_channel=recipe.per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude),
                nodes_to_quantize=scoped_nodes(src, ops, scopes),
                calibrate_method=method,
                calibration_cache_path=str(cache),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibStridedMinMax": 1},
            )
    except (ValueError, RuntimeError) as e:
        raise ModelError(f"quantize: ONNX Runtime failed on {src.name}: {str(e).splitlines()[0][:300]}") from e


def quantize_graph(
    name: str,
    root: Path,
    staging: Path,
    comp: Component,
    ops: tuple[str, ...],
    recipe: QuantRecipe,
    scopes: Sequence[str] | None,
    feeds: list[dict[str, np.ndarray]] | None,
    cache: Path,
    say: Callable[[str], None],
) -> None:
    """Write `comp`'s graph from `root` to `staging` with its `ops` INT8: dynamically for int8-dynamic (no
    data), else statically, calibrated on `feeds` (the graph's input dicts; `cache`: the calibration table)."""
    if recipe.name == "int8-dynamic":
        say(f"quantizing {name} (dynamic INT8: {', '.join(ops)})")
        dynamic_int8(root / comp.file, staging / comp.file, ops, recipe, scopes)
        return
    if feeds is None:
        raise ModelError(f"quantize: no calibration inputs were recorded for {name}")
    say(f"calibrating {name} ({recipe.calibration}, {len(feeds)} inputs) and quantizing {', '.join(ops)}")
    static_int8(
        root / comp.file,
        staging / comp.file,
        ops,
        recipe,
        CalibrationReader(feeds, f"calibrating {name}"),
        cache,
        (),
        scopes,
    )


def quantized_component(comp: Component, precision: str, staging: Path, ops: Sequence[str]) -> Component:
    """`comp` as written to `staging`: its precision, new checksum and the op types made INT8."""
    return replace(
        comp,
        precision=precision,
        sha256=sha256_file(staging / comp.file),
        extra={**dict(comp.extra), "op_types": list(ops)},
    )
