"""`speedy serve` options: bad options exit 2, an artifact that cannot load exits 3 (nothing is served)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from speedy.cli import main


def test_bad_options_exit_2() -> None:
    """Out-of-range queue / workers and non-integer ports are usage errors (exit 2) with a message."""
    for args, word in ((["--queue", "-1"], "--queue"), (["--workers-threads", "999"], "--workers-threads"),
                       (["--port", "abc"], "--port"), (["--port", "70000"], "--port")):
        r = CliRunner().invoke(main, ["serve", *args])
        assert r.exit_code == 2, (args, r.output)
        assert word in r.output


def test_missing_artifact_exits_3(tmp_path: Path) -> None:
    """An artifact folder that does not exist is a model error (exit 3), not a traceback."""
    r = CliRunner().invoke(main, ["serve", "--artifact", str(tmp_path / "nope"), "--port", "18499"])
    assert r.exit_code == 3, r.output
    assert "Traceback" not in r.output and "not an artifact" in r.output
