"""`speedy loadtest`: a bounded load test of `speedy serve` (or `serve --ray`) on loopback."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, hidden_alias, json_option, json_out_option


@click.command()
@click.option("--url", default=None, help="Base URL of a running server (loopback only).")
@click.option("--spawn", is_flag=True, help="Start 'speedy serve' (default voice) on a free loopback port first.")
@click.option("--clients", type=int, default=16, show_default=True, help="Concurrent clients (1..256).")
@click.option("--seconds", type=float, default=60.0, show_default=True, help="How long the clients run.")
@click.option(
    "--memory",
    type=int,
    default=0,
    metavar="N",
    help="Send N requests (2 clients) instead and report the spawned server's peak RSS.",
)
@click.option("--ray", is_flag=True, help="With --spawn: start 'speedy serve --ray' (Ray Serve) instead.")
@json_out_option("the report")
@hidden_alias("--out", "json_out", type=click.Path(dir_okay=False))
@json_option
def loadtest(
    url: str | None,
    spawn: bool,
    clients: int,
    seconds: float,
    memory: int,
    ray: bool,
    json_out: str | None,
    as_json: bool,
) -> None:
    """Load a TTS server with N clients for S seconds of POST /tts and report requests/s, audio seconds
    per second, p50/p95 latency, 503s and every other error; with --spawn also the server's resident
    memory. Every loop stops by itself; only loopback addresses are loaded."""
    from speedy.serve.loadtest import LoadTestConfig, run_loadtest

    config = LoadTestConfig(url, spawn, clients, seconds, memory, ray, Path(json_out) if json_out else None)
    report = run_loadtest(config)
    if as_json:
        emit_json(report)
        return
    for k, v in report.items():
        console.print(f"{k:>25}: {v}", highlight=False)
