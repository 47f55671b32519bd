"""`speedy analyze`: per-layer quantization / pruning sensitivity, run-time and parameter shares."""

from __future__ import annotations

import json
from pathlib import Path

import click

from speedy.commands.common import (
    console,
    emit_json,
    json_option,
    json_out_option,
    refuse_old_json_path,
    threads_option,
)


@click.command()
@click.argument("source", type=click.Path(), required=False)
@click.option(
    "--texts",
    "texts_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Chinese sentences, one a line, to score on (default: the evaluation corpus).",
)
@click.option("--sentences", type=int, default=4, show_default=True, help="How many sentences to score on.")
@click.option("--fractions", default="0.25,0.5", show_default=True, help="Pruning fractions to try per layer.")
@click.option(
    "--criterion",
    default="taylor",
    show_default=True,
    help="l1 | l2 | random | activation | taylor (prune's default, so the rows predict its cuts)",
)
@click.option("--quant/--no-quant", default=True, help="Measure INT8 sensitivity (the slowest part).")
@click.option("--prune/--no-prune", "prune_", default=True, help="Measure pruning sensitivity.")
@json_option
@json_out_option("the report (quantize --sensitivity reads it)")
@threads_option
def analyze(
    source: str | None,
    texts_file: str | None,
    sentences: int,
    fractions: str,
    criterion: str,
    quant: bool,
    prune_: bool,
    as_json: bool,
    json_out: str | None,
    threads: int | None,
) -> None:
    """Which layers of both components are worth quantizing or pruning, measured.

    \b
    SOURCE is a torch artifact (default: the built-in voice) or its FP32 ONNX export. For each layer:
      INT8 dB     MCD vs FP32 when only this layer is INT8
      float gain  how much MCD drops when only this layer stays float (the rest INT8)
      prune dB    MCD vs unpruned when that fraction of its heads/channels is removed
                  ('dur!': an utterance's length changed beyond x1.4, durations broke)
      time, params  its share of ONNX Runtime kernel time and of the parameters
    Rows are sorted by cost saved per dB lost (see speedy/analyze.py for the definition).
    """
    from speedy.analyze import AnalyzeConfig
    from speedy.analyze import analyze as run_analyze
    from speedy.corpus import parse_corpus
    from speedy.errors import InputError

    if source is not None:
        refuse_old_json_path([source])
    if json_out:
        from speedy.synth import check_output_path

        check_output_path(Path(json_out))
    texts = None
    if texts_file is not None:
        p = Path(texts_file)
        if not p.is_file():
            raise InputError(f"--texts {p}: no such file")
        try:
            texts = tuple(parse_corpus(p.read_text(encoding="utf-8")))
        except UnicodeDecodeError as e:
            raise InputError(f"--texts {p}: invalid UTF-8 at byte offset {e.start}") from None
        if not texts:
            raise InputError(f"--texts {p}: no sentences")
    try:
        fracs = tuple(float(x) for x in fractions.split(",") if x.strip())
    except ValueError:
        raise InputError(f"--fractions must be numbers in (0, 1) separated by commas, got {fractions!r}") from None
    cfg = AnalyzeConfig(
        texts=texts,
        sentences=sentences,
        fractions=fracs,
        criterion=criterion,
        threads=threads,
        quant=quant,
        prune=prune_,
    )
    report = run_analyze(Path(source) if source else None, cfg, progress=console.log)
    if json_out:
        from speedy.synth import atomic_write

        text = json.dumps(report, ensure_ascii=False, indent=1)
        atomic_write(Path(json_out), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    if as_json:
        emit_json(report)
        return
    console.print(_table(report))
    if json_out:
        console.print(f"wrote {json_out}")


def _prune_cell(figures: dict, fraction: str) -> str:
    """'-' not measured (nothing to cut at that fraction), 'dur!' durations broke, else the dB."""
    if fraction not in figures:
        return "-"
    return "dur!" if figures[fraction] is None else f"{figures[fraction]:.2f}"


def _table(report: dict):  # -> rich.table.Table
    from rich.table import Table

    fr = [f"{f:g}" for f in report["fractions"]]
    base = report.get("all_int8_mcd_db")
    title = "per-layer sensitivity (MCD dB vs FP32 / unpruned" + (f"; all-INT8 {base:.2f} dB)" if base else ")")
    t = Table(title=title, title_justify="left")
    for col in (
        "component",
        "layer",
        "params",
        "time %",
        "INT8 dB",
        "float gain",
        *(f"−{f} dB" for f in fr),
        "saved/dB",
        "best",
    ):
        t.add_column(col, justify="left" if col in ("component", "layer", "best") else "right")

    def num(v: float | None, fmt: str = "{:.2f}") -> str:
        return "-" if v is None else fmt.format(v)

    for r in report["layers"]:
        t.add_row(
            r["component"],
            r["name"],
            f"{r['params'] / 1e6:.2f} M ({r['param_share']:.0%})",
            f"{100 * r['time_share']:.1f}",
            num(r["quant_mcd_db"]),
            num(r["float_gain_db"]),
            *(_prune_cell(r["prune_mcd_db"], f) for f in fr),
            num(r["saved_per_db"], "{:.3f}"),
            r["best_action"],
        )
    return t
