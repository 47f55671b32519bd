"""`speedy batch`: a text or JSONL file → OUTDIR/<id>.wav + OUTDIR/index.jsonl (local processes or Ray)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from speedy.commands.common import console, emit_json, json_option, ray_option


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--artifact", type=click.Path(), default=None, help="Artifact folder (default: the default voice).")
@ray_option("Run on Ray")
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=None,
    help="Worker processes / Ray actors (default: cores ÷ threads per worker).",
)
@click.option(
    "--threads-per-worker",
    "threads",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="ONNX Runtime threads of each worker (Ray: CPUs reserved per actor).",
)
@json_option
def batch(
    input_path: str,
    outdir: str,
    artifact: str | None,
    ray_address: str | None,
    workers: int | None,
    threads: int,
    as_json: bool,
) -> None:
    """Synthesise every line of INPUT into OUTDIR/<id>.wav, with one line per item in OUTDIR/index.jsonl.

    INPUT is a UTF-8 text file (one utterance a line, ids 000001…) or JSONL with {"id", "text", "voice",
    "emotion", "speed", "pitch", "pitch_range", "energy"}: JSONL when its name ends in .jsonl or .ndjson,
    or its first non-empty line starts with '{'. A rerun skips items already done; bad lines are
    recorded as errors in the index and the batch goes on. Exit 0 even when some items failed: read the
    summary's "errors" (or the index's status fields).

    \b
    Examples:
      speedy batch sentences.txt -o out/ --workers 2
      speedy batch corpus.jsonl -o out/ --ray --workers 8 --json
      speedy batch corpus.jsonl -o out/ --ray ray://head:10001 --workers 32
    """
    from speedy.batch import BatchConfig, import_ray, run_batch

    if ray_address is not None:
        import_ray()  # exit 3 naming the extra before reading anything
    config = BatchConfig(
        artifact=artifact, workers=workers or max(1, _cores() // threads), threads=threads, ray=ray_address
    )
    show = not as_json and console.is_terminal
    if not show:
        summary = run_batch(Path(input_path), Path(outdir), config)
    else:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn(
                "{task.completed}/{task.total} items · {task.fields[audio]:.1f} s audio · "
                "{task.fields[errors]} errors"
            ),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("synthesising", total=None, audio=0.0, errors=0)
            totals = {"audio": 0.0, "errors": 0}

            def on_item(rec: dict[str, Any], _: int) -> None:
                totals["audio"] += rec["seconds"]
                totals["errors"] += rec["status"] != "ok"
                progress.update(task, advance=1, audio=totals["audio"], errors=totals["errors"])

            summary = run_batch(
                Path(input_path),
                Path(outdir),
                config,
                on_item=on_item,
                on_start=lambda n: progress.update(task, total=n),
            )
    info = summary.to_json()
    if as_json:
        emit_json(info)
    else:
        errors = f"{info['errors']} error" + ("" if info["errors"] == 1 else "s")
        console.print(
            f"{info['done']} synthesised, {info['skipped']} already done, {errors} "
            f"of {info['items']} items in {info['wall_s']:.1f} s ({info['items_per_s']} items/s, "
            f"{info['audio_s_per_s']} audio s per s) → {Path(outdir) / 'index.jsonl'}"
        )
