"""A vocoder's receptive field in mel frames, read from its graph (ONNX) or its layers (torch).

Chunked vocoding (`speedy.synth.vocode_chunks`) is exact only if every chunk sees all the mel frames
that its output samples depend on. That reach is the receptive field: for a chain of 1-D convolutions,

    width = Σ over convs of (kernel − 1) · dilation / rate

where `rate` is the conv's samples per mel frame at its input (1 before the first upsampling; × stride
after each transposed conv; ÷ stride after a strided conv). A transposed conv (kernel k, stride s)
spreads one input sample over k outputs, so an output depends on (k − 1)/s inputs: (k − 1)/rate_out.
For the default voice's MB-MelGAN (pre conv 7; three transposed convs ×3/×5/×5, each followed by four
residual convs of kernel 3 and dilations 1, 3, 9, 27; post conv 7; PQMF ×4 zero insertion and a 63-tap
filter) this is 6 + 5/3 + 80/3 + 9/15 + 80/15 + 9/75 + 80/75 + 6/75 + 3/300 + 62/300 ≈ 41.8 frames.

The convs of MelGAN and HiFi-GAN style vocoders are centred ("same" padding), so an output sample
reaches half the width on each side; `context_frames` adds one frame for the sub-frame offsets of
"SAME" transposed-conv crops. Parallel branches (residual shortcuts, HiFi-GAN's multi-receptive-field
blocks) take the widest branch in the ONNX walk. Imports no torch, and not the `onnx` package either: the
graph is parsed with protobuf (a dependency of onnxruntime) through a descriptor of the few ONNX fields
the walk reads, because `import onnx` alone costs ~9 MB of resident memory in every serving process.
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn as torch_nn

_LOGGER = logging.getLogger(__name__)

#: ops whose data input is input 0 and whose attributes are kernel_shape / dilations / strides
#: (FusedConv: onnxruntime's conv + activation, in graphs that `speedy compile` optimised offline)
_CONV = {"Conv", "ConvInteger", "QLinearConv", "FusedConv"}
_CONV_T = {"ConvTranspose"}
#: ops whose outputs describe shapes, not signals: they must not carry a width into Reshape/Pad
_SHAPE_OPS = {"Shape", "Size", "ConstantOfShape"}


def conv_width(kernel: int, dilation: int, stride: int, rate: float, transposed: bool) -> tuple[float, float]:
    """One conv's contribution (mel frames) and the rate (samples per frame) after it."""
    if transposed:
        out_rate = rate * stride
        return (kernel - 1) * dilation / out_rate, out_rate
    return (kernel - 1) * dilation / rate, rate / stride


def context_frames(width: float) -> int:
    """Mel frames of context to give a chunk on each side: half the centred width, plus one."""
    return int(math.ceil(width / 2.0)) + 1


def onnx_width(path: Path) -> float | None:
    """Receptive-field width (mel frames) of the ONNX vocoder at `path`; None if it cannot be read.

    Walks the graph in topological order from the first graph input (mel, time on axis 1), tracking
    (rate, width) per tensor; element-wise and layout ops keep the widest input's values.
    """
    try:
        graph = _graph_class().FromString(path.read_bytes()).graph
    except ImportError:
        _LOGGER.info("protobuf is not installed: vocoding whole sentences (no chunked streaming)")
        return None
    except Exception as e:  # protobuf's DecodeError, or an unreadable file
        _LOGGER.warning("%s: cannot read the graph for its receptive field (%s)", path.name, e)
        return None
    inits = {i.name for i in graph.initializer}
    first = next((i.name for i in graph.input if i.name not in inits), None)
    state: dict[str, tuple[float, float]] = {first: (1.0, 0.0)} if first else {}
    for node in _topological(graph, inits):
        known = [state[i] for i in node.input if i in state]
        if not known or node.op_type in _SHAPE_OPS:
            continue
        rate = max(r for r, _ in known)
        width = max(w for _, w in known)
        if node.op_type in _CONV | _CONV_T:
            a = {x.name: list(x.ints) or [x.i] for x in node.attribute}
            kernel = int(a.get("kernel_shape", [1])[-1])
            dilation = int(a.get("dilations", [1])[-1])
            stride = int(a.get("strides", [1])[-1])
            extra, rate = conv_width(kernel, dilation, stride, rate, node.op_type in _CONV_T)
            width += extra
        for out in node.output:
            state[out] = (rate, width)
    widths = [state[o.name][1] for o in graph.output if o.name in state]
    return max(widths) if widths else None


def _topological(graph: Any, inits: set[str]) -> list[Any]:
    """The graph's nodes, producers before consumers (converters such as float16 append Casts at the end)."""
    ready = set(inits) | {i.name for i in graph.input} | {""}
    pending, out = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                out.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: keep the file's order for the rest
            return out + rest
        pending = rest
    return out


#: (message, [(field, number, repeated, type)]) — the subset of onnx.proto (field numbers as there) that
#: onnx_width reads; every other field is skipped by the parser
_ONNX_SUBSET = (
    ("AttributeProto", [("name", 1, False, "string"), ("i", 3, False, "int64"), ("ints", 8, True, "int64")]),
    (
        "NodeProto",
        [
            ("input", 1, True, "string"),
            ("output", 2, True, "string"),
            ("op_type", 4, False, "string"),
            ("attribute", 5, True, "AttributeProto"),
        ],
    ),
    ("ValueInfoProto", [("name", 1, False, "string")]),
    ("TensorProto", [("name", 8, False, "string")]),
    (
        "GraphProto",
        [
            ("node", 1, True, "NodeProto"),
            ("initializer", 5, True, "TensorProto"),
            ("input", 11, True, "ValueInfoProto"),
            ("output", 12, True, "ValueInfoProto"),
        ],
    ),
    ("ModelProto", [("graph", 7, False, "GraphProto")]),
)


@lru_cache(maxsize=1)
def _graph_class() -> Any:
    """The protobuf message class of ModelProto restricted to _ONNX_SUBSET (built once)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fd = descriptor_pb2.FileDescriptorProto(
        name="speedy_onnx_subset.proto", package="speedy_onnx_subset", syntax="proto2"
    )
    f = descriptor_pb2.FieldDescriptorProto
    scalar = {"string": f.TYPE_STRING, "int64": f.TYPE_INT64}
    for name, fields in _ONNX_SUBSET:
        msg = fd.message_type.add(name=name)
        for field, number, repeated, kind in fields:
            label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
            if kind in scalar:
                msg.field.add(name=field, number=number, label=label, type=scalar[kind])
            else:
                msg.field.add(
                    name=field, number=number, label=label, type=f.TYPE_MESSAGE, type_name=f".speedy_onnx_subset.{kind}"
                )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("speedy_onnx_subset.ModelProto"))


def torch_width(module: torch_nn.Module, n_mels: int) -> float | None:
    """Receptive-field width (mel frames) of a torch vocoder, from two forward passes with hooks.

    Every Conv1d / ConvTranspose1d called is counted in call order; its input rate is the growth of its
    input length between a 32- and a 48-frame pass ÷ 16 (padding cancels out). Parallel branches are
    summed, which can only over-estimate. Torch backend only.
    """
    import torch
    from torch import nn

    lengths: list[list[int]] = [[], []]
    convs = [m for m in module.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]
    calls: list[nn.Module] = []
    handles = []
    for run, frames in enumerate((32, 48)):

        def hook(mod: nn.Module, args: tuple, run: int = run) -> None:
            lengths[run].append(int(args[0].shape[-1]))
            if run == 0:
                calls.append(mod)

        handles = [m.register_forward_pre_hook(hook) for m in convs]
        try:
            with torch.inference_mode():
                module(torch.zeros(1, frames, n_mels))
        except Exception as e:  # a module that cannot take this input: no chunking, not a failure
            _LOGGER.warning("cannot measure the vocoder's receptive field (%s)", e)
            return None
        finally:
            for h in handles:
                h.remove()
    width = 0.0
    for mod, a, b in zip(calls, *lengths, strict=True):
        transposed = isinstance(mod, nn.ConvTranspose1d)
        width += conv_width(mod.kernel_size[0], mod.dilation[0], mod.stride[0], (b - a) / 16, transposed)[0]
    return width if calls else None
