"""The page plays while it synthesises: Web Audio from /tts/stream, click → first sound measured in a real
browser (the audio clock passing the first chunk's start), and the whole WAV still offered afterwards."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_serve_live import CHROMIUM, live_synth, server  # noqa: E402,F401  (the live server fixtures, default voice)

pytestmark = [pytest.mark.integration, pytest.mark.browser]
#: click → first sound (the issue's page target), asserted when the 1-minute load is under one per core
FIRST_SOUND_S = 0.3
#: the bound on a loaded machine (measured 1.08 s at 12 runnable per core, 0.04 s of it the page's own)
LOADED_FIRST_SOUND_S = 3.0
#: the page's own part (click → request sent, response → audio clock past the first chunk's start)
PAGE_S = 0.15
#: about 100 characters, as in the issue's page target
TEXT = ("欢迎使用 OpenSpeedy 中文语音合成，今天天气很好，我们一起去公园散步吧。公园里的花都开了，"
        "红的、黄的、白的，一片一片的，非常好看。小朋友们在草地上放风筝，老人们在树下下棋聊天。")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (make browser installs it)")
def test_page_plays_while_synthesising(server: str, record_property: pytest.RecordProperty) -> None:  # noqa: F811
    """The first sound starts before the stream has ended, the page played every chunk it received, and
    the player and the download then hold the whole WAV."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(server + "/")
            page.wait_for_function("document.querySelectorAll('#emotion option').length === 4")
            page.fill("#text", TEXT)
            page.click("#synth")
            page.wait_for_function("window.speedyStats && window.speedyStats.doneAt !== null", timeout=60_000)
            page.wait_for_function("window.speedyStats.played", timeout=10_000)
            stats = page.evaluate("window.speedyStats")
            first_sound_s = (stats["firstSoundAt"] - stats["clickAt"]) / 1000
            record_property("first_sound_s", round(first_sound_s, 3))
            marks = {k: round((stats[k] - stats["clickAt"]) / 1000, 3) for k in
                     ("fetchAt", "headersAt", "firstBytesAt", "scheduledAt", "firstSoundAt", "doneAt")}
            server_s = (stats["headersAt"] - stats["fetchAt"]) / 1000  # first chunk synthesised + sent
            page_s = first_sound_s - server_s  # click → request sent, response → audio clock past the start
            record_property("first_sound_server_s", round(server_s, 3))
            load = os.getloadavg()[0] / (os.cpu_count() or 1)
            print(f"page: click → {marks}; server {server_s:.3f} s, page {page_s:.3f} s, "
                  f"context running before the click: {stats['ctxWasRunning']}, load {load:.1f} per core")
            assert stats["played"] and stats["firstSoundAt"] < stats["doneAt"]
            assert stats["ctxWasRunning"] and page_s <= PAGE_S
            # the target on a machine that is not oversubscribed; a shared one only bounds it loosely
            assert first_sound_s <= (FIRST_SOUND_S if load < 1.0 else LOADED_FIRST_SOUND_S)
            page.wait_for_function("document.getElementById('player').duration > 0", timeout=10_000)
            duration = page.eval_on_selector("#player", "a => a.duration")
            assert duration == pytest.approx(stats["scheduledSeconds"], abs=0.05) and duration > 5.0
            assert page.get_attribute("#download", "aria-disabled") == "false"
        finally:
            browser.close()
