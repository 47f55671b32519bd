"""`speedy serve` options: bad options exit 2, an artifact that cannot load exits 3 (nothing is served)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from speedy.cli import main


def test_bad_options_exit_2() -> None:
    """Out-of-range queue / workers and non-integer ports are usage errors (exit 2) with a message."""
    for args, word in ((["--queue", "-1"], "--queue"), (["--workers", "999"], "--workers"),
                       (["--workers-threads", "999"], "--workers"),
                       (["--port", "abc"], "--port"), (["--port", "70000"], "--port")):
        r = CliRunner().invoke(main, ["serve", *args])
        assert r.exit_code == 2, (args, r.output)
        assert word in r.output


def test_missing_artifact_exits_3(tmp_path: Path) -> None:
    """An artifact folder that does not exist is a model error (exit 3), not a traceback."""
    r = CliRunner().invoke(main, ["serve", "--artifact", str(tmp_path / "nope"), "--port", "18499"])
    assert r.exit_code == 3, r.output
    assert "Traceback" not in r.output and "not an artifact" in r.output


def _serve(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "speedy.cli", "serve", *args]


def test_port_in_use_exits_2_before_loading(tmp_path: Path) -> None:
    """A port in use is one line and exit 2 at once: nothing is loaded, warmed up or announced first."""
    import socket
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a missing artifact would be exit 3 if the model were loaded first: the port must be checked before
        proc = subprocess.run(_serve("--port", str(port), "--artifact", str(tmp_path / "nope")),
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"error: port {port} on 127.0.0.1 is already in use; choose another with --port"]
    assert proc.stdout == ""


def test_access_log_goes_to_stderr() -> None:
    """uvicorn's access log lines are on stderr with the other logs; stdout stays empty."""
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(_serve("--port", str(port), "--workers", "1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert out == ""
    assert '"GET /healthz HTTP/1.1" 200' in err
