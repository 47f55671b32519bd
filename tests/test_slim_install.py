"""The slim install: `pip install .[serve]` into a fresh venv brings no torch, and synthesises and serves
from an exported ONNX artifact. Downloads the slim set from PyPI (90 s here); deselect with -m "not slim"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slim]
ROOT = Path(__file__).resolve().parent.parent


def test_slim_install_synthesises_without_torch(default_onnx: Path, tmp_path: Path) -> None:
    """No torch (nor the converters) in the venv; `speedy synth` and the app's import work on ONNX."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.lock"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "speedy", src / "speedy", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          "-c", str(src / "requirements.lock"), f"{src}[serve]"],
                         capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    freeze = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True, env=env).stdout.lower()
    for heavy in ("torch==", "safetensors==", "tflite==", "onnxscript=="):
        assert heavy not in freeze, heavy
    wav = tmp_path / "slim.wav"
    synth = subprocess.run([str(venv / "bin" / "speedy"), "synth", "--artifact", str(default_onnx), "--text",
                            "你好，这是精简安装。", "-o", str(wav), "--threads", "1", "--json"],
                           capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr[-3000:]
    assert wav.stat().st_size > 24000
    check = ("import speedy, speedy.serve.app, sys; from speedy.synth import Synthesizer; "
             f"s = Synthesizer.load({str(default_onnx)!r}, threads=1); "
             "assert s.vocoder_context_frames == 22; assert 'torch' not in sys.modules; "
             "assert speedy.__file__.startswith(sys.prefix), speedy.__file__")
    out = subprocess.run([py, "-c", check], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
