"""Sambert-HifiGan through the pipeline on the random-weight fixture folder: export → info → quantize →
compile → synth, native emotions, the KAN-TTS symbol encoder, and one-line refusals of bad folders."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from click.testing import CliRunner, Result
from sambert_fixture import write_sambert_folder

from speedy.cli import main as cli
from speedy.errors import InputError, ModelError
from speedy.families.sambert.frontend import (
    EMOTIONS,
    PHONES,
    SambertUtterance,
    read_vocab,
    sentence_tokens,
    syllable_phones,
    text_to_utterances,
)

TEXT = "今天天气很好，我们一起去公园散步吧。"


def speedy(*args: str) -> Result:
    """The real CLI group in-process (errors mapped to exit codes as in a shell)."""
    return CliRunner().invoke(cli, list(args))


def one_line_error(result: Result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sambert_folder(tmp_path_factory.mktemp("ms") / "model", voices=("zhitian_emo", "zhibei_emo"))


@pytest.fixture(scope="module")
def fp32(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("art") / "fp32"
    res = speedy("export", "--from-modelscope", str(model_dir), "-o", str(out), "--threads", "1", "--json")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def quantized(fp32: Path) -> Iterator[dict[str, Path]]:
    outs = {}
    for recipe in ("int8-dynamic", "fp16", "int8-static"):
        out = fp32.parent / recipe
        res = speedy("quantize", str(fp32), "-o", str(out), "--recipe", recipe, "--calib-sentences", "3", "--json")
        assert res.exit_code == 0, res.stderr
        outs[recipe] = out
    yield outs


def test_export_writes_seven_checked_graphs(fp32: Path) -> None:
    """export --from-modelscope: 7 ONNX components, native emotions, 16 kHz facts, parity within tolerance."""
    res = speedy("info", str(fp32), "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["family"] == "sambert-hifigan"
    assert list(info["components"]) == ["encoder", "variance", "duration_step", "decoder_memory", "decoder_step",
                                        "postnet", "vocoder"]
    assert info["audio"]["sample_rate"] == 16000 and info["audio"]["hop_size"] == 200
    assert info["emotions"]["kind"] == "native"
    assert {"中性": 1, "喜悦": 5, "悲伤": 6, "愤怒": 2, "surprise": 7}.items() <= info["emotions"]["names"].items()
    manifest = json.loads((fp32 / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["frontend"]["name"] == "sambert-kantts" and len(manifest["frontend"]["symbols"]) == 147
    assert manifest["extra"]["graphs"]["runtime"] == "sambert-loop"
    parity = {p["component"]: p for p in manifest["extra"]["parity"]}
    assert set(parity) == {*info["components"], "acoustic-loop"}
    assert all(p["value"] <= p["tol"] for p in parity.values())
    assert manifest["lineage"][-1]["options"]["voice"] == "zhitian_emo"


def test_synth_cli_writes_16k_wav(fp32: Path, tmp_path: Path) -> None:
    """speedy synth --artifact: a non-empty, finite 16 kHz WAV."""
    wav = tmp_path / "out.wav"
    res = speedy("synth", "--artifact", str(fp32), "--text", TEXT, "-o", str(wav), "--emotion", "喜悦", "--json")
    assert res.exit_code == 0, res.stderr
    audio, rate = sf.read(wav)
    assert rate == 16000 and audio.size > 1000 and np.isfinite(audio).all()
    assert json.loads(res.stdout)["sentences"] == 1


def test_each_emotion_sounds_different(fp32: Path) -> None:
    """The four labels (and a native-only name) reach the emotion embedding: every pair of outputs differs."""
    from speedy.controls import SynthesisOptions
    from speedy.synth import Synthesizer

    synth = Synthesizer.load(fp32, threads=1)
    outs = {e: synth.synthesize(TEXT, SynthesisOptions(emotion=e)).audio for e in ("中性", "喜悦", "悲伤", "愤怒", "surprise")}
    assert np.array_equal(outs["中性"], synth.synthesize(TEXT, SynthesisOptions(emotion="neutral")).audio)
    keys = list(outs)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            same = outs[a].shape == outs[b].shape and np.allclose(outs[a], outs[b])
            assert not same, f"{a} and {b} give the same audio"
    assert "surprise" in synth.describe()["voices"][0]["emotions"]
    with pytest.raises(InputError, match="valid emotions"):
        SynthesisOptions(emotion="bogus")


def test_controls_act_on_sambert(fp32: Path) -> None:
    """speed shortens, a pitch shift goes through resampling, energy scales the waveform."""
    from speedy.controls import SynthesisOptions
    from speedy.synth import Synthesizer

    synth = Synthesizer.load(fp32, threads=1)
    base = synth.synthesize(TEXT).audio
    fast = synth.synthesize(TEXT, SynthesisOptions(speed=1.6)).audio
    up = synth.synthesize(TEXT, SynthesisOptions(pitch=4.0)).audio
    loud = synth.synthesize(TEXT, SynthesisOptions(energy=1.5)).audio
    assert len(fast) < 0.85 * len(base)
    assert abs(len(up) - len(base)) < 0.05 * len(base) and not np.allclose(up[: len(base)], base[: len(up)])
    np.testing.assert_allclose(loud, 1.5 * base, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("recipe, precision", [("int8-dynamic", "int8-dynamic"), ("fp16", "fp16"),
                                               ("int8-static", "int8-static")])
def test_quantized_artifacts_synthesize(quantized: dict[str, Path], recipe: str, precision: str) -> None:
    """Each recipe quantizes per graph (duration LSTM kept float by INT8) and the artifact still speaks."""
    from speedy.synth import Synthesizer

    manifest = json.loads((quantized[recipe] / "manifest.json").read_text(encoding="utf-8"))
    precisions = {n: c["precision"] for n, c in manifest["components"].items()}
    assert precisions["decoder_step"] == precision
    if recipe != "fp16":
        assert precisions["duration_step"] == "fp32"
        err = manifest["extra"]["quantize"]["loop_error"]
        assert err["durations_changed"] <= err["symbols"] // 10 and err["mel_rel"] < 0.1
    result = Synthesizer.load(quantized[recipe], threads=1).synthesize(TEXT)
    assert result.audio.size > 1000 and np.isfinite(result.audio).all()


def test_mixed_recipe_refused(fp32: Path, tmp_path: Path) -> None:
    res = speedy("quantize", str(fp32), "-o", str(tmp_path / "m"), "--recipe", "mixed")
    assert res.exit_code == 2 and "int8-dynamic, int8-static or fp16" in one_line_error(res)
    assert not (tmp_path / "m").exists()


def test_compiled_graphs_match_source(fp32: Path, tmp_path: Path) -> None:
    """The onnxruntime compiler handles the graph components; the compiled loop matches its source."""
    from dataclasses import replace

    from speedy.artifacts import read_manifest, write_manifest
    from speedy.stages.compile import CompileConfig
    from speedy.stages.compile_ort import compile_ort
    from speedy.stages.loop_check import verify_loop
    from speedy.synth import Synthesizer

    src = read_manifest(fp32)
    out = tmp_path / "ort"
    out.mkdir()
    comps, notes = compile_ort(src, fp32, out, CompileConfig(backend="onnxruntime", threads=1), None, lambda m: None)
    compiled = replace(src, components=comps, extra={**dict(src.extra), "compile": notes})
    figures = verify_loop(src, fp32, compiled, out, threads=1)
    assert all(f["kind"] != "max_abs" or f["value"] <= f["tol"] for f in figures)
    write_manifest(out, compiled)
    assert Synthesizer.load(out, threads=1).synthesize("你好。").audio.size > 0


def test_compile_cli(fp32: Path, tmp_path: Path) -> None:
    res = speedy("compile", str(fp32), "-o", str(tmp_path / "c"), "--backend", "onnxruntime", "--threads", "1")
    assert res.exit_code == 0, res.stderr


def _nsf(root: Path) -> Path:
    cfg_path = root / "voices" / "zhitian_emo" / "am" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    cfg["Model"]["KanTtsSAMBERT"]["params"]["NSF"] = True
    cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return root


@pytest.mark.parametrize("case, match", [("empty", "not a Sambert-HifiGan model folder"),
                                         ("voice", "voice 'nobody' not found"), ("nsf", "NSF")])
def test_bad_model_folder_exit_3_writes_nothing(model_dir: Path, tmp_path: Path, case: str, match: str) -> None:
    """Not a model folder, a missing voice, an unsupported variant: exit 3, one line, no output folder."""
    src, voice = model_dir, []
    if case == "empty":
        src = tmp_path / "empty"
        src.mkdir()
    elif case == "voice":
        voice = ["--voice", "nobody"]
    else:
        src = _nsf(write_sambert_folder(tmp_path / "nsf"))
    out = tmp_path / "out"
    res = speedy("export", "--from-modelscope", str(src), *voice, "-o", str(out))
    assert res.exit_code == 3
    assert match in one_line_error(res)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_symbols_follow_kantts_rules() -> None:
    """Pinyin → phones as py2phoneMap.txt, and ttsfrd's token layout on 北京…怎么样 (segmentation aside)."""
    table = {"a": "ga a_c", "ou": "go ou_c", "er": "ge er_c", "chi": "ch_c ih_c", "zi": "z_c ii_c", "ju": "j_c v_c",
             "jun": "j_c vn_c", "yuan": "y_c van_c", "xiu": "xx_c iou_c", "gui": "g_c uei_c", "lun": "l_c uen_c",
             "wei": "w_c ei_c", "lve": "l_c ve_c", "nv": "n_c v_c"}
    assert {k: " ".join(syllable_phones(k)) for k in table} == table
    assert syllable_phones("dian", erhua=True) == ("d_c", "ianr_c")
    assert len(PHONES) == 140 and EMOTIONS[5] == "happy"
    toks = sentence_tokens("北京怎么样？")
    line = SambertUtterance("", tuple(toks), 0.0).symbols("happy")
    assert line.split(" ")[:5] == ["{b_c$tone3$s_begin$word_begin$emotion_happy$F7}",
                                   "{ei_c$tone3$s_end$word_middle$emotion_happy$F7}",
                                   "{j_c$tone1$s_begin$word_middle$emotion_happy$F7}",
                                   "{ing_c$tone1$s_end$word_end$emotion_happy$F7}",
                                   "{#1$tone_none$s_none$word_none$emotion_none$F7}"]
    assert toks[-1].phone == "#4" and [t.phone for t in toks[5:7]] == ["z_c", "en_c"]


def test_long_text_split_to_model_limit() -> None:
    """Sentences longer than the model's symbol limit are cut at #3, then #1 breaks, each ending in #4."""
    parts = list(text_to_utterances("我们今天一起去公园散步，然后去图书馆看书，最后回家吃饭。", max_symbols=24))
    assert len(parts) > 1 and all(len(p.tokens) <= 24 and p.tokens[-1].phone == "#4" for p in parts)


def test_vocab_from_dict_files_and_size_mismatch(tmp_path: Path) -> None:
    """dict/*_dict.txt lists are used when present; a table size the checkpoint cannot have is refused."""
    d = tmp_path / "v" / "dict"
    d.mkdir(parents=True)
    (d / "sy_dict.txt").write_text("\n".join(["@a_c", "@b_c", "#1", "#4"]), encoding="utf-8")
    vocab, origin = read_vocab(tmp_path / "v", ["F7"], {"sy": 6})
    assert vocab.sy == ("a_c", "b_c", "#1", "#4", "_", "~") and "dict" in origin
    with pytest.raises(ModelError, match="sy table has 99 rows"):
        read_vocab(tmp_path / "v", ["F7"], {"sy": 99})


def test_sambert_synth_imports_no_torch(fp32: Path) -> None:
    """The runtime path (frontend encoder, host loop, vocoder) runs without importing torch."""
    code = ("import sys\nfrom speedy.synth import Synthesizer\n"
            f"r = Synthesizer.load({str(fp32)!r}, threads=1).synthesize('你好。')\n"
            "assert r.audio.size > 0\nassert 'torch' not in sys.modules, 'torch imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
