"""`speedy batch --ray` and `speedy serve --ray` on one local Ray (2 CPUs) shared by the module.

Ray's workers are fresh interpreters: they register the toy family through $SPEEDY_BATCH_SETUP, with
tests/ on their PYTHONPATH (passed as the runtime env's variables)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench_fixture import TOY_FAMILY, make_toy_artifact

from speedy import batch as batch_mod
from speedy.batch import BatchConfig, run_batch
from speedy.families import registered

pytestmark = pytest.mark.integration
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[object]:
    ray = pytest.importorskip("ray")
    env = {batch_mod.SETUP_ENV: "bench_fixture:register_toy_family",
           "PYTHONPATH": os.pathsep.join([TESTS, *filter(None, [os.environ.get("PYTHONPATH")])])}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_ray_answers_like_serve(local_ray: object, toy: Path) -> None:
    """One replica of the same app behind Ray Serve's proxy: /voices, a WAV from /tts, and a bad request's
    422 body, as `speedy serve` answers them."""
    httpx = pytest.importorskip("httpx")
    from ray import serve

    from speedy.serve.ray_app import RayServeConfig, start
    from speedy.serve.settings import ServeSettings

    port = _free_port()
    start(str(toy), ServeSettings(port=port, queue=4), RayServeConfig(replicas=1, max_ongoing_requests=2))
    try:
        base = f"http://127.0.0.1:{port}"
        voices = httpx.get(f"{base}/voices", timeout=30).json()
        assert voices["family"] == "toy" and voices["sample_rate"] == 16000
        r = httpx.post(f"{base}/tts", json={"text": "你好。"}, timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
        bad = httpx.post(f"{base}/tts", json={"text": "你好。", "speed": 9}, timeout=30)
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "speed"
    finally:
        serve.shutdown()
