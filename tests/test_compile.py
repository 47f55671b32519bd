"""Compile stage: config validation, onnxruntime offline graphs, torch.export programs, TensorRT profiles and refusals."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402

from speedy.artifacts import read_manifest, sha256_file, write_manifest  # noqa: E402
from speedy.controls import DEFAULT_CONTROLS, GraphControls  # noqa: E402
from speedy.errors import InputError, MissingExtraError, ModelError  # noqa: E402
from speedy.runtime import RuntimeOptions, load_runner  # noqa: E402
from speedy.stages.compile import CompileConfig, compile_artifact  # noqa: E402

CONTROLS = DEFAULT_CONTROLS
SLOW_HIGH = GraphControls(speed=0.7, pitch=3.0, pitch_range=1.5, energy=1.3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random voice as torch and ONNX artifacts."""
    root = tmp_path_factory.mktemp("tiny")
    torch_dir = tiny_voice.make_torch_artifact(root / "torch")
    return {"torch": torch_dir, "onnx": tiny_voice.make_onnx_artifact(torch_dir, root / "onnx")}


@pytest.fixture(scope="module")
def ort_compiled(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ONNX artifact compiled for onnxruntime with 1 thread."""
    out = tmp_path_factory.mktemp("ort") / "compiled"
    compile_artifact(tiny["onnx"], out, CompileConfig(threads=1))
    return out


def _runners(folder: Path) -> tuple:
    m = read_manifest(folder)
    opts = RuntimeOptions(threads=1)
    return load_runner(m, "acoustic", folder, opts), load_runner(m, "vocoder", folder, opts)


# ---- config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    ({"backend": "tflite"}, ["--backend", "tflite", "onnxruntime"]),
    ({"precision": "fp16"}, ["--precision fp16", "--backend tensorrt", "speedy quantize"]),
    ({"precision": "bf16"}, ["--precision", "bf16", "fp32"]),
    ({"max_seq_len": 1}, ["--max-seq-len", "1"]),
    ({"max_frames": 8}, ["--max-frames", "8"]),
    ({"threads": 0}, ["--threads", "0"]),
    ({"opt_level": "9"}, ["--opt-level", "'9'", "extended"]),
    ({"backend": "torch", "opt_level": "all"}, ["--opt-level", "torch backend takes no"]),
    ({"backend": "tensorrt", "opt_level": "all"}, ["--opt-level", "0, 1"]),
    ({"backend": "tensorrt", "precision": "int8"}, ["--int8-calib", "fp16"]),
    ({"int8_calib": Path("x")}, ["--int8-calib", "tensorrt --precision int8"]),
])
def test_config_errors_name_option_value_and_fix(kwargs: dict, words: list[str]) -> None:
    """A bad CompileConfig raises InputError (exit 2) naming the option, the value and what to do."""
    with pytest.raises(InputError) as e:
        CompileConfig(**kwargs)
    for w in words:
        assert w in str(e.value)
    assert e.value.exit_code == 2


def test_config_levels_resolve_per_backend() -> None:
    """The effective level is extended for onnxruntime, builder level 3 for tensorrt, recorded in options()."""
    assert CompileConfig().level == "extended"
    assert CompileConfig(backend="tensorrt").level == "3"
    assert CompileConfig(opt_level="all").options()["opt_level"] == "all"


def test_wrong_source_kind_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    """onnxruntime needs an ONNX artifact and torch a torch one; the error says which, and nothing is written."""
    with pytest.raises(InputError, match="takes an ONNX artifact"):
        compile_artifact(tiny["torch"], tmp_path / "o", CompileConfig())
    with pytest.raises(InputError, match="takes a torch artifact"):
        compile_artifact(tiny["onnx"], tmp_path / "o", CompileConfig(backend="torch"))
    assert not (tmp_path / "o").exists()


# ---- onnxruntime ----------------------------------------------------------------------------------

def test_ort_compiled_manifest_records_level_threads_and_lineage(ort_compiled: Path) -> None:
    """Compiled graphs are onnx, load with optimisation disabled, keep threads, and the lineage says how."""
    m = read_manifest(ort_compiled)
    for c in m.components.values():
        assert c.format == "onnx"
        assert c.extra["graph_optimization"] == "disable"
        assert c.extra["offline_optimization"] == "extended"
        assert c.extra["threads"] == 1
    step = m.lineage[-1]
    assert step.stage == "compile"
    assert step.options["backend"] == "onnxruntime" and step.options["opt_level"] == "extended"
    assert step.options["threads"] == 1
    kinds = {(p["component"], p["output"]) for p in m.extra["parity"]}
    assert kinds == {("acoustic", "durations"), ("acoustic", "mel"), ("vocoder", "wav")}


def test_ort_compiled_matches_source_at_new_lengths_and_controls(tiny: dict[str, Path], ort_compiled: Path) -> None:
    """The optimised graphs give the source's durations exactly and its mel/wave within tolerance."""
    src_ac, src_vo = _runners(tiny["onnx"])
    ac, vo = _runners(ort_compiled)
    for n, controls in ((5, CONTROLS), (37, SLOW_HIGH)):
        ids = np.arange(1, n + 1, dtype=np.int64)[None] % len(tiny_voice.SYMBOLS)
        ids[ids == 0] = 1
        mel_a, dur_a = src_ac(ids, controls)
        mel_b, dur_b = ac(ids, controls)
        assert np.array_equal(dur_a, dur_b)
        assert np.abs(mel_a - mel_b).max() < 1e-3
        np.testing.assert_allclose(vo(mel_a), src_vo(mel_a), atol=2 / 128)


def test_ort_transformer_fusions_are_reported(ort_compiled: Path) -> None:
    """The tiny voice's post-LN blocks get LayerNorm fusions that pass parity, and whether they are kept
    follows the recorded timings by the documented rule (the compiled graph cannot tell: ONNX Runtime's
    own extended level makes the same SkipLayerNormalization fusions)."""
    from speedy.stages.compile_ort import KEEP_IF_NOT_SLOWER

    m = read_manifest(ort_compiled)
    note = m.extra["compile"]["acoustic"]["transformer_optimizer"]
    assert note["fusions"].get("SkipLayerNormalization", 0) > 0, note  # the FFT blocks' residual norms
    assert {(p["output"], p["value"] <= p["tol"]) for p in note["parity"]} == {("durations", True), ("mel", True)}
    run = note["run_s"]
    assert run["fused"] > 0 and run["plain"] > 0
    assert note["kept"] is (run["fused"] <= KEEP_IF_NOT_SLOWER * run["plain"]), note
    assert m.components["acoustic"].extra["transformer_fusions"] is note["kept"]
    if not note["kept"]:
        assert note["reason"].startswith("not kept: the fused graph ran slower"), note


def test_onnx_backend_rejects_unknown_graph_optimization(ort_compiled: Path) -> None:
    """A manifest naming an unknown graph_optimization is a ModelError naming the value."""
    m = read_manifest(ort_compiled)
    comp = replace(m.components["vocoder"], extra={**m.components["vocoder"].extra, "graph_optimization": "turbo"})
    bad = replace(m, components={**m.components, "vocoder": comp})
    with pytest.raises(ModelError, match="turbo"):
        load_runner(bad, "vocoder", ort_compiled, RuntimeOptions(threads=1))


def test_existing_output_needs_force(tiny: dict[str, Path], ort_compiled: Path) -> None:
    """Compiling onto an existing folder without force is an InputError before any work."""
    with pytest.raises(InputError, match="--force"):
        compile_artifact(tiny["onnx"], ort_compiled, CompileConfig(threads=1))


# ---- torch.export ---------------------------------------------------------------------------------

def test_torch_export_programs_match_eager(tiny: dict[str, Path], tmp_path: Path) -> None:
    """torch backend writes .pt2 programs with dynamic tokens/frames that match eager torch, T=1 included."""
    out = tmp_path / "pt2"
    m = compile_artifact(tiny["torch"], out, CompileConfig(backend="torch", threads=1, max_seq_len=64,
                                                           max_frames=512))
    assert {c.format for c in m.components.values()} == {"torch-export"}
    assert m.components["acoustic"].extra["max_tokens"] == 64
    eager_ac, eager_vo = _runners(tiny["torch"])
    ac, vo = _runners(out)
    for n, controls in ((1, CONTROLS), (6, SLOW_HIGH), (29, CONTROLS)):
        ids = (np.arange(n, dtype=np.int64)[None] % (len(tiny_voice.SYMBOLS) - 1)) + 1
        mel_a, dur_a = eager_ac(ids, controls)
        mel_b, dur_b = ac(ids, controls)
        assert dur_b.shape == (1, n) and np.array_equal(dur_a, dur_b)
        np.testing.assert_allclose(mel_a, mel_b, atol=1e-4)
        if mel_a.shape[1] < tiny_voice.MIN_FRAMES:
            with pytest.raises(ModelError, match="mel.size"):  # below the program's frame bound
                vo(mel_a)
            continue
        mel = np.concatenate([mel_a, mel_a], axis=0)  # batch 2 through a batch-1 program
        np.testing.assert_allclose(vo(mel), eager_vo(mel), atol=2 / 128)


# ---- tensorrt (no GPU needed) ---------------------------------------------------------------------

def test_trt_profiles_from_bounds() -> None:
    """Profiles give (min, opt, max) per dynamic input from --max-seq-len / --max-frames; fixed inputs get none."""
    from speedy.stages.compile_trt import dim_bounds, profile_shapes

    bounds = dim_bounds(max_seq_len=300, max_frames=1500, min_frames=10)
    shapes = profile_shapes({"input_ids": [1, "tokens"], "speed": [1], "mel": [1, "frames", 80]}, bounds)
    assert shapes == {"input_ids": ((1, 1), (1, 48), (1, 300)), "mel": ((1, 10, 80), (1, 256, 80), (1, 1500, 80))}
    small = dim_bounds(max_seq_len=16, max_frames=100, min_frames=10)
    assert small["tokens"] == (1, 16, 16) and small["frames"] == (10, 100, 100)
    assert profile_shapes({"x": ["batch", "frames"]}, small)["x"][2] == (1, 100)
    with pytest.raises(ModelError, match="no profile bound"):
        profile_shapes({"x": [1, "time"]}, small)
    with pytest.raises(ModelError):
        dim_bounds(max_seq_len=16, max_frames=5, min_frames=10)


def test_trt_profiles_from_real_onnx_inputs(tiny: dict[str, Path]) -> None:
    """The exported graphs' dynamic dims are named tokens/frames, so every dynamic input gets a profile."""
    from speedy.stages.compile_trt import dim_bounds, onnx_input_shapes, profile_shapes

    bounds = dim_bounds(512, 2048, tiny_voice.MIN_FRAMES)
    ac = profile_shapes(onnx_input_shapes(tiny["onnx"] / "acoustic.onnx"), bounds)
    vo = profile_shapes(onnx_input_shapes(tiny["onnx"] / "vocoder.onnx"), bounds)
    assert ac == {"input_ids": ((1, 1), (1, 48), (1, 512))}
    assert vo == {"mel": ((1, 4, 8), (1, 256, 8), (1, 2048, 8))}


def _with_qdq_vocoder(src: Path, dst: Path) -> Path:
    """A copy of the tiny ONNX artifact whose vocoder.onnx is an INT8 QDQ graph."""
    import onnx
    from onnx import TensorProto, helper

    shutil.copytree(src, dst)
    nodes = [helper.make_node("QuantizeLinear", ["mel", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["wav"])]
    inits = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, "frames", 8])],
                              [helper.make_tensor_value_info("wav", TensorProto.FLOAT, [1, "frames", 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(dst / "vocoder.onnx"))
    m = read_manifest(dst, verify=False)
    comp = replace(m.components["vocoder"], sha256=sha256_file(dst / "vocoder.onnx"), precision="int8-static")
    write_manifest(dst, replace(m, components={**m.components, "vocoder": comp}))
    return dst


def test_trt_refuses_int8_qdq_without_calibration(tiny: dict[str, Path], tmp_path: Path) -> None:
    """An INT8 QDQ input is refused before any work, with the documented message, and nothing is written."""
    src = _with_qdq_vocoder(tiny["onnx"], tmp_path / "qdq")
    with pytest.raises(ModelError) as e:
        compile_artifact(src, tmp_path / "out", CompileConfig(backend="tensorrt", precision="fp16"))
    assert str(e.value) == ("compile: vocoder.onnx is INT8 QDQ; the tensorrt backend needs --int8-calib or an "
                            "FP32/FP16 input")
    assert e.value.exit_code == 3
    assert not (tmp_path / "out").exists()


def test_trt_without_tensorrt_names_the_extra(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Without the tensorrt package the stage fails with exit 3 and the pip extra to install."""
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    with pytest.raises(MissingExtraError, match=r"openspeedy\[tensorrt\]") as e:
        compile_artifact(tiny["onnx"], tmp_path / "out", CompileConfig(backend="tensorrt"))
    assert e.value.exit_code == 3


@pytest.mark.gpu
def test_trt_engines_match_onnx(tiny: dict[str, Path], tmp_path: Path) -> None:
    """On a CUDA GPU with TensorRT, FP32 engines pass the same parity checks as the ONNX source."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine (torch.cuda.is_available() is False)")
    pytest.importorskip("tensorrt", reason="the tensorrt extra is not installed")
    pytest.importorskip("pycuda", reason="the tensorrt extra (pycuda) is not installed")
    m = compile_artifact(tiny["onnx"], tmp_path / "trt", CompileConfig(backend="tensorrt", max_seq_len=64,
                                                                         max_frames=512))
    assert {c.format for c in m.components.values()} == {"tensorrt"}
    assert all(p["enforced"] for p in m.extra["parity"])


# ---- command --------------------------------------------------------------------------------------

def test_cli_json_and_exit_codes(tiny: dict[str, Path], tmp_path: Path) -> None:
    """`speedy compile --json` prints one JSON object; bad options exit 2, a missing extra exits 3."""
    from click.testing import CliRunner

    from speedy.cli import main

    runner = CliRunner()
    out = tmp_path / "c"
    res = runner.invoke(main, ["compile", str(tiny["onnx"]), "-o", str(out), "--threads", "1", "--no-fusions", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["backend"] == "onnxruntime" and data["components"]["acoustic"]["format"] == "onnx"
    assert "transformer_optimizer" not in data["notes"]["acoustic"]
    res = runner.invoke(main, ["compile", str(tiny["onnx"]), "-o", str(tmp_path / "d"), "--precision", "int8"])
    assert res.exit_code == 2
    assert runner.invoke(main, ["compile", "--help"]).exit_code == 0


# ---- the real default voice -----------------------------------------------------------------------

@pytest.mark.integration
def test_default_voice_ort_compiled_synthesizes(default_onnx: Path, synthesizer, tmp_path: Path) -> None:
    """The default voice compiled for onnxruntime speaks a sentence as the FP32 ONNX artifact does."""
    from conftest import assert_same_audio

    from speedy.synth import Synthesizer

    out = tmp_path / "compiled"
    m = compile_artifact(default_onnx, out, CompileConfig(threads=2))
    assert all(p["enforced"] for p in m.extra["parity"])
    text = "今天天气很好，我们去公园散步。"
    assert_same_audio(Synthesizer.load(out, threads=2).synthesize(text).audio, synthesizer.synthesize(text).audio,
                      "onnxruntime-compiled")


@pytest.mark.integration
def test_default_voice_torch_export_synthesizes(default_torch: Path, synthesizer, tmp_path: Path) -> None:
    """The default voice compiled to torch.export programs speaks as the FP32 ONNX artifact does."""
    from conftest import assert_same_audio

    from speedy.synth import Synthesizer

    out = tmp_path / "pt2"
    # The stage's own parity check is exercised on the tiny voice above; here the sentence below is the check.
    compile_artifact(default_torch, out, CompileConfig(backend="torch", threads=2, check=False))
    text = "请在三点以前把报告发给我。"
    assert_same_audio(Synthesizer.load(out, threads=2).synthesize(text).audio, synthesizer.synthesize(text).audio,
                      "torch.export")


def test_unknown_family_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A single-graph family without a graph spec is a ModelError naming it (multi-graph Sambert artifacts
    are checked through their host loop instead: tests/test_sambert_pipeline.py)."""
    src = tmp_path / "odd"
    shutil.copytree(tiny["onnx"], src)
    m = read_manifest(src)
    write_manifest(src, replace(m, family="unknown-family-test"))
    with pytest.raises(ModelError, match="unknown-family-test"):
        compile_artifact(src, tmp_path / "out", CompileConfig(threads=1))
    assert not (tmp_path / "out").exists()
