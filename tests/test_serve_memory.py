"""Serving memory: the pool calls `on_idle` (malloc trim) when its last run ends, and a spawned
`speedy serve` with the default voice stays under a peak-RSS bound over a burst of requests."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pytest

from speedy.serve.workers import SynthesisPool

#: peak RSS (MB = 10^6 B) of `speedy serve` after `loadtest --memory 10`: measured 270-300 MB after 200
#: requests with the compiled lexicon, two malloc arenas and trimming (405 MB before, 443 MB in the issue);
#: the frontend's old dicts alone (+95 MB) would cross it
SERVE_PEAK_MB = 340


def test_pool_calls_on_idle_after_lone_runs_and_streams() -> None:
    """on_idle runs once per finished run and once per stream, closed early or not, when nothing else is in."""
    calls: list[str] = []
    pool = SynthesisPool(1, 1, on_idle=lambda: calls.append("trim"))
    assert asyncio.run(pool.run(lambda: 7, timeout=10)) == 7
    stream = pool.stream(lambda: iter([1, 2, 3]))
    assert next(stream) == 1
    stream.close()  # a client that went away
    assert list(pool.stream(lambda: iter([4]))) == [4]
    assert calls == ["trim"] * 3 and pool.in_flight == 0


def test_pool_calls_on_idle_only_when_the_last_run_ends() -> None:
    """With a run still in flight, a finishing run does not trim (that cost 19 % of the throughput under
    load); the last one out does."""
    calls: list[str] = []
    pool = SynthesisPool(2, 0, on_idle=lambda: calls.append("trim"))
    gate, started = threading.Event(), threading.Event()

    def blocked() -> str:
        started.set()
        assert gate.wait(10)
        return "slow"

    async def scenario() -> list[str]:
        slow = asyncio.ensure_future(pool.run(blocked, timeout=10))
        assert await asyncio.to_thread(started.wait, 10)
        assert await pool.run(lambda: "quick", timeout=10) == "quick"
        after_quick = list(calls)
        gate.set()
        assert await slow == "slow"
        return after_quick

    assert asyncio.run(scenario()) == []
    assert calls == ["trim"] and pool.in_flight == 0


@pytest.mark.integration
def test_serve_peak_rss_over_a_burst(default_onnx) -> None:  # noqa: ANN001 - fixture: the cached voice
    """10 requests (/tts and /tts/stream in turn over the evaluation texts): all succeed, peak under bound."""
    out = subprocess.run([sys.executable, "-m", "speedy.cli", "loadtest", "--spawn", "--memory", "10", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    print(report)
    assert report["requests"] == 10 and report["errors"] == 0
    assert report["server_peak_rss_mb"] <= SERVE_PEAK_MB
