"""The OpenVINO backend: `speedy compile --backend openvino` (fp32 / bf16 / int8) and its runtime.

The tiny random voice checks the round trip (preflight, compiler, loader) against ONNX Runtime; the real
default voice checks parity at fp32, the fidelity budgets of bf16 and int8 (MCD per component against the
FP32 ONNX artifact, `speedy.fidelity`), streaming and the CLI; a short ttskit sentence checks a host loop
on OpenVINO graphs. Bad input: bf16 on a CPU without it, openvino not installed, an IR file that does not
match its manifest: one `error:` line, exit 2 / 3, nothing written.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402
from conftest import short_loop_check, skip_or_fail_in_ci  # noqa: E402

from speedy.artifacts import read_manifest  # noqa: E402
from speedy.controls import DEFAULT_CONTROLS, GraphControls  # noqa: E402
from speedy.errors import InputError, MissingExtraError, ModelError  # noqa: E402
from speedy.runtime import RuntimeOptions, load_runner  # noqa: E402
from speedy.stages.compile import CompileConfig, compile_artifact  # noqa: E402

SLOW_HIGH = GraphControls(speed=0.7, pitch=3.0, pitch_range=1.5, energy=1.3)
#: OpenVINO f32 vs ONNX Runtime FP32, same graph: rounding only (measured on the default voice: mel max
#: |Δ| 1.7e-5, vocoder 99 dB SNR)
SAME_GRAPH_ABS = 1e-4
#: MCD budgets (dB per component against the FP32 ONNX artifact), from examples/openvino_probe.py on 20
#: eval utterances (2 threads, AVX-512 BF16): bf16 acoustic 2.09 dB (bf16 duration predictor: 96 % of the
#: durations kept), vocoder 1.00 dB; int8 2.40 / 3.95 dB, as ORT's int8-static recipe (2.37 / 3.97 dB).
BF16_MAX_ACOUSTIC_MCD = 2.5
BF16_MAX_VOCODER_MCD = 1.5
INT8_MAX_ACOUSTIC_MCD = 3.0
INT8_MAX_VOCODER_MCD = 5.0


@pytest.fixture(autouse=True, scope="module")
def _openvino() -> None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        skip_or_fail_in_ci("the openvino extra is not installed")


def has_bf16() -> bool:
    from speedy.backends import backend, missing_isa

    return missing_isa(backend("openvino").precision_needs["bf16"]) is None


def need_bf16() -> None:
    """bf16 tests skip on a CPU without it, even under CI (a hardware reason, not a missing install)."""
    if not has_bf16():
        pytest.skip("this CPU has neither AVX512_BF16 nor AMX (OpenVINO would run bf16 as f32)")


def cli(*args: str):  # -> click.testing.Result
    from click.testing import CliRunner

    from speedy.cli import main

    return CliRunner().invoke(main, list(args))


def one_error(res, code: int, *words: str) -> str:
    """Exit `code` with exactly one `error:` line on stderr naming `words`, no traceback."""
    assert res.exit_code == code, (res.output, res.exception)
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in res.stderr, res.stderr
    for w in words:
        assert w in errors[0], errors[0]
    return errors[0]


def no_partial(folder: Path) -> None:
    """Neither the target nor a staging folder beside it."""
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.")]


# ---- tiny voice ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    torch_dir = tiny_voice.make_torch_artifact(root / "torch")
    onnx = tiny_voice.make_onnx_artifact(torch_dir, root / "onnx")
    out = root / "ov"
    compile_artifact(onnx, out, CompileConfig(backend="openvino", threads=1))
    return {"onnx": onnx, "ov": out}


def test_tiny_round_trip_matches_onnxruntime(tiny: dict[str, Path]) -> None:
    """IR pair + manifest written; the loader's runners give ORT's durations exactly and its mel / wave within
    1e-4 at new lengths and non-default controls; the fp32 hint is recorded (the CPU plugin's default is bf16
    on BF16 CPUs)."""
    m = read_manifest(tiny["ov"])
    for name, c in m.components.items():
        assert c.format == "openvino" and c.precision == "fp32" and c.file == f"{name}.xml"
        assert c.extra["inference_precision"] == "f32" and c.extra["threads"] == 1
        assert (tiny["ov"] / c.extra["weights"]["file"]).is_file()
    assert m.components["vocoder"].extra["receptive_field_frames"] > 0
    assert all(p["enforced"] for p in m.extra["parity"]) and m.lineage[-1].options["backend"] == "openvino"
    opts = RuntimeOptions(threads=1)
    src = read_manifest(tiny["onnx"])
    ort = load_runner(src, "acoustic", tiny["onnx"], opts), load_runner(src, "vocoder", tiny["onnx"], opts)
    ov = load_runner(m, "acoustic", tiny["ov"], opts), load_runner(m, "vocoder", tiny["ov"], opts)
    assert ov[1].receptive_field_frames == pytest.approx(ort[1].receptive_field_frames)
    for r in ov:  # set explicitly: on AVX512_BF16 / AMX CPUs the plugin's default would be bf16
        assert "float32" in str(r.session.compiled.get_property("INFERENCE_PRECISION_HINT"))
    for n, controls in ((5, DEFAULT_CONTROLS), (37, SLOW_HIGH), (11, DEFAULT_CONTROLS)):
        ids = (np.arange(1, n + 1, dtype=np.int64)[None] % (len(tiny_voice.SYMBOLS) - 1)) + 1
        (mel_a, dur_a), (mel_b, dur_b) = ort[0](ids, controls), ov[0](ids, controls)
        assert np.array_equal(dur_a, dur_b)
        assert np.abs(mel_a - mel_b).max() <= SAME_GRAPH_ABS
        assert np.abs(ort[1](mel_a) - ov[1](mel_a)).max() <= SAME_GRAPH_ABS


def test_config_precisions_per_backend() -> None:
    """openvino takes fp32 / bf16 / int8; other combinations are one-line InputErrors naming who takes them."""
    for p in ("fp32", "bf16", "int8"):
        assert CompileConfig(backend="openvino", precision=p).precision == p
    with pytest.raises(InputError, match="--precision fp16 needs --backend tensorrt; the openvino backend takes"):
        CompileConfig(backend="openvino", precision="fp16")
    with pytest.raises(InputError, match="--precision bf16 needs --backend openvino"):
        CompileConfig(precision="bf16")
    with pytest.raises(InputError, match="openvino backend takes no --opt-level"):
        CompileConfig(backend="openvino", opt_level="all")


def test_cli_json_with_f32_alias(tiny: dict[str, Path], tmp_path: Path) -> None:
    """`--precision f32` is fp32; --json reports the openvino components."""
    res = cli("compile", str(tiny["onnx"]), "-o", str(tmp_path / "c"), "--backend", "openvino", "--precision", "f32",
              "--threads", "1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["components"]["vocoder"] == {"file": "vocoder.xml", "format": "openvino", "precision": "fp32"}


def test_bf16_on_a_cpu_without_it_is_exit_2(tiny: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("speedy.backends.cpu_isa", lambda: ("avx2", "avx512f"))
    out = tmp_path / "b"
    line = one_error(cli("compile", str(tiny["onnx"]), "-o", str(out), "--backend", "openvino", "--precision",
                         "bf16"), 2, "needs a CPU with AVX512_BF16 or AMX_BF16; this one has avx2, avx512f")
    assert "fp32 or int8" in line
    no_partial(out)


def test_without_openvino_names_the_extra(tiny: dict[str, Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    out = tmp_path / "n"
    one_error(cli("compile", str(tiny["onnx"]), "-o", str(out), "--backend", "openvino"), 3,
              "pip install 'openspeedy[openvino]'")
    no_partial(out)
    with pytest.raises(MissingExtraError, match=r"openspeedy\[openvino\]"):
        load_runner(read_manifest(tiny["ov"]), "vocoder", tiny["ov"], RuntimeOptions(threads=1))


def test_int8_without_nncf_names_the_extra(tiny: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)
    out = tmp_path / "n"
    one_error(cli("compile", str(tiny["onnx"]), "-o", str(out), "--backend", "openvino", "--precision", "int8"), 3,
              "needs the 'nncf' package: pip install 'openspeedy[openvino]'")
    no_partial(out)


@pytest.mark.parametrize("which", ["bin", "xml"])
def test_ir_file_not_matching_its_manifest_is_exit_3(tiny: dict[str, Path], tmp_path: Path, which: str) -> None:
    """A changed .bin (checked by the loader) or .xml (checked with the manifest) is one line, exit 3, and
    `synth` writes no WAV."""
    bad = tmp_path / "bad"
    shutil.copytree(tiny["ov"], bad)
    f = bad / f"vocoder.{which}"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"checksum mismatch for vocoder.{which}"):
        load_runner(read_manifest(bad, verify=False), "vocoder", bad, RuntimeOptions(threads=1))
    wav = tmp_path / "o.wav"
    one_error(cli("synth", "--text", "你好。", "-o", str(wav), "--artifact", str(bad)), 3,
              f"checksum mismatch for vocoder.{which}")
    assert not wav.exists()


def test_non_fp32_source_is_refused(tiny: dict[str, Path], tmp_path: Path) -> None:
    from dataclasses import replace

    from speedy.artifacts import write_manifest

    src = tmp_path / "q"
    shutil.copytree(tiny["onnx"], src)
    m = read_manifest(src)
    write_manifest(src, replace(m, components={**m.components, "vocoder": replace(m.components["vocoder"],
                                                                                   precision="int8-static")}))
    with pytest.raises(InputError, match="vocoder .* is int8-static; the openvino backend takes an FP32 ONNX"):
        compile_artifact(src, tmp_path / "o", CompileConfig(backend="openvino", precision="int8"))
    no_partial(tmp_path / "o")


# ---- the real default voice ------------------------------------------------------------------------

TEXT = "今天天气很好，我们去公园散步。"


@pytest.fixture(scope="module")
def fp32(default_onnx: Path):  # -> Synthesizer
    from speedy.synth import Synthesizer

    return Synthesizer.load(default_onnx, threads=2)


@pytest.fixture(scope="module")
def ov_fp32(default_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ov") / "fp32"
    compile_artifact(default_onnx, out, CompileConfig(backend="openvino", threads=2))
    return out


@pytest.fixture(scope="module")
def ids(fp32) -> list:
    from speedy.corpus import load_corpus
    from speedy.fidelity import utterance_ids

    return utterance_ids(fp32, load_corpus("eval")[:2])


@pytest.mark.integration
def test_default_voice_fp32_matches_onnxruntime(ov_fp32: Path, fp32) -> None:
    """Compile's own check is enforced, and on a sentence the acoustic mel and vocoder wave are within 1e-4
    of ONNX Runtime's, durations identical."""
    from speedy.synth import Synthesizer

    m = read_manifest(ov_fp32)
    assert all(p["enforced"] for p in m.extra["parity"])
    ov = Synthesizer.load(ov_fp32, threads=2)
    from speedy.fidelity import utterance_ids

    x = max(utterance_ids(fp32, [TEXT]), key=lambda a: a.shape[1])
    (mel_a, dur_a), (mel_b, dur_b) = fp32.acoustic(x, DEFAULT_CONTROLS), ov.acoustic(x, DEFAULT_CONTROLS)
    assert np.array_equal(dur_a, dur_b)
    assert np.abs(mel_a - mel_b).max() <= SAME_GRAPH_ABS
    assert np.abs(fp32.vocoder(mel_a) - ov.vocoder(mel_a)).max() <= SAME_GRAPH_ABS


@pytest.mark.integration
def test_default_voice_streams_and_cli(ov_fp32: Path, fp32, tmp_path: Path) -> None:
    """The Synthesizer's chunked stream on the OpenVINO artifact equals ONNX Runtime's whole-sentence audio;
    `speedy synth` and `speedy info` take the artifact (info counts the .bin in the size)."""
    from conftest import assert_same_audio

    from speedy.synth import Synthesizer

    ov = Synthesizer.load(ov_fp32, threads=2)
    assert ov.vocoder_context_frames == fp32.vocoder_context_frames
    chunks = list(ov.stream(TEXT))
    assert len(chunks) > 1
    assert_same_audio(np.concatenate([c.audio for c in chunks]), fp32.synthesize(TEXT).audio, "openvino stream")
    res = cli("synth", "--text", "你好。", "-o", str(tmp_path / "a.wav"), "--artifact", str(ov_fp32))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a.wav").stat().st_size > 1000
    res = cli("info", str(ov_fp32), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["components"]["acoustic"]["format"] == "openvino"
    assert info["size_bytes"] > 60e6  # the weights are in the .bin files


@pytest.mark.integration
def test_openvino_runtime_imports_no_torch(ov_fp32: Path, tmp_path: Path) -> None:
    """Synthesising from the OpenVINO artifact works with torch (and nncf) made unimportable."""
    import subprocess
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        sys.modules["nncf"] = None
        from speedy.synth import Synthesizer
        r = Synthesizer.load({str(ov_fp32)!r}, threads=1).to_wav("你好。", {str(tmp_path / "x.wav")!r})
        assert r.duration_s > 0.3, r.duration_s
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.integration
def test_default_voice_bf16_within_budget(default_onnx: Path, fp32, ids: list, tmp_path: Path) -> None:
    """bf16 (the f32 IR with the bf16 hint): compile's gross-loss figures recorded and met, each component within
    its MCD budget of FP32."""
    need_bf16()
    from speedy.fidelity import component_fidelity
    from speedy.synth import Synthesizer

    out = tmp_path / "bf16"
    m = compile_artifact(default_onnx, out, CompileConfig(backend="openvino", precision="bf16", threads=2))
    assert {c.extra["inference_precision"] for c in m.components.values()} == {"bf16"}
    assert not any(p["enforced"] for p in m.extra["parity"])
    # a moved duration makes the mel lengths differ: recorded as null, never as NaN (not JSON)
    json.loads((out / "manifest.json").read_text(encoding="utf-8"),
               parse_constant=lambda c: pytest.fail(f"{c} in manifest.json"))
    assert "fidelity" in m.extra["compile"]["acoustic"] and "fidelity" in m.extra["compile"]["vocoder"]
    f = component_fidelity(fp32, Synthesizer.load(out, threads=2), ids)
    assert f.utterances == len(ids)
    assert f.acoustic_mcd_db is not None and f.acoustic_mcd_db <= BF16_MAX_ACOUSTIC_MCD, f
    assert f.vocoder_mcd_db is not None and f.vocoder_mcd_db <= BF16_MAX_VOCODER_MCD, f


@pytest.mark.integration
def test_default_voice_int8_within_budget(default_onnx: Path, fp32, ids: list, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """NNCF INT8 (12 calibration sentences here): durations kept (only the frame-rate part is quantized), each
    component within its MCD budget; the notes record the NNCF settings."""
    monkeypatch.setattr("speedy.stages.compile_openvino.CALIB_SENTENCES", 12)
    from speedy.fidelity import component_fidelity
    from speedy.synth import Synthesizer

    out = tmp_path / "int8"
    m = compile_artifact(default_onnx, out, CompileConfig(backend="openvino", precision="int8", threads=2))
    notes = m.extra["compile"]
    assert notes["acoustic"]["nncf"]["model_type"] == "transformer" and notes["vocoder"]["nncf"]["fake_quantize"] > 0
    assert notes["acoustic"]["fidelity"]["duration_match"] == 1.0
    f = component_fidelity(fp32, Synthesizer.load(out, threads=2), ids)
    assert f.duration_match == 1.0, f
    assert f.acoustic_mcd_db is not None and f.acoustic_mcd_db <= INT8_MAX_ACOUSTIC_MCD, f
    assert f.vocoder_mcd_db is not None and f.vocoder_mcd_db <= INT8_MAX_VOCODER_MCD, f


@pytest.mark.integration
def test_gross_loss_fails_the_compile(default_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A budget the recipe cannot meet fails with exit 3 naming the figure, and leaves nothing."""
    need_bf16()
    monkeypatch.setattr("speedy.stages.compile_openvino.FIDELITY_BUDGET",
                        {"duration_match": 0.8, "mel_mae": 0.5, "vocoder_lsd_db": 0.01})
    out = tmp_path / "g"
    one_error(cli("compile", str(default_onnx), "-o", str(out), "--backend", "openvino", "--precision", "bf16"), 3,
              "openvino bf16 vocoder is grossly off FP32: vocoder_lsd_db")
    no_partial(out)


# ---- a host loop: ttskit ---------------------------------------------------------------------------


@pytest.mark.integration
def test_ttskit_host_loop_runs_on_openvino(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every graph converted; compile's host-loop check (same stop step, mel ≤ 1e-3, vocoder ≥ 40 dB) passes on
    OpenVINO sessions, and the Synthesizer speaks through them. int8 (calibration through the loop) is refused."""
    from speedy.families import by_name
    from speedy.stages.export import reference_artifact
    from speedy.runtime import load_runner
    from speedy.runtime.openvino_backend import OvSession
    from speedy.synth import Synthesizer

    short_loop_check(monkeypatch, "ttskit", "好的。")
    with pytest.raises(InputError, match="int8 takes single-graph artifacts; ttskit"):
        compile_artifact(reference_artifact(by_name("ttskit")), tmp_path / "q", CompileConfig(backend="openvino", precision="int8"))
    no_partial(tmp_path / "q")
    m = compile_artifact(reference_artifact(by_name("ttskit")), tmp_path / "t", CompileConfig(backend="openvino", threads=2))
    assert {c.format for c in m.components.values()} == {"openvino"}
    figures = {(f["component"], f["output"]): f for f in m.extra["parity"]}
    assert figures[("acoustic-loop", "stop_step")]["value"] == 0.0
    assert figures[("acoustic-loop", "mel")]["value"] <= 1e-3 and figures[("vocoder", "wav")]["value"] >= 40.0
    graphs = load_runner(m, "acoustic", tmp_path / "t", RuntimeOptions(threads=1)).loop.graphs
    assert graphs and all(isinstance(g, OvSession) for g in graphs.values())
    assert Synthesizer.load(tmp_path / "t", threads=2).synthesize("好的。").audio.size > 0


# ---- a host loop: Sambert (random-weight fixture folder) -------------------------------------------


def test_sambert_host_loop_runs_on_openvino(tmp_path: Path) -> None:
    """The Sambert graphs (duration LSTM step, decoder step, …, vocoder) convert, its host loop runs on OpenVINO
    sessions (durations equal, mel ≤ 1e-3, vocoder ≥ 40 dB: compile's enforced check) and speaks."""
    from sambert_fixture import write_sambert_folder

    from speedy.synth import Synthesizer

    model = write_sambert_folder(tmp_path / "model", voices=("zhitian_emo",))
    res = cli("export", "--from-modelscope", str(model), "-o", str(tmp_path / "fp32"), "--threads", "1")
    assert res.exit_code == 0, res.stderr
    m = compile_artifact(tmp_path / "fp32", tmp_path / "ov", CompileConfig(backend="openvino", threads=1))
    assert {c.format for c in m.components.values()} == {"openvino"}
    assert m.extra["parity"] and all(f["enforced"] for f in m.extra["parity"])
    assert Synthesizer.load(tmp_path / "ov", threads=1).synthesize("你好。").audio.size > 0
