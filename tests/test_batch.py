"""speedy batch: WAVs + index, resume, bad lines, no partial WAV, --ray without ray (toy artifacts, no Ray)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from bench_fixture import TOY_FAMILY, make_toy_artifact
from click.testing import CliRunner

from speedy import batch as batch_mod
from speedy.batch import BatchConfig, read_index, read_items, run_batch
from speedy.cli import main
from speedy.errors import OutputError
from speedy.families import registered

LINES = ["你好。", "今天天气很好，我们去公园。", "再见！"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_artifact(tmp_path_factory.mktemp("toy") / "fp32")


@pytest.fixture()
def in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run the local runner's item function in this process (the toy family registered here) instead of
    spawning workers; the one test of real worker processes is test_worker_processes_and_cli."""
    def results(items: list, config: BatchConfig) -> Iterator:
        synth = batch_mod.load_worker_synthesizer(config.artifact, config.threads)
        for item in items:
            yield batch_mod.synth_item(synth, item.id, item.text, item.options, config.max_chars)

    monkeypatch.setattr(batch_mod, "_local_results", results)
    with registered(TOY_FAMILY):
        yield


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_text_input_writes_wavs_and_index(tmp_path: Path, toy: Path, in_process: None) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    summary = run_batch(src, tmp_path / "out", BatchConfig(artifact=str(toy)))
    index = [json.loads(x) for x in (tmp_path / "out" / "index.jsonl").read_text().splitlines()]
    assert [r["id"] for r in index] == ["000001", "000002", "000003"]
    for rec in index:
        assert rec["status"] == "ok" and rec["error"] is None
        info = sf.info(str(tmp_path / "out" / rec["file"]))
        assert info.samplerate == rec["sample_rate"] == 16000 and info.subtype == "PCM_16"
        assert info.duration == pytest.approx(rec["seconds"], abs=1e-3) and rec["seconds"] > 0.1
    assert (summary.items, summary.done, summary.errors, summary.skipped) == (3, 3, 0, 0)
    assert summary.audio_s == pytest.approx(sum(r["seconds"] for r in index), abs=1e-3)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp files left


def test_bad_lines_are_recorded_and_the_batch_goes_on(tmp_path: Path, toy: Path, in_process: None) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "text": LINES[0], "emotion": "happy", "speed": 1.2},
        {"id": "empty", "text": "   "},
        {"id": "long", "text": "好" * 50},
        {"id": "voice", "text": LINES[0], "voice": "nobody"},
        {"id": "emo", "text": LINES[0], "emotion": "bored"},
        "{not json",
        {"id": "../evil", "text": LINES[0]},
        {"id": "a", "text": "duplicate"},
        {"id": "b", "text": LINES[2]},
    ])
    summary = run_batch(src, tmp_path / "out", BatchConfig(artifact=str(toy), max_chars=40))
    index = read_index(tmp_path / "out")
    assert {k for k, r in index.items() if r["status"] == "ok"} == {"a", "b"}
    errors = {k: r["error"] for k, r in index.items() if r["status"] == "error"}
    assert set(errors) == {"empty", "long", "voice", "emo", "line-000006", "line-000007", "line-000008"}
    assert "empty" in errors["empty"] and "limit is 40" in errors["long"]
    assert "nobody" in errors["voice"] and "bored" in errors["emo"] and "not JSON" in errors["line-000006"]
    assert "file-safe" in errors["line-000007"] and "duplicate id 'a'" in errors["line-000008"]
    assert summary.errors == 7 and summary.done == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["a.wav", "b.wav"]


def test_resume_skips_done_ids_and_redoes_missing_or_broken_wavs(tmp_path: Path, toy: Path, in_process: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    run_batch(src, out, BatchConfig(artifact=str(toy)))
    (out / "000002.wav").unlink()
    (out / "000003.wav").write_bytes(b"RIFF junk")  # e.g. a foreign file under the name
    seen: list[str] = []
    real = batch_mod.synth_item
    monkeypatch.setattr(batch_mod, "synth_item", lambda s, i, *a: (seen.append(i), real(s, i, *a))[1])
    summary = run_batch(src, out, BatchConfig(artifact=str(toy)))
    assert sorted(seen) == ["000002", "000003"]
    assert (summary.skipped, summary.done) == (1, 2)
    lines = (out / "index.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["000001", "000002", "000003"]  # exactly once each
    assert all(batch_mod.is_done(out, json.loads(x)) for x in lines)


def test_a_killed_write_leaves_no_partial_wav_and_no_index_line(tmp_path: Path, toy: Path, in_process: None,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The second WAV's write dies half way (as a kill would): no file under its name, no temp file, no
    index line for it; the rerun then completes every item exactly once."""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    real_write = sf.write
    calls = {"n": 0}

    def dying_write(path: str, data: object, *a: object, **k: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            Path(path).write_bytes(b"RIFF\x00\x00partial")
            raise KeyboardInterrupt  # not an OSError: nothing in the batch code may swallow it
        real_write(path, data, *a, **k)

    monkeypatch.setattr(sf, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        run_batch(src, out, BatchConfig(artifact=str(toy)))
    assert sorted(p.name for p in out.iterdir()) == ["000001.wav", "index.jsonl"]
    assert list(read_index(out)) == ["000001"]
    monkeypatch.setattr(sf, "write", real_write)
    summary = run_batch(src, out, BatchConfig(artifact=str(toy)))
    assert (summary.skipped, summary.done) == (1, 2)
    assert [json.loads(x)["id"] for x in (out / "index.jsonl").read_text().splitlines()] == ["000001", "000002",
                                                                                           "000003"]


def test_torn_index_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "index.jsonl").write_text('{"id": "x", "status": "ok"}\n{"id": "y", "sta', encoding="utf-8")
    assert list(read_index(tmp_path)) == ["x"]


def test_input_and_output_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file"):
        read_items(tmp_path / "missing.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(Exception, match="invalid UTF-8 at byte offset 3"):
        read_items(tmp_path / "bad.txt")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError):
        run_batch(_one_line(tmp_path), tmp_path / "file" / "out", BatchConfig())


def _one_line(tmp_path: Path) -> Path:
    p = tmp_path / "one.txt"
    p.write_text("你好。\n", encoding="utf-8")
    return p


def test_ray_without_ray_exits_3_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(main, ["batch", str(_one_line(tmp_path)), "-o", str(tmp_path / "out"), "--ray"])
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == ["error: --ray needs the 'ray' package: pip install 'openspeedy[ray]'"]


def test_worker_processes_and_cli(tmp_path: Path, toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two real spawned workers (the toy family registered there through the setup hook), through the CLI."""
    monkeypatch.setenv(batch_mod.SETUP_ENV, "bench_fixture:register_toy_family")
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    args = ["batch", str(src), "-o", str(tmp_path / "out"), "--artifact", str(toy), "--workers", "2", "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["items"], summary["done"], summary["errors"], summary["runner"]) == (3, 3, 0, "local")
    assert summary["items_per_s"] > 0 and summary["audio_s_per_s"] > 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["000001.wav", "000002.wav", "000003.wav"]
    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert (again["done"], again["skipped"]) == (0, 3)
    monkeypatch.delenv(batch_mod.SETUP_ENV)  # a worker that cannot load: one line, exit 3, no traceback
    bad = CliRunner().invoke(main, ["batch", str(src), "-o", str(tmp_path / "out2"), "--artifact", str(toy),
                                    "--workers", "1"])
    assert bad.exit_code == 3 and bad.output.strip() == "error: unknown frontend 'toy-chars' in manifest"


def test_serve_ray_without_ray_exits_3_and_its_deployment_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from speedy.serve.ray_app import ADMISSION_SLACK, RayServeConfig, replica_settings
    from speedy.serve.settings import ServeSettings

    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(main, ["serve", "--ray", "--port", "18498"])
    assert result.exit_code == 3 and "openspeedy[ray]" in result.output
    fixed = RayServeConfig(replicas=3, max_ongoing_requests=4, threads=2).deployment_options(queue=16)
    # the router's bound: --queue plus what every replica takes at once (Serve counts requests being routed)
    assert fixed == {"max_ongoing_requests": 4 + ADMISSION_SLACK,
                     "max_queued_requests": 16 + 3 * (4 + ADMISSION_SLACK),
                     "backpressure_config": {"status_code": 503, "retry_after_s": 1},
                     "ray_actor_options": {"num_cpus": 2}, "num_replicas": 3}
    auto = RayServeConfig(replicas=2, max_replicas=8, max_ongoing_requests=4).deployment_options(queue=16)
    assert "num_replicas" not in auto and auto["max_queued_requests"] == 16 + 8 * (4 + ADMISSION_SLACK)
    scaling = auto["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"], scaling["target_ongoing_requests"]) == (2, 8, 2)
    inner = replica_settings(ServeSettings(queue=16), RayServeConfig(max_ongoing_requests=4, threads=2))
    # the replica's app admits 4 (1 running + 3 waiting) and refuses the rest itself, with its own 503 body
    assert (inner.workers, inner.threads_per_worker, inner.queue) == (1, 2, 3)
    with pytest.raises(Exception, match="--max-replicas"):
        RayServeConfig(replicas=4, max_replicas=2)


def test_summary_line_wording(tmp_path: Path, toy: Path, in_process: None) -> None:
    """`-o out/` names out/index.jsonl (not out//index.jsonl), and one failed line is '1 error', not '1 errors'."""
    src = tmp_path / "in.txt"
    src.write_text("你好。\n" + "好" * 2001 + "\n", encoding="utf-8")
    out = f"{tmp_path / 'out'}/"
    result = CliRunner().invoke(main, ["batch", str(src), "-o", out, "--artifact", str(toy), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "1 synthesised, 0 already done, 1 error of 2 items" in result.output
    assert f"{tmp_path / 'out' / 'index.jsonl'}" in result.output and "//" not in result.output
