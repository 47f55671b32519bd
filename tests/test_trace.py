"""Trace stage: TorchScript components with no baked-in lengths or controls, checked against eager PyTorch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402

from speedy.artifacts import read_manifest  # noqa: E402
from speedy.controls import GraphControls  # noqa: E402
from speedy.errors import InputError, ModelError  # noqa: E402
from speedy.runtime import RuntimeOptions, load_runner  # noqa: E402
from speedy.stages.trace import TraceConfig, trace  # noqa: E402


@pytest.fixture(scope="module")
def tiny_torch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random voice as a torch artifact."""
    return tiny_voice.make_torch_artifact(tmp_path_factory.mktemp("tiny") / "torch")


@pytest.fixture(scope="module")
def traced(tiny_torch: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny voice traced to TorchScript."""
    out = tmp_path_factory.mktemp("ts") / "traced"
    trace(tiny_torch, out, TraceConfig(threads=1))
    return out


def _runners(folder: Path) -> tuple:
    m = read_manifest(folder)
    return tuple(load_runner(m, n, folder, RuntimeOptions(threads=1)) for n in ("acoustic", "vocoder"))


def test_both_components_trace_cleanly(traced: Path) -> None:
    """Both components become torchscript by tracing, with parity figures and a trace lineage step."""
    m = read_manifest(traced)
    assert {n: c.format for n, c in m.components.items()} == {"acoustic": "torchscript", "vocoder": "torchscript"}
    assert m.extra["trace"]["acoustic"]["method"] == "trace"
    assert m.extra["trace"]["vocoder"]["method"] == "trace"
    assert m.lineage[-1].stage == "trace"
    figs = {(p["component"], p["output"]): p["value"] for p in m.extra["parity"]}
    assert figs[("acoustic", "durations")] == 0
    assert figs[("acoustic", "mel")] <= 1e-3 and figs[("vocoder", "wav")] >= 40


@pytest.mark.parametrize("n, speed", [(3, 1.0), (17, 0.6), (50, 1.7)])
def test_traced_follows_length_and_speed(tiny_torch: Path, traced: Path, n: int, speed: float) -> None:
    """No token count, frame count or control value is baked in: lengths and speed move as in eager."""
    eager_ac, eager_vo = _runners(tiny_torch)
    ac, vo = _runners(traced)
    ids = (np.arange(n, dtype=np.int64)[None] % (len(tiny_voice.SYMBOLS) - 1)) + 1
    controls = GraphControls(speed=speed, pitch=1.0, pitch_range=1.2, energy=0.9)
    mel_a, dur_a = eager_ac(ids, controls)
    mel_b, dur_b = ac(ids, controls)
    assert np.array_equal(dur_a, dur_b)
    np.testing.assert_allclose(mel_a, mel_b, atol=1e-5)
    if mel_a.shape[1] >= tiny_voice.MIN_FRAMES:
        np.testing.assert_allclose(vo(mel_a), eager_vo(mel_a), atol=2 / 128)


def test_trace_refuses_non_torch_source(traced: Path, tmp_path: Path) -> None:
    """Trace takes a torch artifact; a TorchScript (or ONNX) one is an InputError naming what it got."""
    with pytest.raises(InputError, match="torchscript components; trace takes a torch artifact"):
        trace(traced, tmp_path / "again")


def test_tracer_warning_rejects_trace() -> None:
    """A module whose trace would bake a data-dependent Python value is rejected with the TracerWarning."""
    import torch

    from speedy.stages.parity import CheckSet
    from speedy.stages.trace import _Rejected, _to_torchscript

    class Baked(torch.nn.Module):
        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            n = int(mel.shape[1] * float(mel.abs().sum() > 0))  # Python value from a tensor
            return mel[:, :n].reshape(1, -1)

    mel = np.zeros((1, 6, 8), np.float32)
    checks = CheckSet(acoustic=(), vocoder=((mel, mel.reshape(1, -1)), (np.ones((1, 9, 8), np.float32), mel)))
    with pytest.raises(_Rejected, match="TracerWarning|TracingCheckError"):
        _to_torchscript("trace", "vocoder", Baked(), checks)


def test_broken_torchscript_file_is_a_model_error(traced: Path, tmp_path: Path) -> None:
    """A corrupt TorchScript file fails to load with a ModelError naming the file."""
    from speedy.runtime.torch_backend import load_torchscript

    bad = tmp_path / "bad"
    bad.mkdir()
    m = read_manifest(traced)
    (bad / m.components["vocoder"].file).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="vocoder.torchscript.pt"):
        load_torchscript(m, "vocoder", bad, RuntimeOptions())


def test_cli_json(tiny_torch: Path, tmp_path: Path) -> None:
    """`speedy trace --json` prints one JSON object with the method per component."""
    from click.testing import CliRunner

    from speedy.cli import main

    res = CliRunner().invoke(main, ["trace", str(tiny_torch), "-o", str(tmp_path / "t"), "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["trace"]["vocoder"]["method"] == "trace"
    assert data["components"]["acoustic"]["format"] == "torchscript"


@pytest.mark.integration
def test_default_voice_traced_synthesizes(default_torch: Path, tmp_path: Path) -> None:
    """The default voice traced to TorchScript speaks through the Synthesizer, like the ONNX artifact."""
    from speedy.synth import Synthesizer

    out = tmp_path / "traced"
    m = trace(default_torch, out, TraceConfig(threads=2))
    assert {c.format for c in m.components.values()} == {"torchscript"}
    result = Synthesizer.load(out, threads=2).synthesize("我们一起去公园散步吧！")
    assert result.duration_s > 1.0
    assert 0.01 < float(np.sqrt(np.mean(result.audio ** 2))) < 0.5
