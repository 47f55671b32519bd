"""Tiny random-weight ONNX artifacts and a toy frontend for the bench unit tests (no download, no torch).

The acoustic graph looks a symbol up in a (symbols, n_mels) table and repeats it `FRAMES_PER_ID` times
(durations are constant); the vocoder is one (n_mels, hop) matrix and a tanh. Both take the same inputs
and outputs as exported artifacts, so `Synthesizer` and `speedy bench` run them unchanged. The toy
frontend (`text_to_utterances`) maps each character to a symbol and splits after 。！？，.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speedy.artifacts import (Audio, Component, Controls, Frontend, Manifest, Source, atomic_artifact, sha256_file,
                              write_manifest)
from speedy.families import FamilySpec, frozen

FRONTEND = "toy-chars"
MODULE = "bench_fixture"
#: the toy family (and the "other" family of the mismatch test): register it with speedy.families.registered
TOY_FAMILY = FamilySpec(name="toy", families=("toy", "other"), frontends=frozen({FRONTEND: MODULE}))
SYMBOLS = ("pad", "sil", *(f"s{i}" for i in range(30)))
N_MELS = 8
HOP = 400
SAMPLE_RATE = 16000
FRAMES_PER_ID = 3
ACOUSTIC_INPUTS = ("input_ids", "speed", "pitch", "pitch_range", "energy")


@dataclass(frozen=True)
class Utterance:
    """What `Synthesizer.stream` reads from a frontend: the sentence, its symbols and the pause after it (s)."""

    text: str
    phones: tuple[str, ...]
    pause_after: float


def text_to_utterances(text: str, first_chars: int | None = None) -> Iterator[Utterance]:
    """Toy frontend: one symbol per non-space character, sentences split after 。！？，(first_chars unused)."""
    for piece in re.split(r"(?<=[。！？，])", text):
        chars = [c for c in piece if not c.isspace() and c not in "。！？，"]
        if chars:
            body = tuple(SYMBOLS[2 + ord(c) % (len(SYMBOLS) - 2)] for c in chars)
            yield Utterance(piece, ("sil", *body, "sil"), 0.1)


def _acoustic(path: Path, table: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(table, "table"),
             numpy_helper.from_array(np.array([1, -1, 1, N_MELS], np.int64), "shape4"),
             numpy_helper.from_array(np.array([1, 1, FRAMES_PER_ID, 1], np.int64), "reps"),
             numpy_helper.from_array(np.array([1, -1, N_MELS], np.int64), "shape3"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(FRAMES_PER_ID, np.int64), "fpi")]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["g"]),
             helper.make_node("Reshape", ["g", "shape4"], ["g4"]),
             helper.make_node("Tile", ["g4", "reps"], ["t4"]),
             helper.make_node("Reshape", ["t4", "shape3"], ["m"]),
             helper.make_node("Mul", ["m", "energy"], ["mel"]),
             helper.make_node("Mul", ["input_ids", "zero"], ["z"]),
             helper.make_node("Add", ["z", "fpi"], ["durations"])]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ACOUSTIC_INPUTS[1:]]
    outputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, "L", N_MELS]),
               helper.make_tensor_value_info("durations", TensorProto.INT64, [1, "T"])]
    graph = helper.make_graph(nodes, "toy_acoustic", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


def _vocoder(path: Path, weight: np.ndarray) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([1, -1], np.int64), "flat"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes = [helper.make_node("MatMul", ["mel", "w"], ["x"]), helper.make_node("Tanh", ["x"], ["y"]),
             helper.make_node("Mul", ["y", "half"], ["y2"]), helper.make_node("Reshape", ["y2", "flat"], ["wav"])]
    graph = helper.make_graph(nodes, "toy_vocoder",
                              [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, "L", N_MELS])],
                              [helper.make_tensor_value_info("wav", TensorProto.FLOAT, [1, "S"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


def toy_parameters() -> int:
    """Parameters `count_parameters` should find: the table, the vocoder matrix and the 0.5 scalar."""
    return len(SYMBOLS) * N_MELS + N_MELS * HOP + 1


def make_toy_artifact(target: Path, *, precision: str = "fp32", noise: float = 0.0, seed: int = 0,
                      sample_rate: int = SAMPLE_RATE, family: str = "toy") -> Path:
    """Write a toy artifact folder; `noise` perturbs the weights (a stand-in for a quantized copy)."""
    rng = np.random.default_rng(seed)
    table = rng.normal(0, 1, (len(SYMBOLS), N_MELS)).astype(np.float32)
    weight = rng.normal(0, 0.5, (N_MELS, HOP)).astype(np.float32)
    if noise:
        noisy = np.random.default_rng(seed + 1)
        table = table + noisy.normal(0, noise, table.shape).astype(np.float32)
        weight = weight + noisy.normal(0, noise, weight.shape).astype(np.float32)
    with atomic_artifact(target, force=True) as staging:
        _acoustic(staging / "acoustic.onnx", table)
        _vocoder(staging / "vocoder.onnx", weight)
        comps = {
            "acoustic": Component(file="acoustic.onnx", format="onnx", precision=precision, inputs=ACOUSTIC_INPUTS,
                                  outputs=("mel", "durations"), sha256=sha256_file(staging / "acoustic.onnx")),
            "vocoder": Component(file="vocoder.onnx", format="onnx", precision=precision, inputs=("mel",),
                                 outputs=("wav",), sha256=sha256_file(staging / "vocoder.onnx")),
        }
        manifest = Manifest(family=family, source=Source("test", "tests/bench_fixture.py", "0" * 64), components=comps,
                            audio=Audio(sample_rate, HOP, N_MELS, "none", min_vocoder_frames=1),
                            frontend=Frontend(FRONTEND, SYMBOLS),
                            controls=Controls(ACOUSTIC_INPUTS[1:], {"kind": "preset", "names": {}}))
        write_manifest(staging, manifest)
    return target


def toy_reference() -> tuple[Path, bool]:
    """The toy family's FP32 reference (a FamilySpec ``reference`` hook: folder, current): the folder in
    $SPEEDY_TOY_REFERENCE, always current (nothing to export)."""
    import os

    return Path(os.environ["SPEEDY_TOY_REFERENCE"]), True


def register_toy_family() -> None:
    """Register TOY_FAMILY for the rest of this process: the $SPEEDY_BATCH_SETUP hook of batch workers
    (spawned processes and Ray actors are fresh interpreters that did not run the test's fixture)."""
    from speedy.families import lookup, registered

    if lookup("toy") is None:
        _HELD.append(registered(TOY_FAMILY))  # held: a collected generator would unregister on close
        _HELD[-1].__enter__()


_HELD: list = []
