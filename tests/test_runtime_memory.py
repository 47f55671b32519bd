"""Serving memory: ONNX Runtime sessions without memory patterns or CPU arena, and the peak RSS of a fresh
process that streams and synthesises a ~500-character text with the default voice."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speedy.runtime.onnx_backend import session_options

#: MiB: measured 210-226 with the compiled lexicon, block vocoding and no onnx import (342-358 before, 370
#: with ORT's arena and memory patterns; run-to-run spread ~15): the frontend's old dicts (+75) would cross it
PEAK_RSS_MB = 250


def test_sessions_keep_no_arena_or_patterns() -> None:
    """Every session the runtime makes frees per-request buffers (no arena, no pre-planned patterns)."""
    so = session_options(1)
    assert not so.enable_mem_pattern and not so.enable_cpu_mem_arena


def test_pool_threads_sleep_unless_a_component_asks() -> None:
    """Sessions are made with spinning off (SESSION_DEFAULTS); a component's own session_config wins."""
    spin = "session.intra_op.allow_spinning"
    assert session_options(2).get_session_config_entry(spin) == "0"
    assert session_options(2, config={spin: "1"}).get_session_config_entry(spin) == "1"


@pytest.mark.integration
def test_peak_rss_of_a_long_text(default_onnx: Path) -> None:
    """Load, stream and synthesise the bench's ~500-character probe in a fresh process: peak RSS stays
    under PEAK_RSS_MB (sessions ~85 MiB, numpy+ORT ~45, frontend ~17, the rest per-run buffers and audio)."""
    code = textwrap.dedent(f"""
        from speedy.bench import FIRST_AUDIO_CHARS, length_probes, read_texts
        from speedy.bench.worker import peak_rss_bytes
        from speedy.synth import Synthesizer
        s = Synthesizer.load({str(default_onnx)!r}, threads=2)
        probe = length_probes(read_texts({str(Path(__file__).parent.parent / "calibration" / "eval.txt")!r}),
                              (FIRST_AUDIO_CHARS,))[0]
        for _ in s.stream(probe):
            pass
        s.synthesize(probe)
        print(peak_rss_bytes() >> 20)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    peak = int(out.stdout.strip().splitlines()[-1])
    print(f"peak RSS {peak} MB")
    assert peak <= PEAK_RSS_MB
