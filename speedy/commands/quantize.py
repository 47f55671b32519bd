"""`speedy quantize`: FP32 ONNX artifact → INT8 (dynamic / static QDQ), FP16 or mixed precision."""

from __future__ import annotations

from pathlib import Path

import click

from speedy.commands.common import console, emit_json, force_option, json_option, library_progress

#: speedy.stages.quantize.RECIPES plus the measured search (`auto`), for --help without importing the stage
#: (numpy, onnx); tests/test_cli_conventions.py keeps the two lists equal.
RECIPE_CHOICES = ("int8-dynamic", "int8-static", "int8-hybrid", "fp16", "mixed", "auto")


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Artifact folder to write.")
@click.option("--recipe", required=True, help=" | ".join(RECIPE_CHOICES) + " (see below and the README's table).")
@click.option("--calibration", "method", default=None, help="Static calibration: minmax | entropy | percentile.")
@click.option(
    "--calib",
    "calib_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Chinese text file, one sentence a line (default: calibration/calib.txt).",
)
@click.option("--calib-sentences", type=int, default=None, help="How many calibration sentences to use.")
@click.option(
    "--op-types",
    default=None,
    help="Override the recipe's op types: 'Conv,MatMul' or 'acoustic=MatMul;vocoder=Conv,ConvTranspose'.",
)
@click.option(
    "--max-mcd",
    type=float,
    default=None,
    help="Quality budget in dB: whole pipeline for mixed (default 1.0), per component for auto (default 1.5).",
)
@click.option(
    "--max-dnsmos-drop",
    type=float,
    default=0.05,
    show_default=True,
    help="auto: largest DNSMOS OVRL drop from FP32 allowed for the chosen pair.",
)
@click.option(
    "--min-duration-match",
    type=float,
    default=0.95,
    show_default=True,
    help="auto: share of tokens whose frame count must equal FP32's.",
)
@click.option(
    "--backends",
    default="onnxruntime",
    show_default=True,
    help="auto: comma-separated backends to place components on (onnxruntime, openvino). Each backend other "
    "than onnxruntime adds its compile precisions as candidates (openvino: fp32, bf16 where the CPU has "
    "AVX512_BF16 / AMX, int8), measured like the quantize recipes.",
)
@click.option(
    "--threads", type=click.IntRange(1), default=None, help="auto: threads for the timed runs (default: all)."
)
@click.option(
    "--check-sentences",
    type=click.IntRange(1, 100),
    default=6,
    show_default=True,
    help="auto: held-out sentences (the last of the calibration text) that speed and fidelity are measured on.",
)
@click.option(
    "--repeat",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="auto: timed runs per candidate after one warm-up (the median is kept).",
)
@click.option(
    "--student",
    type=click.Path(file_okay=False),
    default=None,
    help="auto: a distilled voice's FP32 ONNX artifact ('speedy distill' then 'speedy export'); its vocoder "
    "joins the candidates as 'distilled'.",
)
@click.option("--per-channel/--per-tensor", default=None, help="Weight scales per output channel (default) or tensor.")
@click.option(
    "--sensitivity",
    type=click.Path(dir_okay=False),
    default=None,
    help="A 'speedy analyze --json' report: mixed ranks layers by it instead of measuring each group.",
)
@force_option
@json_option
def quantize(
    source: str,
    output: str,
    recipe: str,
    method: str | None,
    calib_file: str | None,
    calib_sentences: int | None,
    op_types: str | None,
    max_mcd: float | None,
    per_channel: bool | None,
    sensitivity: str | None,
    force: bool,
    as_json: bool,
    max_dnsmos_drop: float = 0.05,
    min_duration_match: float = 0.95,
    backends: str = "onnxruntime",
    threads: int | None = None,
    check_sentences: int = 6,
    repeat: int = 3,
    student: str | None = None,
) -> None:
    """Quantize an FP32 ONNX artifact with a named recipe.

    \b
    Recipes (op types per component are part of the recipe; --op-types overrides):
      int8-dynamic  INT8 weights, activations quantized at run time (acoustic frame-rate Conv)
      int8-static   calibrated QDQ, per-channel weights (acoustic frame-rate Conv, vocoder stack Conv)
      int8-hybrid   acoustic frame-rate convs rewritten as unfold + MatMul, then per-channel INT8 weights
                    with activations quantized at run time (INT8 GEMM); durations and vocoder stay float
      fp16          FP16 weights/compute, float32 inputs and outputs
      mixed         int8-static, keeping the most sensitive layers float within --max-mcd dB
      auto          measures fp32 / int8-hybrid / int8-static / fp16 per component on held-out calibration
                    sentences (speed on this machine, fidelity vs FP32) and writes the fastest pair within
                    --max-mcd per component and --max-dnsmos-drop overall; --student DIR adds a
                    distilled vocoder to the candidates; on a vocoder-only artifact, the vocoder's
                    recipes alone (fp32 / int8-static / fp16), each copy-synthesising held-out speech
    Calibration text runs through the real frontend and FP32 acoustic model (the vocoder sees real mels).
    """
    from speedy.corpus import read_corpus_file
    from speedy.stages.quantize import QuantRecipe, parse_op_types
    from speedy.stages.quantize import quantize as run_quantize

    if recipe == "auto":
        budget = _budget(
            max_mcd, max_dnsmos_drop, min_duration_match, backends, threads, check_sentences, calib_sentences, repeat
        )
        _auto(source, output, calib_file, budget, force, as_json, student)
        return
    if student is not None:
        from speedy.errors import InputError

        raise InputError("--student is an option of --recipe auto")
    overrides: dict[str, object] = {
        "calibration": method,
        "calib_sentences": calib_sentences,
        "max_mcd": max_mcd,
        "per_channel": per_channel,
    }
    if op_types is not None:
        overrides["op_types"] = parse_op_types(op_types)
    rec = QuantRecipe.named(recipe, **overrides)
    text = None
    if calib_file is not None:
        text = read_corpus_file(calib_file, "--calib")
    with library_progress(not as_json):  # calibration bars (int8-static, mixed: a minute or more)
        manifest = run_quantize(
            Path(source),
            Path(output),
            rec,
            calibration_text=text,
            force=force,
            progress=console.log,
            sensitivity=Path(sensitivity) if sensitivity else None,
        )
    info = {
        "output": output,
        "recipe": rec.name,
        "components": {
            n: {"precision": c.precision, "format": c.format, "size_bytes": (Path(output) / c.file).stat().st_size}
            for n, c in manifest.components.items()
        },
        "report": manifest.extra.get("quantize", {}),
    }
    if as_json:
        emit_json(info)
    else:
        for n, c in info["components"].items():
            console.print(f"{n}: {c['precision']}, {c['size_bytes'] / 1e6:.2f} MB")
        console.print(f"wrote {output}")


def _budget(
    max_mcd: float | None,
    max_dnsmos_drop: float,
    min_duration_match: float,
    backends: str,
    threads: int | None,
    check_sentences: int,
    calib_sentences: int | None,
    repeat: int = 3,
):  # -> AutoBudget
    from speedy.stages.auto import AutoBudget

    return AutoBudget(
        max_mcd=1.5 if max_mcd is None else max_mcd,
        max_dnsmos_drop=max_dnsmos_drop,
        min_duration_match=min_duration_match,
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        threads=threads,
        check_sentences=check_sentences,
        calib_sentences=calib_sentences,
        repeat=repeat,
    )


def _auto(
    source: str, output: str, calib_file: str | None, budget, force: bool, as_json: bool, student: str | None = None
) -> None:
    """--recipe auto: the accuracy-aware search of `speedy.stages.auto`, with its candidates as a table."""
    from speedy.corpus import read_corpus_file
    from speedy.stages.auto import search

    text = read_corpus_file(calib_file, "--calib") if calib_file is not None else None
    with library_progress(not as_json):
        manifest = search(
            Path(source),
            Path(output),
            budget,
            calibration_text=text,
            force=force,
            progress=console.log,
            student=Path(student) if student else None,
        )
    report = manifest.extra["quantize"]
    info = {
        "output": output,
        "recipe": "auto",
        "chosen": report["chosen"],
        "candidates": report["candidates"],
        "pairs_tried": report["pairs_tried"],
        "isa": report.get("isa", []),
        "left_out": report.get("left_out", []),
        "components": {
            n: {"precision": c.precision, "format": c.format, "size_bytes": (Path(output) / c.file).stat().st_size}
            for n, c in manifest.components.items()
        },
    }
    if as_json:
        emit_json(info)
        return
    from rich.table import Table

    table = Table(title="speedy quantize --recipe auto: candidates (held-out sentences)", title_justify="left")
    for h in ("component", "recipe", "backend", "ms", "MCD dB", "durations = FP32", "MB", "within budget"):
        table.add_column(h)
    for c in report["candidates"]:
        match = "—" if c["duration_match"] is None else f"{100 * c['duration_match']:.0f} %"
        table.add_row(
            c["component"],
            c["recipe"],
            c.get("backend", "onnxruntime"),
            f"{1000 * c['seconds']:.0f}",
            f"{c['mcd_db']:.2f}",
            match,
            f"{c['size_bytes'] / 1e6:.1f}",
            "yes" if c["within_budget"] else "no",
        )
    console.print(table)
    chosen = ", ".join(f"{c} {r}" for c, r in report["chosen"].items())  # a vocoder-only artifact: vocoder alone
    console.print(f"chosen: {chosen}; wrote {output}")
