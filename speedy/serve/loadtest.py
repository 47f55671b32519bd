"""Bounded load test on loopback: N concurrent clients for S seconds against POST /tts.

    python -m speedy.serve.loadtest --spawn --clients 16 --seconds 60
    python -m speedy.serve.loadtest --url http://127.0.0.1:8000 --clients 4 --seconds 30
    python -m speedy.serve.loadtest --spawn --memory 200 --json

Prints requests/s, audio seconds per second, p50/p95 latency of successful requests, the 503 share and
every other error; with --spawn also the server's resident memory (VmRSS, and VmHWM: its peak).
--memory N sends N requests instead (2 clients; /tts and /tts/stream in turn, over the evaluation
texts of calibration/eval.txt that fit the server's limit) and reports the server's peak RSS after them.
Only loopback addresses are allowed; every loop stops by itself.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

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
        raise SystemExit(f"refusing to load {host}: loopback addresses only")


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


def _spawn(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "speedy.cli", "-q", "serve", "--port", str(port)])
    import httpx

    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit("the spawned server did not come up")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="server base URL (loopback only)")
    ap.add_argument("--spawn", action="store_true", help="start 'speedy serve' on a free loopback port first")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--memory",
        type=int,
        default=0,
        metavar="N",
        help="send N requests (2 clients) and report the spawned server's peak RSS",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 600:
        raise SystemExit("--clients must be 1..256 and --seconds 0..600")
    if not 0 <= args.memory <= 100_000 or (args.memory and not args.spawn):
        raise SystemExit("--memory must be 1..100000 and needs --spawn (it reads the server's /proc entry)")
    proc = None
    url = args.url
    if args.spawn:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc, url = _spawn(port), f"http://127.0.0.1:{port}"
    if url is None:
        raise SystemExit("give --url or --spawn")
    try:
        loaded = process_memory(proc.pid) if proc is not None else {}
        if args.memory:
            report = run_requests(url, args.memory)
        else:
            report = run_load(url, args.clients, args.seconds)
        if proc is not None:
            report |= {
                "server_rss_after_load_mb": loaded.get("rss_mb"),
                **{f"server_{k}": v for k, v in process_memory(proc.pid).items()},
            }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>25}: {v}")


if __name__ == "__main__":
    main()
