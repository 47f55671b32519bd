"""The ONNX run-time path never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.mark.integration
def test_synth_on_onnx_imports_no_torch(default_onnx: Path, tmp_path: Path) -> None:
    """Loading the ONNX artifact and synthesising works with torch made unimportable."""
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        from speedy.synth import Synthesizer
        s = Synthesizer.load({str(default_onnx)!r}, threads=1)
        r = s.to_wav("你好，世界。", {str(tmp_path / 'x.wav')!r})
        assert r.duration_s > 0.3, r.duration_s
        import speedy.frontend, speedy.runtime.onnx_backend, speedy.synth
        print("torch" in sys.modules and sys.modules["torch"] is not None)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
    assert (tmp_path / "x.wav").stat().st_size > 10_000
