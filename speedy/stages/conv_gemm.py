"""Graph rewrite: 1-D convolutions as one MatMul over k shifted copies of the frames ("unfold + GEMM").

Why: on x86 CPUs ONNX Runtime's INT8 GEMM (MatMulInteger / DynamicQuantizeMatMul) runs the AVX-512
VNNI kernels, while its INT8 convolutions (ConvInteger, QLinearConv on 1-D inputs) gain little over
FP32 (measured in `../shared/notes/cpu-speed.md`: one FFN-shaped layer 2.2–3.4× faster as an INT8
MatMul, 1.15× as ConvInteger). ONNX Runtime's own quantizer cannot do this rewrite, so it is done
here, before `quantize_dynamic`.

For a Conv with input X [B, C, T], weight W [O, C, k], dilation d, pads (p0, p1), stride 1, group 1:

    Xt = Transpose(X) [B, T, C] → Pad along T → k Slices, slice j starting at j·d → Concat on channels
    U [B, T', k·C] → MatMul with W' [k·C, O] (W'[j·C + c, o] = W[o, c, j]) → + bias → Transpose [B, O, T']

which is the same arithmetic in another order. The outer Transposes cancel against the ones the
exporter put around the FFN convolutions (the FFT blocks work in [B, T, C]); ONNX Runtime's transpose
optimiser removes the pairs at load time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_INT64_MAX = np.iinfo(np.int64).max


def _attrs(node) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def convertible(node, inits: dict) -> bool:
    """A 1-D, stride-1, group-1 Conv whose weight is an initializer."""
    if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
        return False
    a = _attrs(node)
    w = inits[node.input[1]]
    return (
        len(w.dims) == 3
        and int(a.get("group", 1)) == 1
        and list(a.get("strides", [1])) == [1]
        and a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    )


def rewrite_convs(
    src: Path, dst: Path, node_names: Sequence[str] | None = None, smooth: Mapping[str, np.ndarray] | None = None
) -> list[str]:
    """Write `src` with every convertible Conv (or only those in `node_names`) as unfold + MatMul.

    `smooth`: per Conv name, a positive scale s (C,) per input channel (SmoothQuant): the frames are
    divided by s and the weight rows multiplied by it, which leaves the FP32 result unchanged but evens
    out the channels' ranges before the activations are quantized with one scale per tensor.

    Returns the names of the new MatMul nodes (`<conv name>/gemm`), which a caller hands to the
    quantizer as `nodes_to_quantize`. Numerically the FP32 output is the same up to summation order.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    wanted = set(node_names) if node_names is not None else None
    new_nodes, new_inits, gemms = [], [], []
    for node in graph.node:
        if not convertible(node, inits) or (wanted is not None and node.name not in wanted):
            new_nodes.append(node)
            continue
        a = _attrs(node)
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        o, c, k = w.shape
        d = int(list(a.get("dilations", [1]))[0])
        p0, p1 = (list(a.get("pads", [0, 0])) + [0, 0])[:2]
        base = node.name or node.output[0]
        n = lambda s: f"{base}/{s}"  # noqa: E731, B023 - short local name maker, used in this iteration
        nodes = [helper.make_node("Transpose", [node.input[0]], [n("xt")], perm=[0, 2, 1], name=n("to_ntc"))]
        x = n("xt")
        if smooth is not None and node.name in smooth:
            scale = np.asarray(smooth[node.name], np.float32).reshape(c)
            w = w * scale[None, :, None]
            new_inits.append(numpy_helper.from_array((1.0 / scale).astype(np.float32), n("inv_scale")))
            nodes.append(helper.make_node("Mul", [x, n("inv_scale")], [n("xs")], name=n("smooth")))
            x = n("xs")
        if p0 or p1:
            new_inits.append(numpy_helper.from_array(np.array([0, p0, 0, 0, p1, 0], np.int64), n("pads")))
            nodes.append(helper.make_node("Pad", [x, n("pads")], [n("xp")], mode="constant", name=n("pad")))
            x = n("xp")
        if k > 1:
            parts = []
            new_inits.append(numpy_helper.from_array(np.array([1], np.int64), n("axis")))
            for j in range(k):
                end = -d * (k - 1 - j) if j < k - 1 else _INT64_MAX
                new_inits.append(numpy_helper.from_array(np.array([j * d], np.int64), n(f"s{j}")))
                new_inits.append(numpy_helper.from_array(np.array([end], np.int64), n(f"e{j}")))
                nodes.append(
                    helper.make_node("Slice", [x, n(f"s{j}"), n(f"e{j}"), n("axis")], [n(f"x{j}")], name=n(f"slice{j}"))
                )
                parts.append(n(f"x{j}"))
            nodes.append(helper.make_node("Concat", parts, [n("unfold")], axis=2, name=n("unfold")))
            x = n("unfold")
        wm = np.ascontiguousarray(w.transpose(2, 1, 0).reshape(k * c, o))
        new_inits.append(numpy_helper.from_array(wm, n("weight")))
        nodes.append(helper.make_node("MatMul", [x, n("weight")], [n("y")], name=n("gemm")))
        gemms.append(n("gemm"))
        y = n("y")
        if len(node.input) > 2 and node.input[2]:
            nodes.append(helper.make_node("Add", [y, node.input[2]], [n("yb")], name=n("bias")))
            y = n("yb")
        nodes.append(helper.make_node("Transpose", [y], [node.output[0]], perm=[0, 2, 1], name=n("to_nct")))
        new_nodes.extend(nodes)
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    # Drop conv weights no node reads any more (keeps the file the size of the model, not twice it).
    used = {i for nd in graph.node for i in nd.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    onnx.save(model, str(dst))
    return gemms


def channel_ranges(
    model_path: Path, node_names: Sequence[str], feeds: Sequence[Mapping[str, np.ndarray]], threads: int | None = None
) -> dict[str, np.ndarray]:
    """max |x| per input channel (C,) of each named Conv's input [B, C, T] over the calibration `feeds`."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(model_path))
    by_name = {nd.name: nd for nd in model.graph.node}
    tensors = {name: by_name[name].input[0] for name in node_names}
    known = {o.name for o in model.graph.output}
    for t in dict.fromkeys(tensors.values()):
        if t not in known:
            model.graph.output.append(onnx.ValueInfoProto(name=t))
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    wanted = list(dict.fromkeys(tensors.values()))
    peak: dict[str, np.ndarray] = {}
    for feed in feeds:
        for t, value in zip(wanted, sess.run(wanted, dict(feed))):
            m = np.abs(value).max(axis=(0, 2))
            peak[t] = m if t not in peak else np.maximum(peak[t], m)
    return {name: peak[t] for name, t in tensors.items()}


def smoothing_scales(model_path: Path, ranges: Mapping[str, np.ndarray], alpha: float = 0.5) -> dict[str, np.ndarray]:
    """SmoothQuant's s_c = max|x_c|^α / max|w_c|^(1−α) per input channel c (Xiao et al., 2023).

    α = 0.5 splits the range evenly between activations and weights. Channels that never fire keep 1.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_path)).graph
    inits = {i.name: i for i in graph.initializer}
    out = {}
    for node in graph.node:
        if node.name not in ranges:
            continue
        w = np.abs(numpy_helper.to_array(inits[node.input[1]])).max(axis=(0, 2))  # (C,)
        x = np.asarray(ranges[node.name], np.float64)
        s = np.where((x > 0) & (w > 0), x**alpha / np.maximum(w, 1e-8) ** (1 - alpha), 1.0)
        out[node.name] = np.clip(s, 1e-4, 1e4).astype(np.float32)
    return out
