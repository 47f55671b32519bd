"""export → quantize → synth on the real default voice, and the stage contract on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speedy.artifacts import read_manifest


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speedy.cli", *args], capture_output=True, text=True, timeout=900)


@pytest.mark.integration
@pytest.mark.parametrize("recipe", ["int8-dynamic", "int8-static", "fp16"])
def test_quantize_then_synth(default_onnx: Path, tmp_path: Path, recipe: str) -> None:
    """Each recipe writes a valid, smaller artifact that `speedy synth --artifact` speaks with."""
    out = tmp_path / recipe
    proc = cli("quantize", str(default_onnx), "-o", str(out), "--recipe", recipe, "--calib-sentences", "6", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)  # stdout is exactly one JSON object (ORT's prints go to stderr)
    m = read_manifest(out)
    assert m.lineage[-1].stage == "quantize" and m.lineage[-1].options["recipe"] == recipe
    src_size = sum((default_onnx / c.file).stat().st_size for c in m.components.values())
    assert sum(c["size_bytes"] for c in info["components"].values()) < src_size
    wav = tmp_path / "o.wav"
    proc = cli("synth", "--text", "你好，欢迎。", "--artifact", str(out), "-o", str(wav), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    import soundfile as sf

    audio, sr = sf.read(wav)
    assert sr == 24000 and len(audio) > sr * 0.5 and np.std(audio) > 0.01


@pytest.mark.integration
def test_export_parity_is_recorded(default_onnx: Path) -> None:
    """The cached export carries its ONNX-vs-PyTorch figures within tolerance."""
    parity = {(p["component"], p["output"]): p for p in read_manifest(default_onnx).extra["parity"]}
    assert parity[("acoustic", "durations")]["value"] == 0
    assert parity[("acoustic", "mel")]["value"] <= 1e-3
    assert parity[("vocoder", "wav")]["value"] >= 40


def test_quantize_bad_input(tmp_path: Path) -> None:
    """No manifest → exit 3; unknown recipe → exit 2; nothing written."""
    proc = cli("quantize", str(tmp_path), "-o", str(tmp_path / "q"), "--recipe", "int8-static")
    assert proc.returncode == 3 and "manifest" in proc.stderr
    proc = cli("quantize", str(tmp_path), "-o", str(tmp_path / "q"), "--recipe", "int4")
    assert proc.returncode == 2 and "unknown recipe" in proc.stderr
    assert not (tmp_path / "q").exists()


@pytest.mark.integration
def test_quantize_refuses_non_chinese_calibration(default_onnx: Path, tmp_path: Path) -> None:
    """An empty or non-Chinese calibration file is exit 2 with nothing half-written."""
    for content in ("", "hello world\nthis is english\n"):
        calib = tmp_path / "c.txt"
        calib.write_text(content, encoding="utf-8")
        proc = cli("quantize", str(default_onnx), "-o", str(tmp_path / "q"), "--recipe", "int8-static",
                   "--calib", str(calib))
        assert proc.returncode == 2, proc.stderr[-500:]
        assert not (tmp_path / "q").exists()
        assert [p for p in tmp_path.iterdir() if p.name.startswith(".q")] == []


@pytest.mark.integration
def test_existing_output_needs_force(default_onnx: Path, tmp_path: Path) -> None:
    """An existing output folder is refused without --force (exit 2)."""
    (tmp_path / "q").mkdir()
    proc = cli("quantize", str(default_onnx), "-o", str(tmp_path / "q"), "--recipe", "fp16")
    assert proc.returncode == 2 and "--force" in proc.stderr
