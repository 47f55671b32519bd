"""A live server on 127.0.0.1 with the real default voice: the official OpenAI client, streaming order,
concurrent clients on one shared Synthesizer, and a real browser."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from conftest import assert_same_audio, skip_or_fail_in_ci

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GUARD_S = 120.0  # read timeout and gate guard: only reached by a hung or buffering server
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "serve-screenshot.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_synth(default_onnx: Path):  # -> speedy.synth.Synthesizer
    """The one real Synthesizer (default voice, 1 intra-op thread) that the live server's pool shares."""
    from speedy.synth import Synthesizer

    return Synthesizer.load(default_onnx, threads=1)


@pytest.fixture(scope="module")
def server(live_synth) -> Iterator[str]:
    """uvicorn in a thread around `live_synth` (2 workers × 1 thread), stopped at the end."""
    import uvicorn

    from speedy.serve import ServeSettings, create_app

    settings = ServeSettings(port=free_port(), workers=2, threads_per_worker=1)
    app = create_app(live_synth, settings)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{settings.port}"
    srv.should_exit = True
    thread.join(timeout=30)


def test_openai_client_gets_a_playable_wav(server: str, tmp_path: Path) -> None:
    """The official openai package's audio.speech.create works unchanged against the server."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key="unused")
    response = client.audio.speech.create(model="tts-1", voice="alloy", input="你好，欢迎使用语音合成服务。",
                                          response_format="wav")
    out = tmp_path / "openai.wav"
    response.write_to_file(out)
    audio, sr = sf.read(out)
    assert sr == 24000 and len(audio) / sr > 1.0 and audio.std() > 0.01


def test_streaming_sends_first_sentence_before_synthesising_the_rest(
    server: str, live_synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tts/stream delivers the header and the first sentence's audio while the next sentence is held back.

    The shared Synthesizer's stream is wrapped so that, after its first sentence, it waits on a gate the
    test opens only once the client holds that audio: a server that buffered the answer would never send
    it (the client's read timeout fails the test). How fast it comes is `speedy bench`'s business."""
    import httpx

    gate = threading.Event()
    yielded: list[int] = []
    real_stream = live_synth.stream

    def gated(text: str, options=None):  # -> Iterator[AudioChunk]
        for chunk in real_stream(text, options):
            yielded.append(len(chunk.audio))
            yield chunk
            if len(yielded) == 1 and not gate.wait(GUARD_S):
                raise RuntimeError("the test never opened the gate")

    monkeypatch.setattr(live_synth, "stream", gated)
    text = "这是第一句。这是用于测试流式合成的第二句。这是第三句，也是最后一句。"
    try:
        with httpx.stream("POST", f"{server}/tts/stream", json={"text": text}, timeout=GUARD_S) as r:
            assert r.status_code == 200 and len(yielded) == 1  # the first sentence is made before the answer
            chunks = r.iter_raw()
            got = b""
            while len(got) < 44 + 2 * yielded[0]:  # WAV header + the first sentence as 16-bit PCM
                got += next(chunks)
            assert not gate.is_set() and len(yielded) == 1  # the rest is still held back
            assert got[:4] == b"RIFF" and len(got) == 44 + 2 * yielded[0]
            gate.set()
            rest = sum(len(b) for b in chunks)
    finally:
        gate.set()
    # three sentences, each in one or more vocoder chunks (the chunked stream splits them)
    assert len(yielded) >= 3 and rest == 2 * sum(yielded[1:])


def test_concurrent_clients_share_one_synthesizer(server: str, live_synth, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four clients at once on the pool's two workers and one real Synthesizer: every answer is a 200 whose
    audio equals the same text synthesised alone (same length, SNR >= 60 dB), so runs do not mix.

    The first two synthesis calls wait for each other at a barrier, so two really run at the same time."""
    import httpx

    texts = ["今天天气很好。", "我们一起去公园散步吧。", "请把窗户打开。", "明天上午九点开会。"]
    meet = threading.Barrier(2, timeout=GUARD_S)
    lock = threading.Lock()
    calls, running, most = [0], [0], [0]
    real_synthesize = live_synth.synthesize

    def counted(text: str, options=None, **kw):  # -> SynthesisResult
        with lock:
            calls[0] += 1
            first_two = calls[0] <= 2
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            if first_two:
                meet.wait()
            return real_synthesize(text, options, **kw)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(live_synth, "synthesize", counted)
    start = threading.Barrier(len(texts), timeout=GUARD_S)
    answers: dict[str, httpx.Response] = {}

    def client(text: str) -> None:
        start.wait()
        answers[text] = httpx.post(f"{server}/tts", json={"text": text}, timeout=GUARD_S)

    threads = [threading.Thread(target=client, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=GUARD_S)
    monkeypatch.undo()
    assert most[0] == 2 and calls[0] == len(texts)  # two at once, never more than the pool's workers
    for text in texts:
        r = answers[text]
        assert r.status_code == 200, r.text
        got, sr = sf.read(io.BytesIO(r.content), dtype="float32")
        assert sr == 24000
        # 16-bit PCM alone leaves ~75 dB SNR on speech; another request's audio would be far below 60
        assert_same_audio(got, live_synth.synthesize(text).audio, text)


@pytest.mark.browser
def test_page_end_to_end(server: str, tmp_path: Path) -> None:
    """Type text, pick an emotion, synthesise, wait for a playable <audio>, download a WAV, screenshot.

    Skipped without Chromium on a developer machine; under CI=true a missing browser fails the run."""
    if CHROMIUM is None:
        skip_or_fail_in_ci("Debian chromium is not installed (make browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 900, "height": 860}, accept_downloads=True)
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#emotion option').length === 4")
            sentence = "今天天气很好，我们一起去公园散步吧。"
            page.fill("#text", sentence)
            assert page.inner_text("#count") == str(len(sentence))
            page.fill("#text", "好" * 520)  # the counter stops at 500
            assert page.inner_text("#count") == "500" and len(page.input_value("#text")) == 500
            page.fill("#text", sentence)
            page.select_option("#emotion", "喜悦")
            page.fill("#speed", "1.2")
            page.click("#synth")
            page.wait_for_function("document.getElementById('player').duration > 0", timeout=60_000)
            assert page.eval_on_selector("#player", "a => a.duration") > 1.0
            with page.expect_download() as dl:
                page.click("#download")
            path = tmp_path / "page.wav"
            dl.value.save_as(path)
            info = sf.info(path)
            assert info.format == "WAV" and info.samplerate == 24000 and info.duration > 1.0
            page.fill("#text", "😀😀😀")
            page.click("#synth")
            page.wait_for_function("document.getElementById('status').classList.contains('error')")
            assert "没有可朗读" in page.inner_text("#status")
            page.fill("#text", "欢迎使用 OpenSpeedy，今天天气很好，我们一起去公园散步吧。")
            page.click("#synth")
            page.wait_for_function("document.getElementById('status').textContent.indexOf('合成完成') >= 0",
                                   timeout=60_000)
            # SPEEDY_SCREENSHOT=1 refreshes docs/serve-screenshot.png; otherwise it stays in tmp.
            target = SCREENSHOT if os.environ.get("SPEEDY_SCREENSHOT") == "1" else tmp_path / "page.png"
            page.screenshot(path=str(target), full_page=True)
            assert target.stat().st_size > 10_000
        finally:
            browser.close()
