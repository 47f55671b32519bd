"""`speedy batch --ray` and `speedy serve --ray` on the toy artifact, on the session's local Ray
(conftest.local_ray: its workers register the toy family through $SPEEDY_BATCH_SETUP). The API suite
against `serve --ray` is tests/test_serve_api.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_fixture import TOY_FAMILY, make_toy_artifact

from speedy import batch as batch_mod
from speedy.batch import BatchConfig, run_batch
from speedy.families import registered

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_artifact(tmp_path_factory.mktemp("toy") / "fp32")


def test_ray_batch_gives_the_local_runners_files(local_ray: object, toy: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "你好。"}, {"id": "b", "text": "今天天气很好，我们去公园。", "emotion": "sad"},
            {"id": "c", "text": ""}, {"id": "d", "text": "再见！", "voice": "nobody"}, {"id": "e", "text": "好的。"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    summary = run_batch(src, tmp_path / "ray", BatchConfig(artifact=str(toy), workers=2, ray="local", batch_size=2))
    assert (summary.done, summary.errors, summary.runner) == (3, 2, "ray:local")

    def in_process(items: list, config: BatchConfig) -> Iterator:
        synth = batch_mod.load_worker_synthesizer(config.artifact, config.threads)
        for item in items:
            yield batch_mod.synth_item(synth, item.id, item.text, item.options, config.max_chars)

    monkeypatch.setattr(batch_mod, "_local_results", in_process)
    with registered(TOY_FAMILY):
        run_batch(src, tmp_path / "local", BatchConfig(artifact=str(toy)))
    for name in ("a.wav", "b.wav", "e.wav", "index.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert not (tmp_path / "ray" / "c.wav").exists() and not (tmp_path / "ray" / "d.wav").exists()


def test_serve_ray_loads_the_artifact(ray_serve_port: int, toy: Path) -> None:
    """`speedy serve --ray`'s start(): each replica loads the artifact itself (Synthesizer.load, plug-in
    family through the setup hook) behind Ray Serve's proxy: /voices, a WAV from /tts, a bad request's 422."""
    import httpx
    from ray import serve

    from speedy.serve.ray_app import RayServeConfig, start
    from speedy.serve.settings import ServeSettings

    start(str(toy), ServeSettings(port=ray_serve_port, queue=4), RayServeConfig(replicas=1, max_ongoing_requests=2))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{ray_serve_port}", timeout=30) as http:
            voices = http.get("/voices").json()
            assert voices["family"] == "toy" and voices["sample_rate"] == 16000
            r = http.post("/tts", json={"text": "你好。"})
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
            bad = http.post("/tts", json={"text": "你好。", "speed": 9})
            assert bad.status_code == 422 and bad.json()["error"]["field"] == "speed"
    finally:
        serve.delete("speedy", _blocking=False)
