"""`speedy synth` end to end: exit codes, bad input, and never a partial or empty WAV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (what CI scripts do)."""
    return subprocess.run([sys.executable, "-m", "speedy.cli", *args], input=stdin, capture_output=True,
                          timeout=600, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    err = proc.stderr.decode()
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert lines, err
    assert "Traceback" not in err, err
    return lines[-1]


@pytest.mark.parametrize("args, stdin, code, match", [
    (["--text", "   "], None, 2, "empty"),
    (["-"], b"\xe4\xbd\xa0\xff\xfe", 2, "invalid UTF-8 at byte offset 3"),
    (["--text", "你好", "--speed", "0"], None, 2, r"speed must be in \[0.5, 2\]"),
    (["--text", "你好", "--speed", "nan"], None, 2, "speed must be in"),
    (["--text", "你好", "--pitch", "-13"], None, 2, r"pitch must be in \[-12, 12\]"),
    (["--text", "你好", "--energy", "inf"], None, 2, "energy must be in"),
    (["--text", "你好", "--pitch-range", "-1"], None, 2, "pitch_range must be in"),
    (["--text", "你好", "--emotion", "开心"], None, 2, "valid emotions: 中性"),
    ([], None, 2, "no text"),
])
def test_bad_input_before_model(tmp_path: Path, args: list[str], stdin: bytes | None, code: int, match: str) -> None:
    """Bad text and controls exit 2 with one line naming the problem, and write no file."""
    out = tmp_path / "o.wav"
    proc = run("synth", *args, "-o", str(out), stdin=stdin)
    assert proc.returncode == code, proc.stderr.decode()
    import re

    assert re.search(match, one_line_error(proc))
    assert not out.exists()


def test_input_file_errors(tmp_path: Path) -> None:
    """A directory or missing file as input exits 2; an output folder under a file exits 4."""
    assert run("synth", str(tmp_path), "-o", str(tmp_path / "o.wav")).returncode == 2
    assert run("synth", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o.wav")).returncode == 2
    (tmp_path / "afile").write_text("x")
    proc = run("synth", "--text", "你好", "-o", str(tmp_path / "afile" / "o.wav"))
    assert proc.returncode == 4 and "not a folder" in one_line_error(proc)


def test_missing_output_folders_are_created(tmp_path: Path) -> None:
    """`-o a/b/o.wav` creates a/ and a/b/, as `mkdir -p` would (README: output folders get created)."""
    out = tmp_path / "a" / "b" / "o.wav"
    proc = run("synth", "--text", "你好", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 44


def test_bad_artifact_exit_3(tmp_path: Path) -> None:
    """An artifact folder without a manifest exits 3."""
    proc = run("synth", "--text", "你好", "--artifact", str(tmp_path), "-o", str(tmp_path / "o.wav"))
    assert proc.returncode == 3 and "manifest" in one_line_error(proc)


@pytest.mark.integration
@pytest.mark.parametrize("text", ["。，！？……", "😀😀🎉", "\u200b\u200b"])
def test_nothing_to_say(default_onnx: Path, tmp_path: Path, text: str) -> None:
    """Only punctuation, only emoji or invisible characters: exit 2, no WAV."""
    out = tmp_path / "o.wav"
    proc = run("synth", "--text", text, "--artifact", str(default_onnx), "-o", str(out))
    assert proc.returncode == 2, proc.stderr.decode()
    assert "nothing to say" in one_line_error(proc)
    assert not out.exists()


@pytest.mark.integration
def test_synth_file_json(default_onnx: Path, tmp_path: Path) -> None:
    """A text file becomes a 16-bit mono WAV at 24 kHz; --json reports it."""
    src = tmp_path / "t.txt"
    src.write_text("今天天气很好，我们去公园散步吧。", encoding="utf-8")
    out = tmp_path / "o.wav"
    proc = run("synth", str(src), "-o", str(out), "--json", "--threads", "2")
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert set(info) >= {"output", "audio_seconds", "sample_rate", "characters", "rtf"}
    data, sr = sf.read(out, dtype="int16")
    meta = sf.info(out)
    assert sr == 24000 and meta.subtype == "PCM_16" and meta.channels == 1
    assert abs(len(data) / sr - info["audio_seconds"]) < 0.01
    assert 1.5 < info["audio_seconds"] < 8 and data.std() > 300
    assert info["characters"] == 16
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no temp file left behind
