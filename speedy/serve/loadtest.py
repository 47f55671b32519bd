"""Bounded load test on loopback: N concurrent clients for S seconds against POST /tts.

    speedy loadtest --spawn --clients 16 --seconds 60
    speedy loadtest --spawn --ray --clients 16 --seconds 60 --json-out docs/load-ray.json
    speedy loadtest --url http://127.0.0.1:8000 --clients 4 --seconds 30
    speedy loadtest --spawn --memory 200 --json

Prints requests/s, audio seconds per second, p50/p95 latency of successful requests, the 503 share and
every other error; with --spawn also the server's resident memory (VmRSS, and VmHWM: its peak).
--spawn --ray starts `speedy serve --ray` instead (a local Ray; one single-thread replica per core, each
admitting its share of what `speedy serve` admits: workers + queue); its replicas are other processes,
so no memory figures then.
--memory N sends N requests instead (2 clients; /tts and /tts/stream in turn, over the evaluation
texts of calibration/eval.txt that fit the server's limit) and reports the server's peak RSS after them.
Only loopback addresses are allowed; every loop stops by itself.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from speedy.errors import InputError, ModelError

_LOGGER = logging.getLogger(__name__)

#: 30-character request, as in the service target (p95 ≤ 1.5 s at 4 clients on 2 cores).
TEXT = "今天天气很好，我们一起去公园散步，顺便买一些新鲜的水果。"


def _client(url: str, deadline: float, out: list[tuple[int, float, float]], lock: threading.Lock) -> None:
    import httpx
    import soundfile as sf

    with httpx.Client(timeout=60) as http:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                r = http.post(f"{url}/tts", json={"text": TEXT})
                code = r.status_code
                audio = sf.info(io.BytesIO(r.content)).duration if code == 200 else 0.0
            except Exception as e:  # a transport error is a result to count, not a crash
                code, audio = -1, 0.0
                _LOGGER.warning("transport error: %s: %s", type(e).__name__, e)
            with lock:
                out.append((code, time.perf_counter() - t0, audio))
            if code == 503:
                time.sleep(0.2)


def _check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise InputError(f"refusing to load {host}: loopback addresses only")


def process_memory(pid: int) -> dict[str, float]:
    """{"rss_mb", "peak_rss_mb"} of a local process (MB = 10^6 bytes, as `speedy bench` reports): VmRSS and
    VmHWM from /proc/PID/status; empty where /proc is not readable."""
    out = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = round(int(value.split()[0]) * 1024 / 1e6, 1)
    return out


#: the evaluation texts the memory run cycles through
EVAL_TEXTS = Path(__file__).resolve().parents[2] / "calibration" / "eval.txt"


def memory_texts(max_chars: int = 500) -> list[str]:
    """calibration/eval.txt's texts that fit the server's limit, else the load test's sentence."""
    if not EVAL_TEXTS.is_file():
        return [TEXT]
    texts = [t.strip() for t in EVAL_TEXTS.read_text(encoding="utf-8").splitlines()]
    return [t for t in texts if t and len(t) <= max_chars] or [TEXT]


def run_requests(url: str, requests: int, clients: int = 2) -> dict[str, float | None]:
    """Send `requests` requests from `clients` threads, /tts and /tts/stream in turn over memory_texts();
    returns counts, errors and seconds."""
    import httpx

    _check_loopback(url)
    texts = memory_texts()
    jobs = iter(range(requests))
    lock = threading.Lock()
    codes: list[int] = []

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    k = next(jobs, None)
                if k is None:
                    return
                route = "/tts" if k % 2 == 0 else "/tts/stream"
                try:
                    with http.stream("POST", f"{url}{route}", json={"text": texts[k % len(texts)]}) as r:
                        for _ in r.iter_bytes():
                            pass
                        code = r.status_code
                except httpx.HTTPError as e:
                    _LOGGER.warning("transport error: %s: %s", type(e).__name__, e)
                    code = -1
                with lock:
                    codes.append(code)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "requests": len(codes),
        "ok": codes.count(200),
        "errors": len(codes) - codes.count(200),
        "texts": len(texts),
        "clients": clients,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_load(url: str, clients: int, seconds: float) -> dict[str, float | None]:
    _check_loopback(url)
    results: list[tuple[int, float, float]] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    threads = [threading.Thread(target=_client, args=(url, deadline, results, lock)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 120)
    wall = time.perf_counter() - start
    ok = sorted(lat for code, lat, _ in results if code == 200)
    n = len(results)
    return {
        "clients": clients,
        "seconds": round(wall, 1),
        "requests": n,
        "requests_per_s": round(n / wall, 2),
        "ok": len(ok),
        "audio_s_per_s": round(sum(a for _, _, a in results) / wall, 2),
        "p50_s": round(statistics.median(ok), 3) if ok else None,
        "p95_s": round(ok[min(len(ok) - 1, int(0.95 * len(ok)))], 3) if ok else None,
        "share_503": round(sum(1 for c, _, _ in results if c == 503) / n, 3) if n else 0.0,
        "errors": sum(1 for c, _, _ in results if c not in (200, 503)),
    }


#: what `speedy serve` admits by default on 2 cores (2 workers + a queue of 16), split over --ray replicas
SERVE_ADMITS = 18


def serve_options(ray: bool) -> list[str]:
    """`speedy serve`'s options in the spawned server: none, or --ray with one single-thread replica per core
    admitting SERVE_ADMITS in all."""
    if not ray:
        return []
    replicas = max(1, len(os.sched_getaffinity(0)))
    return ["--ray", "--replicas", str(replicas), "--max-ongoing-requests", str(-(-SERVE_ADMITS // replicas))]


def _spawn(port: int, ray: bool = False, wait_s: float = 300.0) -> subprocess.Popen:
    """Start the server (its output on stderr: stdout is the report's) and wait for /healthz."""
    cmd = [sys.executable, "-m", "speedy.cli", "-q", "serve", "--port", str(port), *serve_options(ray)]
    proc = subprocess.Popen(cmd, stdout=sys.stderr)
    import httpx

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise ModelError("the spawned server did not come up (see its log above)")


@dataclass(frozen=True)
class LoadTestConfig:
    """One load test. url: a loopback server, or None with spawn (start `speedy serve` on a free port);
    clients, seconds: the closed loop's size and length; memory: send this many requests instead and
    report the spawned server's peak RSS; ray: spawn `speedy serve --ray`; out: also write the report
    (JSON, temp file + rename)."""

    url: str | None = None
    spawn: bool = False
    clients: int = 16
    seconds: float = 60.0
    memory: int = 0
    ray: bool = False
    out: Path | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= 256 or not 0 < self.seconds <= 600:
            raise InputError("--clients must be 1..256 and --seconds 0..600")
        if not 0 <= self.memory <= 100_000 or (self.memory and not self.spawn):
            raise InputError("--memory must be 1..100000 and needs --spawn (it reads the server's /proc entry)")
        if self.ray and (not self.spawn or self.memory):
            raise InputError("--ray needs --spawn, and not --memory (Ray's replicas are other processes)")
        if self.url is None and not self.spawn:
            raise InputError("give --url or --spawn")


def run_loadtest(config: LoadTestConfig) -> dict[str, Any]:
    """Run the load (or memory) test of `config`; returns the report (see the module docstring)."""
    proc = None
    url = config.url
    if config.spawn:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc, url = _spawn(port, config.ray), f"http://127.0.0.1:{port}"
    assert url is not None  # __post_init__: url or spawn
    try:
        loaded = process_memory(proc.pid) if proc is not None else {}
        figures = run_requests(url, config.memory) if config.memory else run_load(url, config.clients, config.seconds)
        report: dict[str, Any] = dict(figures)
        if config.spawn:
            report["server"] = " ".join(["speedy serve", *serve_options(config.ray)])
            report["cores"] = len(os.sched_getaffinity(0))
        if proc is not None and not config.ray:
            report |= {
                "server_rss_after_load_mb": loaded.get("rss_mb"),
                **{f"server_{k}": v for k, v in process_memory(proc.pid).items()},
            }
    finally:
        if proc is not None:
            proc.terminate()  # SIGTERM: drain (with --ray: Serve shuts down, then the local Ray)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                _LOGGER.warning("the server did not stop within 120 s of SIGTERM; killed")
                proc.kill()
    if config.out is not None:
        tmp = config.out.with_name(f".{config.out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, config.out)
    return report
