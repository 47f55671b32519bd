"""A client that goes away mid-stream: synthesis stops, the worker slot is freed, one line is logged."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from serve_fake import FakeSynthesizer  # noqa: E402

from speedy.serve import ServeSettings, create_app  # noqa: E402

SENTENCES = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def live() -> Iterator[tuple[str, int, FakeSynthesizer, object]]:
    """uvicorn in a thread around a slow fake synthesizer (0.1 s per sentence), 2 workers, queue 0."""
    import uvicorn

    fake = FakeSynthesizer(delay=0.1)
    settings = ServeSettings(port=free_port(), workers=2, queue=0, threads_per_worker=1)
    app = create_app(fake, settings)
    # log_config=None: uvicorn's records reach the root logger, so a traceback would show in caplog
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_config=None))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.02)
    assert srv.started
    yield "127.0.0.1", settings.port, fake, app.state.pool
    srv.should_exit = True
    thread.join(timeout=30)


def _start_stream(host: str, port: int, path: str, body: bytes) -> socket.socket:
    """POST `body` and read until the first audio bytes after the headers have arrived."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while b"\r\n\r\n" not in got or len(got) < 2000:
        data = sock.recv(65536)
        assert data, "server closed the stream early"
        got += data
    assert got.startswith(b"HTTP/1.1 200")
    return sock


@pytest.mark.parametrize("path,field", [("/tts/stream", "text"), ("/v1/audio/speech", "input")])
def test_disconnect_mid_stream_frees_the_worker(live: tuple, caplog: pytest.LogCaptureFixture, path: str,
                                                field: str) -> None:
    """Closing the socket after the first chunk stops synthesis well before the text's end, leaves the
    pool whole (nothing admitted, every worker slot free), and logs one line without a traceback."""
    host, port, fake, pool = live
    text = "这是一句测试。" * SENTENCES
    extra = ', "stream_format": "audio"' if field == "input" else ""
    body = f'{{"{field}": "{text}"{extra}}}'.encode()
    caplog.set_level(logging.INFO)
    sock = _start_stream(host, port, path, body)
    sock.close()
    deadline = time.time() + 5
    while pool.in_flight and time.time() < deadline:
        time.sleep(0.02)
    assert pool.in_flight == 0
    time.sleep(0.3)  # a run that kept going would complete more sentences meanwhile
    assert fake.completed < SENTENCES // 2
    assert fake.running == 0
    # every slot is free again: as many concurrent runs as there are workers get admitted
    assert all(pool._admit.acquire(blocking=False) for _ in range(pool.capacity))
    for _ in range(pool.capacity):
        pool._admit.release()
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def test_stream_completes_after_a_disconnect(live: tuple) -> None:
    """After a client went away the server still streams a whole text to the next client."""
    import httpx

    host, port, _fake, pool = live
    sock = _start_stream(host, port, "/tts/stream", ('{"text": "%s"}' % ("这是一句测试。" * 20)).encode())
    sock.close()
    with httpx.stream("POST", f"http://{host}:{port}/tts/stream", json={"text": "第一句。第二句。"}, timeout=10) as r:
        data = b"".join(r.iter_bytes())
    assert r.status_code == 200 and len(data) > 44
    deadline = time.time() + 5
    while pool.in_flight and time.time() < deadline:
        time.sleep(0.02)
    assert pool.in_flight == 0
