"""Bounded load test on loopback: N concurrent clients for S seconds against POST /tts.

    python -m speedy.serve.loadtest --spawn --clients 16 --seconds 60
    python -m speedy.serve.loadtest --url http://127.0.0.1:8000 --clients 4 --seconds 30

Prints requests/s, audio seconds per second, p50/p95 latency of successful requests, the 503 share and
every other error. Only loopback addresses are allowed; every loop stops by itself.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

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
                print(f"transport error: {type(e).__name__}: {e}", file=sys.stderr)
            with lock:
                out.append((code, time.perf_counter() - t0, audio))
            if code == 503:
                time.sleep(0.2)


def run_load(url: str, clients: int, seconds: float) -> dict[str, float]:
    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise SystemExit(f"refusing to load {host}: loopback addresses only")
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
        "clients": clients, "seconds": round(wall, 1), "requests": n, "requests_per_s": round(n / wall, 2),
        "ok": len(ok), "audio_s_per_s": round(sum(a for _, _, a in results) / wall, 2),
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
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not 1 <= args.clients <= 256 or not 0 < args.seconds <= 600:
        raise SystemExit("--clients must be 1..256 and --seconds 0..600")
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
        report = run_load(url, args.clients, args.seconds)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:>15}: {v}")


if __name__ == "__main__":
    main()
