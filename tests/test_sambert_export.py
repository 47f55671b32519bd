"""Sambert-HifiGan ONNX graphs: per-graph parity with PyTorch, host loop vs forward, whole pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sambert_fixture import write_sambert_folder

from speedy.artifacts import Manifest
from speedy.errors import InputError, ModelError
from speedy.families import by_name
from speedy.families.sambert.loop import CONFIG_METADATA_KEY, GRAPH_NAMES, SambertLoop
from speedy.families.sambert.source import LoadedSambert, load_sambert
from speedy.families.sambert.torch_graphs import OPSET, record_feeds, sample_inputs, torch_graphs
from speedy.stages.export import ExportConfig, export


def export_sambert(model_dir: Path, out: Path) -> Manifest:
    """The export stage on a ModelScope-layout folder (the sambert family's plan)."""
    return export(model_dir, out, ExportConfig(threads=1), family=by_name("sambert"))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sambert_folder(tmp_path_factory.mktemp("sambert") / "model")


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> LoadedSambert:
    return load_sambert(model_dir)


@pytest.fixture(scope="module")
def exported(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Manifest, Path]:
    out = tmp_path_factory.mktemp("out") / "graphs"
    return export_sambert(model_dir, out), out


@pytest.fixture(scope="module")
def graphs(exported: tuple[Manifest, Path]) -> dict[str, Path]:
    manifest, out = exported
    return {name: out / comp.file for name, comp in manifest.components.items()}


def test_every_graph_written_with_metadata(graphs: dict[str, Path]) -> None:
    """All seven graphs exist at the module's opset and carry the loop config."""
    import onnx

    assert list(graphs) == list(GRAPH_NAMES)
    for name, path in graphs.items():
        model = onnx.load(str(path))
        assert model.opset_import[0].version == OPSET
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["speedy.graph"] == name and CONFIG_METADATA_KEY in meta and meta["sample_rate"] == "16000"


def test_every_graph_matches_pytorch(exported: tuple[Manifest, Path]) -> None:
    """ONNX Runtime equals PyTorch on every graph (recorded feeds of a sentence of another length), and the
    exported loop equals the PyTorch forward: the stage's figures, one per graph and one for the loop."""
    figures = {f["component"]: f for f in exported[0].extra["parity"]}
    assert set(figures) == {*GRAPH_NAMES, "acoustic-loop"}
    assert all(f["value"] < 1e-4 for n, f in figures.items() if n in GRAPH_NAMES), figures
    assert figures["acoustic-loop"]["value"] <= figures["acoustic-loop"]["tol"]


@pytest.mark.parametrize("band", [0, 2, 5])
def test_decoder_step_graph_any_band(loaded: LoadedSambert, graphs: dict[str, Path], band: int) -> None:
    """The decoder_step graph follows its band inputs like PyTorch (bands not seen while tracing)."""
    import onnxruntime as ort

    feeds = record_feeds(loaded.acoustic, None, sample_inputs(loaded.acoustic, 15, seed=3), step_index=6)[
        "decoder_step"
    ]
    feeds["x_band"] = feeds["h_band"] = np.array(band, np.int64)
    sess = ort.InferenceSession(str(graphs["decoder_step"]), providers=["CPUExecutionProvider"])
    for got, want in zip(sess.run(None, feeds), torch_graphs(loaded.acoustic)["decoder_step"](feeds)):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_host_loop_reproduces_forward(loaded: LoadedSambert, graphs: dict[str, Path]) -> None:
    """The torch-free loop over the ONNX graphs gives forward's durations and band, and its mel to 1e-4."""
    loop = SambertLoop.from_dir(graphs["encoder"].parent, threads=1)
    for length, seed in ((1, 0), (5, 1), (31, 2)):
        inputs = sample_inputs(loaded.acoustic, length, seed)
        want = loaded.acoustic(inputs)
        got = loop.acoustic(inputs)
        np.testing.assert_array_equal(got.durations, want.durations.numpy())
        assert got.band == want.band
        np.testing.assert_allclose(got.mel, want.mel.numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(got.log_durations, want.log_durations.numpy(), atol=1e-5)


def test_loop_speed_and_controls(loaded: LoadedSambert, graphs: dict[str, Path]) -> None:
    """Identity controls change nothing; speed 2 roughly halves the frames; a pitch shift changes the mel."""
    loop = SambertLoop.from_dir(graphs["encoder"].parent, threads=1)
    inputs = sample_inputs(loaded.acoustic, 12, seed=9)
    base = loop.acoustic(inputs)
    assert np.array_equal(loop.acoustic(inputs, controls=[1.0, 0.0, 1.0, 0.0]).mel, base.mel)
    fast = loop.acoustic(inputs, speed=2.0)
    assert abs(int(fast.durations.sum()) - int(base.durations.sum()) / 2) <= len(inputs)
    assert not np.array_equal(loop.acoustic(inputs, controls=[1.0, 1.0, 1.0, 0.0]).mel, base.mel)


def test_whole_pipeline_waveform(loaded: LoadedSambert, graphs: dict[str, Path]) -> None:
    """Symbols → waveform through ONNX matches the PyTorch modules, is hop-exact and finite."""
    loop = SambertLoop.from_dir(graphs["encoder"].parent, threads=1)
    inputs = sample_inputs(loaded.acoustic, 20, seed=7)
    res = loop.synthesize(inputs)
    with torch.no_grad():
        want = loaded.vocoder(loaded.acoustic(inputs).mel[None])[0].numpy()
    assert res.wav is not None and res.wav.shape == (int(res.durations.sum()) * 200,)
    assert np.isfinite(res.wav).all() and np.abs(res.wav).max() <= 1.0
    np.testing.assert_allclose(res.wav, want, atol=1e-4)


def test_runtime_loop_imports_no_torch() -> None:
    """speedy.families.sambert.loop works without torch being imported."""
    code = "import sys, speedy.families.sambert.loop; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_export_refuses_non_empty_target(model_dir: Path, tmp_path: Path) -> None:
    """An existing target folder is an input error (without --force) and nothing is written next to it."""
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        export_sambert(model_dir, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"] and [p.name for p in target.iterdir()] == ["keep.txt"]


def test_export_bad_source_writes_nothing(tmp_path: Path) -> None:
    """A folder that is not a model folder fails with ModelError and leaves no output."""
    with pytest.raises(ModelError, match="not a Sambert-HifiGan model folder"):
        export_sambert(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
