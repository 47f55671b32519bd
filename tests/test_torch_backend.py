"""Torch-family runtime backends: eager modules from the registry, runners' numpy contract, threads, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402

from speedy.artifacts import read_manifest  # noqa: E402
from speedy.controls import DEFAULT_CONTROLS, GraphControls  # noqa: E402
from speedy.errors import ModelError  # noqa: E402
from speedy.runtime import RuntimeOptions, load_runner  # noqa: E402
from speedy.runtime.torch_backend import TorchAcoustic, TorchVocoder, load_torch_export, load_torch_modules  # noqa: E402


@pytest.fixture(scope="module")
def tiny_torch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random voice as a torch artifact."""
    return tiny_voice.make_torch_artifact(tmp_path_factory.mktemp("tiny") / "torch")


def test_modules_are_eval_and_frozen(tiny_torch: Path) -> None:
    """load_torch_modules gives both components in eval mode with no parameter requiring grad."""
    mods = load_torch_modules(read_manifest(tiny_torch), tiny_torch)
    assert set(mods) == {"acoustic", "vocoder"}
    for m in mods.values():
        assert not m.training
        assert not any(p.requires_grad for p in m.parameters())


def test_runner_numpy_contract(tiny_torch: Path) -> None:
    """Acoustic: (1,T) int64 + controls by name → float32 mel (1,L,n_mels), int64 durations (1,T); vocoder L·hop
    samples."""
    m = read_manifest(tiny_torch)
    ac = load_runner(m, "acoustic", tiny_torch, RuntimeOptions(threads=1))
    vo = load_runner(m, "vocoder", tiny_torch, RuntimeOptions(threads=1))
    ids = np.arange(1, 9, dtype=np.int64)[None]
    mel, dur = ac(ids, DEFAULT_CONTROLS)
    assert mel.dtype == np.float32 and mel.shape == (1, int(dur.sum()), tiny_voice.N_MELS)
    assert dur.dtype == np.int64 and dur.shape == (1, 8)
    wav = vo(mel)
    assert wav.dtype == np.float32 and wav.shape == (1, mel.shape[1] * m.audio.hop_size)
    slow, _ = ac(ids, GraphControls(speed=0.5))
    assert slow.shape[1] > mel.shape[1]


def test_threads_option_sets_torch_threads(tiny_torch: Path) -> None:
    """RuntimeOptions.threads sets torch's intra-op thread count when the backend loads."""
    import torch

    before = torch.get_num_threads()
    try:
        load_runner(read_manifest(tiny_torch), "vocoder", tiny_torch, RuntimeOptions(threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_vocoder_batches_one_by_one() -> None:
    """A batch-1 program still takes a batch: items run one by one and are stacked."""
    import torch

    calls = []

    def prog(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        assert x.shape[0] == 1
        return x.sum(-1)

    out = TorchVocoder(prog, one_by_one=True)(np.ones((3, 5, 2), np.float32))
    assert out.shape == (3, 5) and calls == [1, 1, 1]


def test_refused_input_is_a_model_error() -> None:
    """A compiled program refusing an input (guard, shape) becomes a one-line ModelError."""
    def prog(*a: object) -> None:
        raise AssertionError("Guard failed: input_ids.size()[1] <= 512")

    with pytest.raises(ModelError, match="acoustic: the torch runtime refused input"):
        TorchAcoustic(prog)(np.ones((1, 600), np.int64), DEFAULT_CONTROLS)


def test_missing_pt2_is_a_model_error(tiny_torch: Path, tmp_path: Path) -> None:
    """A torch-export component whose file cannot be read fails with a ModelError naming it."""
    from dataclasses import replace

    m = read_manifest(tiny_torch)
    comp = replace(m.components["vocoder"], file="vocoder.pt2", format="torch-export")
    (tmp_path / "vocoder.pt2").write_bytes(b"junk")
    with pytest.raises(ModelError, match="vocoder.pt2"):
        load_torch_export(replace(m, components={**m.components, "vocoder": comp}), "vocoder", tmp_path,
                          RuntimeOptions())


@pytest.mark.integration
def test_default_voice_torch_artifact_synthesizes(default_torch: Path, synthesizer) -> None:
    """The default voice's torch artifact (eager backend) speaks as its FP32 ONNX export does."""
    from conftest import assert_same_audio

    from speedy.synth import Synthesizer

    text = "今天天气很好。"
    assert_same_audio(Synthesizer.load(default_torch, threads=2).synthesize(text).audio,
                      synthesizer.synthesize(text).audio, "eager torch")


def test_folder_is_read_once_for_both_components(tiny_torch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading acoustic then vocoder from one torch folder builds the modules once; a new pair builds again."""
    import speedy.runtime.torch_backend as tb

    tb._PENDING.clear()
    calls = []
    real = tb.load_torch_modules
    monkeypatch.setattr(tb, "load_torch_modules", lambda m, r: calls.append(r) or real(m, r))
    m = read_manifest(tiny_torch)
    for _ in range(2):
        load_runner(m, "acoustic", tiny_torch, RuntimeOptions())
        load_runner(m, "vocoder", tiny_torch, RuntimeOptions())
    assert len(calls) == 2
    assert not tb._PENDING
