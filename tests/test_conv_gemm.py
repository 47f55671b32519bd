"""The unfold + MatMul rewrite of 1-D convolutions (speedy.stages.conv_gemm) on tiny random graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from speedy.stages.conv_gemm import rewrite_convs


def _conv_model(path: Path, c: int, o: int, k: int, dilation: int, pads: tuple[int, int], bias: bool) -> None:
    """Transpose [B, T, C] → Conv → Relu → Transpose back: the shape of an FFT block's FFN."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(o, c, k)).astype(np.float32), "w")]
    conv_in = ["xt", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=o).astype(np.float32), "b"))
        conv_in.append("b")
    nodes = [helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1], name="/pre"),
             helper.make_node("Conv", conv_in, ["y"], name="/ffn/conv1/Conv", dilations=[dilation], pads=list(pads),
                              kernel_shape=[k]),
             helper.make_node("Relu", ["y"], ["r"], name="/relu"),
             helper.make_node("Transpose", ["r"], ["out"], perm=[0, 2, 1], name="/post")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", c])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "T2", o])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("k,dilation,pads,bias", [(3, 1, (1, 1), True), (5, 1, (2, 2), True), (3, 9, (0, 0), False),
                                                  (1, 1, (0, 0), True), (3, 3, (3, 0), True)])
def test_rewrite_matches_conv(tmp_path: Path, k: int, dilation: int, pads: tuple[int, int], bias: bool) -> None:
    """Same output as the Conv (up to float summation order) for kernel sizes, dilations, asymmetric pads,
    with and without bias, on two sequence lengths (the axes stay dynamic); the Conv is gone."""
    _conv_model(tmp_path / "conv.onnx", c=6, o=5, k=k, dilation=dilation, pads=pads, bias=bias)
    gemms = rewrite_convs(tmp_path / "conv.onnx", tmp_path / "gemm.onnx")
    assert gemms == ["/ffn/conv1/Conv/gemm"]
    rewritten = onnx.load(str(tmp_path / "gemm.onnx"))
    onnx.checker.check_model(rewritten)
    assert "Conv" not in {n.op_type for n in rewritten.graph.node}
    assert "w" not in {i.name for i in rewritten.graph.initializer}  # the conv weight is not kept twice
    for t in (40, 97):
        x = np.random.default_rng(t).normal(size=(1, t, 6)).astype(np.float32)
        ref, out = _run(tmp_path / "conv.onnx", x), _run(tmp_path / "gemm.onnx", x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_rewrite_only_named_nodes(tmp_path: Path) -> None:
    """With node names given, other convolutions stay Conv."""
    _conv_model(tmp_path / "conv.onnx", c=4, o=4, k=3, dilation=1, pads=(1, 1), bias=True)
    assert rewrite_convs(tmp_path / "conv.onnx", tmp_path / "gemm.onnx", ["/other"]) == []
    assert "Conv" in {n.op_type for n in onnx.load(str(tmp_path / "gemm.onnx")).graph.node}
