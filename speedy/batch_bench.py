"""`make batch-bench`: the local runner vs `--ray` on the same cores, and a killed-then-resumed Ray run.

    speedy batch-bench [--items 1000] [--workers 2] [--out artifacts/batch-bench] [--json-out FILE]

Items are short sentences cut from calibration/calib.txt (clauses of 4–16 characters, cycled to --items).
Each run is a `speedy batch` subprocess, timed end to end (process start to exit, Ray start-up included);
the summary's own items/s is reported beside it. The kill test starts a `--ray` run, SIGKILLs its process
group once half the items are in the index, reruns it, and checks every id is there exactly once with a
valid WAV and nothing else (no temp files, no stray WAVs).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from speedy.errors import InputError

CALIB = Path(__file__).resolve().parent.parent / "calibration" / "calib.txt"


def short_sentences(n: int, source: Path = CALIB) -> list[str]:
    """n short sentences: the clauses (4–16 characters, ending with their punctuation) of the corpus, cycled."""
    clauses = []
    for line in source.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        for piece in re.findall(r"[^，。！？；]+[，。！？；]?", line.strip()):
            body = piece.rstrip("，；") + ("。" if piece[-1:] in "，；" else "")
            if 4 <= len(body) <= 16:
                clauses.append(body)
    return [clauses[i % len(clauses)] for i in range(n)]


def _cmd(src: Path, out: Path, workers: int, ray: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "speedy.cli",
        "-q",
        "batch",
        str(src),
        "-o",
        str(out),
        "--workers",
        str(workers),
        "--threads-per-worker",
        "1",
        "--json",
    ]
    return cmd + (["--ray"] if ray else [])


def timed_run(src: Path, out: Path, workers: int, ray: bool) -> dict[str, Any]:
    """One `speedy batch` subprocess → its summary plus the end-to-end wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run(_cmd(src, out, workers, ray), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"batch failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(proc.stdout)
    return {**summary, "end_to_end_s": round(wall, 2), "end_to_end_items_per_s": round(summary["items"] / wall, 3)}


def killed_and_resumed(src: Path, out: Path, workers: int, n: int) -> dict[str, Any]:
    """SIGKILL a --ray run at ≥ 50 % of the index, rerun, and check each id appears exactly once."""
    index = out / "index.jsonl"
    proc = subprocess.Popen(
        _cmd(src, out, workers, True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    lines = 0
    while proc.poll() is None:
        lines = len(index.read_bytes().splitlines()) if index.exists() else 0
        if lines >= n // 2:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    killed_at = len(index.read_bytes().splitlines()) if index.exists() else 0
    resumed = timed_run(src, out, workers, True)
    import soundfile as sf

    records = [json.loads(x) for x in index.read_text(encoding="utf-8").splitlines()]
    ids = [r["id"] for r in records]
    wavs = sorted(p.name for p in out.glob("*.wav"))
    valid = sum(1 for r in records if r["status"] == "ok" and sf.info(str(out / r["file"])).frames > 0)
    return {
        "killed_after_index_lines": killed_at,
        "resumed_skipped": resumed["skipped"],
        "resumed_done": resumed["done"],
        "index_lines": len(ids),
        "unique_ids": len(set(ids)),
        "valid_wavs": valid,
        "wav_files": len(wavs),
        "temp_files": len(list(out.glob(".*"))),
        "exactly_once": len(ids) == len(set(ids)) == n == valid == len(wavs),
    }


def run_batch_bench(items: int, workers: int, out: Path, json_out: Path | None = None) -> dict[str, Any]:
    """The local runner, then `--ray`, on the same `items` short sentences with `workers` workers each,
    then the kill-and-resume test; `out` is emptied first. Returns the report (also written to
    `json_out`, temp file + rename)."""
    import shutil

    if not 1 <= items <= 1_000_000 or not 1 <= workers <= 256:
        raise InputError("--items must be 1..1000000 and --workers 1..256")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    src = out / "sentences.txt"
    src.write_text("\n".join(short_sentences(items)) + "\n", encoding="utf-8")
    local = timed_run(src, out / "local", workers, ray=False)
    ray = timed_run(src, out / "ray", workers, ray=True)
    report = {
        "items": items,
        "workers": workers,
        "threads_per_worker": 1,
        "cores": os.cpu_count(),
        "local": local,
        "ray": ray,
        "ray_vs_local_end_to_end": round(local["end_to_end_s"] / ray["end_to_end_s"], 3),
        "ray_vs_local_in_run": round(ray["items_per_s"] / local["items_per_s"], 3),
        "ray_vs_local_steady": round(ray["steady_items_per_s"] / local["steady_items_per_s"], 3),
        "lost": {
            "local": items - local["done"] - local["errors"],
            "ray": items - ray["done"] - ray["errors"],
        },
        "kill_and_resume": killed_and_resumed(src, out / "killed", workers, items),
    }
    if json_out is not None:
        tmp = json_out.with_name(f".{json_out.name}.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, json_out)
    return report
