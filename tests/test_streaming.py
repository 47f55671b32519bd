"""Streaming inside a sentence: a short first piece, chunked vocoding with receptive-field context, and
streamed audio equal to one-shot audio for every artifact format the suite can make."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402

from speedy.artifacts import read_manifest  # noqa: E402
from speedy.frontend.split import split_first  # noqa: E402
from speedy.runtime import RuntimeOptions, load_runner  # noqa: E402
from speedy.runtime.receptive import context_frames, conv_width, onnx_width  # noqa: E402
from speedy.synth import chunk_sizes, vocode_chunks, vocode_padded  # noqa: E402

TEXT = "据了解，新建成的跨江大桥全长四点六公里，双向六车道。今年上半年，全省新能源汽车产量同比增长了百分之三十五。"


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10·log10(signal energy / error energy); inf when equal."""
    err = float(np.sum((test.astype(np.float64) - reference) ** 2))
    return float("inf") if err == 0 else 10.0 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / err)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random voice as torch and ONNX artifacts."""
    root = tmp_path_factory.mktemp("tiny")
    torch_dir = tiny_voice.make_torch_artifact(root / "torch")
    return {"torch": torch_dir, "onnx": tiny_voice.make_onnx_artifact(torch_dir, root / "onnx")}


def test_split_first_prefers_the_first_comma() -> None:
    """The first piece ends at its first comma when that is short, else at a word end; short text is kept."""
    assert split_first("据了解，新建成的跨江大桥。", 10) == ["据了解，", "新建成的跨江大桥。"]
    head, rest = split_first("本周末全市将有二十多家博物馆延长开放时间。", 10)
    assert 5 <= len(head) <= 10 and head + rest == "本周末全市将有二十多家博物馆延长开放时间。"
    assert split_first("你好，欢迎。", 10) == ["你好，欢迎。"]


@pytest.mark.parametrize(
    ("piece", "head"),
    [
        ("我的家乡是南方的一座小镇。", "我的家乡"),  # 我的家乡 | 是…: a prosodic boundary, not 是 | 南方
        ("请于二零二六年一月十五日前完成。", "请于"),  # never inside a spoken number (二零二 | 六年)
        ("这家公司的CFO昨天宣布了计划。", "这家公司的"),  # nor inside a Latin word (C | FO)
        ("炊烟袅袅升起，村庄安静下来。", "炊烟袅袅升起，"),  # a clause of 6 + its comma stays whole
        ("为什么飞机在天上飞的时候会留下白线？", "为什么飞机"),  # the phrase end (#2) before a word end
    ],
)
def test_split_first_cuts_at_a_prosodic_boundary(piece: str, head: str) -> None:
    """A long first clause is cut where a reader could pause, within 2..6 characters (FIRST_PIECE_CHARS)."""
    assert split_first(piece, 6) == [head, piece[len(head) :]]


def test_conv_width_arithmetic() -> None:
    """A conv adds (k−1)·d at its rate; a transposed conv multiplies the rate by its stride."""
    assert conv_width(7, 1, 1, 1.0, False) == (6.0, 1.0)
    assert conv_width(3, 27, 1, 3.0, False) == (18.0, 3.0)
    assert conv_width(6, 1, 3, 1.0, True) == (5 / 3, 3.0)
    assert context_frames(41.75) == 22


@pytest.mark.parametrize("fmt", ["onnx", "torch"])
def test_chunked_vocoding_is_exact_on_the_tiny_voice(tiny: dict[str, Path], fmt: str) -> None:
    """With the receptive field read from the graph (ONNX) or the layers (torch), chunks join exactly."""
    m = read_manifest(tiny[fmt])
    vocoder = load_runner(m, "vocoder", tiny[fmt], RuntimeOptions(threads=1))
    width = vocoder.receptive_field_frames
    # tiny MB-MelGAN: kernel 7, strides 3/5/5, dilations 1/3, 15-tap PQMF (torch misses the functional PQMF conv)
    assert width == pytest.approx(11.83, abs=0.06)
    mel = np.random.default_rng(0).standard_normal((1, 90, tiny_voice.N_MELS)).astype(np.float32)
    hop = m.audio.hop_size
    one = vocode_padded(vocoder, mel, m.audio.min_vocoder_frames, hop)
    context = context_frames(width)
    parts = list(vocode_chunks(vocoder, mel, context, chunk_sizes(5, 40), m.audio.min_vocoder_frames, hop))
    assert [last for _, last in parts] == [False] * (len(parts) - 1) + [True] and len(parts) >= 3
    assert snr_db(one, np.concatenate([w for w, _ in parts])) >= 60.0
    # too little context is audibly wrong: the check above is not vacuous
    short = np.concatenate([w for w, _ in vocode_chunks(vocoder, mel, 0, chunk_sizes(5, 40), 4, hop)])
    assert snr_db(one, short) < 40.0


@pytest.fixture(scope="module")
def int8_artifact(default_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default voice quantized with the int8-dynamic recipe (no calibration needed)."""
    from speedy.stages.quantize import QuantRecipe, quantize

    out = tmp_path_factory.mktemp("int8") / "int8-dynamic"
    quantize(default_onnx, out, QuantRecipe.int8_dynamic())
    return out


@pytest.mark.integration
def test_default_vocoder_receptive_field(default_onnx: Path) -> None:
    """The documented MB-MelGAN figure: Σ (k−1)·d / rate over the graph's convs ≈ 41.75 frames."""
    m = read_manifest(default_onnx)
    assert onnx_width(default_onnx / m.components["vocoder"].file) == pytest.approx(41.75)


@pytest.mark.integration
def test_receptive_field_survives_compile_and_fp16(default_onnx: Path, tmp_path: Path) -> None:
    """Graphs whose convs are fused by onnxruntime (FusedConv) or whose nodes are out of order (the float16
    converter appends Casts) read the same width: a short one would make chunk joins audibly wrong."""
    import onnx
    from onnx import helper

    from speedy.runtime.onnx_backend import session_options

    src = default_onnx / read_manifest(default_onnx).components["vocoder"].file
    so = session_options(1, "extended")
    so.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    import onnxruntime as ort

    ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])
    fused = onnx.load(str(tmp_path / "optimised.onnx"))
    assert any(n.op_type == "FusedConv" for n in fused.graph.node)
    assert onnx_width(tmp_path / "optimised.onnx") == pytest.approx(41.75)
    model = onnx.load(str(src))
    nodes = list(model.graph.node)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes[len(nodes) // 2:] + nodes[: len(nodes) // 2])  # producers after consumers
    model.graph.node.append(helper.make_node("Identity", ["unused_in"], ["unused_out"]))  # dangling input
    onnx.save(model, str(tmp_path / "shuffled.onnx"))
    assert onnx_width(tmp_path / "shuffled.onnx") == pytest.approx(41.75)


@pytest.mark.integration
@pytest.mark.parametrize("fmt", ["onnx-fp32", "onnx-int8", "torch"])
def test_streamed_equals_one_shot(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """stream() yields the first sentence in several chunks, and their concatenation matches one-shot
    (whole-sentence) vocoding within SNR ≥ 40 dB; so does synthesize(), which vocodes in blocks."""
    import speedy.synth
    from speedy.synth import Synthesizer

    folder = request.getfixturevalue({"onnx-fp32": "default_onnx", "onnx-int8": "int8_artifact",
                                      "torch": "default_torch"}[fmt])
    synth = Synthesizer.load(folder, threads=2)
    assert synth.vocoder_context_frames is not None
    chunks = list(synth.stream(TEXT))
    first_sentence = [c for c in chunks if c.text == chunks[0].text]
    assert len(first_sentence) >= 2 and chunks[0].duration_s < 0.5
    assert [c.index for c in chunks] == list(range(len(chunks)))
    streamed = np.concatenate([c.audio for c in chunks])
    monkeypatch.setattr(speedy.synth, "BLOCK_FRAMES", 10**9)
    one_shot = synth.synthesize(TEXT).audio
    monkeypatch.setattr(speedy.synth, "BLOCK_FRAMES", 64)  # several blocks per sentence
    blocks = synth.synthesize(TEXT).audio
    assert streamed.shape == one_shot.shape == blocks.shape
    assert snr_db(one_shot, streamed) >= 40.0
    assert snr_db(one_shot, blocks) >= 40.0


@pytest.mark.integration
def test_pauses_between_utterances_and_none_after_the_last(synthesizer) -> None:  # noqa: ANN001
    """A sentence's pause ends its last chunk when another utterance follows; the text's last utterance
    ends on speech (the frontend yields without look-ahead, so the Synthesizer drops that pause)."""
    rate = synthesizer.sample_rate
    first, last = synthesizer.stream("今天天气很好。我们去公园吧，", chunked=False)
    assert not first.audio[-int(0.39 * rate) :].any()  # the 0.4 s after 。
    assert np.abs(last.audio[-int(0.15 * rate) :]).max() > 1e-3  # no 0.2 s after the final ，
    chunks = list(synthesizer.stream("我们去公园吧。"))
    assert len(chunks) >= 2 and np.abs(chunks[-1].audio[-int(0.15 * rate) :]).max() > 1e-3
