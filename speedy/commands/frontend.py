"""`speedy bench-frontend` and `speedy train-polyphones`: the frontend's accuracy/speed report and the
polyphone model's training (developer commands; both need a source checkout for their data)."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, hidden_alias, json_option, take_alias


@click.command("bench-frontend")
@click.option("--failures", is_flag=True, help="Also list the failing table rows.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Examples per public split (default: all).")
@json_option
def bench_frontend(failures: bool, limit: int | None, as_json: bool) -> None:
    """Frontend accuracy (TN, polyphones on our tables and the public CPP / g2pL splits, tone sandhi) and speed
    (first call in a fresh interpreter, ms per 100 characters after warm-up, 1 thread)."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from speedy.frontend.bench import frontend_report

    report, failing = frontend_report(limit)
    if failures:
        report["failures"] = failing
    if as_json:
        emit_json(report)
        return
    for key, value in report.items():
        if key != "failures":
            console.print(f"{key:>32}: {value}", highlight=False)
    for line in report.get("failures", []):
        console.print(line, highlight=False, markup=False)


@click.command("train-polyphones")
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    callback=take_alias,
    help="Folder for polyphone_model.{onnx,json}.",
)
@hidden_alias("--out", "out", type=click.Path(file_okay=False))
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs (default: TrainConfig's).")
@click.option("--hidden", type=click.IntRange(1), default=None, help="BiLSTM width (default: TrainConfig's).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch threads (default: TrainConfig's).")
@click.option("--overrides-only", is_flag=True, help="Keep the trained model; only re-choose what it may override.")
def train_polyphones(
    out: str | None, epochs: int | None, hidden: int | None, threads: int | None, overrides_only: bool
) -> None:
    """Train the polyphone disambiguator on the public corpora in data/polyphones, export it to ONNX and
    choose the characters it overrides; prints the per-epoch selection accuracies as JSON (needs torch)."""
    from dataclasses import replace

    from speedy.frontend.train_polyphones import OUT, TrainConfig, train_and_select

    given = {"epochs": epochs, "hidden": hidden, "threads": threads}
    config = replace(TrainConfig(), **{k: v for k, v in given.items() if v is not None})
    emit_json(train_and_select(config, Path(out) if out else OUT, overrides_only))
