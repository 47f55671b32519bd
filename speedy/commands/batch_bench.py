"""`speedy batch-bench`: `speedy batch` with local workers vs `--ray` on the same cores, plus a killed
and resumed Ray run (`make batch-bench`)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import emit_json, hidden_alias, json_out_option, take_alias


@click.command("batch-bench")
@click.option("--items", type=int, default=1000, show_default=True, help="Short sentences to synthesise.")
@click.option("--workers", type=int, default=2, show_default=True, help="Workers / Ray actors in each run.")
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(file_okay=False),
    callback=take_alias,
    default="artifacts/batch-bench",
    show_default=True,
    help="Working folder (emptied first).",
)
@hidden_alias("--out", "out", type=click.Path(file_okay=False))
@json_out_option("the report (it is printed on stdout either way)")
def batch_bench(items: int, workers: int, out: str, json_out: str | None) -> None:
    """Throughput of the local runner and of Ray Data on the same cores, lost items, and whether a --ray run
    killed at 50 % and rerun gives every item exactly once. Prints the report as JSON. Needs the ray extra."""
    from speedy.batch_bench import run_batch_bench

    emit_json(run_batch_bench(items, workers, Path(out), Path(json_out) if json_out else None))
