"""`speedy batch --ray` on the toy artifact, on the session's local Ray (conftest.local_ray: its workers
register the toy family through $SPEEDY_BATCH_SETUP). `speedy serve --ray` is tested with the API suite,
tests/test_serve_api.py."""

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
    """--ray writes byte for byte the WAVs and index of the local runner; bad lines are errors, not files."""
    src = tmp_path / "in.jsonl"
    rows = [{"id": "a", "text": "你好。"}, {"id": "b", "text": "今天天气很好，我们去公园。", "emotion": "sad"},
            {"id": "c", "text": ""}, {"id": "d", "text": "再见！", "voice": "nobody"}, {"id": "e", "text": "好的。"}]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    # One actor (each one is a fresh interpreter loading the model: seconds on a busy machine); batches of 2
    # still cross it in several blocks. Two actors on 1,000 items: `make batch-bench`.
    summary = run_batch(src, tmp_path / "ray", BatchConfig(artifact=str(toy), workers=1, ray="local", batch_size=2))
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
