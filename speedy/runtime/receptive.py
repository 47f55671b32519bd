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
blocks) take the widest branch in the ONNX walk. Imports no torch.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

#: ops whose data input is input 0 and whose attributes are kernel_shape / dilations / strides
_CONV = {"Conv", "ConvInteger", "QLinearConv"}
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

    Walks the graph in its (topological) node order from the first graph input (mel, time on axis 1),
    tracking (rate, width) per tensor; element-wise and layout ops keep the widest input's values.
    """
    try:
        import onnx
        from onnx import helper
    except ImportError:
        _LOGGER.info("onnx is not installed: vocoding whole sentences (no chunked streaming)")
        return None
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as e:  # onnx raises DecodeError and friends
        _LOGGER.warning("%s: cannot read the graph for its receptive field (%s)", path.name, e)
        return None
    inits = {i.name for i in graph.initializer}
    first = next((i.name for i in graph.input if i.name not in inits), None)
    state: dict[str, tuple[float, float]] = {first: (1.0, 0.0)} if first else {}
    for node in graph.node:
        known = [state[i] for i in node.input if i in state]
        if not known or node.op_type in _SHAPE_OPS:
            continue
        rate = max(r for r, _ in known)
        width = max(w for _, w in known)
        if node.op_type in _CONV | _CONV_T:
            a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            kernel = int(a.get("kernel_shape", [1])[-1])
            dilation = int(a.get("dilations", [1])[-1])
            stride = int(a.get("strides", [1])[-1])
            extra, rate = conv_width(kernel, dilation, stride, rate, node.op_type in _CONV_T)
            width += extra
        for out in node.output:
            state[out] = (rate, width)
    widths = [state[o.name][1] for o in graph.output if o.name in state]
    return max(widths) if widths else None


def torch_width(module: object, n_mels: int) -> float | None:
    """Receptive-field width (mel frames) of a torch vocoder, from two forward passes with hooks.

    Every Conv1d / ConvTranspose1d called is counted in call order; its input rate is the growth of its
    input length between a 32- and a 48-frame pass ÷ 16 (padding cancels out). Parallel branches are
    summed, which can only over-estimate. Torch backend only.
    """
    import torch
    from torch import nn

    lengths: list[list[int]] = [[], []]
    convs = [m for m in module.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]  # type: ignore[attr-defined]
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
                module(torch.zeros(1, frames, n_mels))  # type: ignore[operator]
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
