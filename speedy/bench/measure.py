"""Measurements for `speedy bench`, defined once: machine facts, parameters, peak RSS, per-stage RTF,
latency percentiles, first-audio latency and quality. `speedy.bench.run_bench` puts them together.

Times are wall-clock seconds (`time.perf_counter`); RTF = wall seconds / audio seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest, library_versions
from speedy.backends import BACKENDS, cpu_isa
from speedy.errors import InputError
from speedy.quality import DNSMOS_MIN_TAIL_S, DNSMOS_SEGMENT_S, dnsmos_segments  # noqa: F401 (bench's API)

_LOGGER = logging.getLogger(__name__)

WORKER_TIMEOUT_S = 900
#: the backends' libraries (the backend table) and the measuring ones; a library not installed is left out
VERSIONED_LIBS = (
    *dict.fromkeys(lib for b in BACKENDS for lib in b.libs if lib != "onnx"),
    "numpy",
    "ai-edge-litert",
    "speechmos",
    "pyworld",
    "pysptk",
)


@dataclass(frozen=True)
class MachineInfo:
    """Where the figures were taken: CPU model, logical cores (and those usable), memory, library versions.

    load_avg: 1/5/15-minute load averages when the bench started (other work skews timings).
    """

    cpu: str
    cores: int
    usable_cores: int
    memory_bytes: int | None
    platform: str
    python: str
    versions: dict[str, str]
    load_avg: tuple[float, float, float] | None
    isa: tuple[str, ...] = ()
    """The CPU's vector extensions that decide INT8 / bf16 speed (avx2, avx512f, avx512_vnni, avx512_bf16,
    amx_int8, …): an INT8 GEMM is about 2× FP32 with AVX2 alone and 3–4× with VNNI."""


@dataclass(frozen=True)
class Percentiles:
    """Latency percentiles over texts, seconds."""

    p50: float
    p95: float


@dataclass(frozen=True)
class StageRtf:
    """Real-time factors (wall seconds / audio seconds; < 1 is faster than real time)."""

    acoustic: float
    vocoder: float
    total: float


@dataclass(frozen=True)
class LengthRtf:
    """RTF on one text of about `target_chars` characters (`chars` exactly, `audio_s` seconds of audio)."""

    target_chars: int
    chars: int
    audio_s: float
    rtf: StageRtf


@dataclass(frozen=True)
class Quality:
    """Quality of a row: MCD (dB), F0 RMSE (Hz), V/UV error (0–1), gross pitch error rate (0–1) and fine
    pitch error (cents) against the reference, averaged over `sentences` sentences; DNSMOS OVRL (1–5,
    absolute) averaged over 9.5-s segments of every text; per-component fidelity (`speedy.fidelity`:
    vocoder MCD, acoustic MCD with FP32 durations imposed, share of tokens with FP32's duration) over
    `component_utterances` sentences. None = not measured."""

    mcd_db: float | None = None
    f0_rmse_hz: float | None = None
    vuv_error: float | None = None
    dnsmos_ovrl: float | None = None
    sentences: int = 0
    f0_gpe: float | None = None
    f0_fpe_cents: float | None = None
    vocoder_mcd_db: float | None = None
    acoustic_mcd_db: float | None = None
    duration_match: float | None = None
    component_utterances: int = 0


def machine_info() -> MachineInfo:
    """Describe this machine (reads /proc/cpuinfo where it exists)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.split(":", 1)[0].strip().lower() == "model name":
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    try:
        l1, l5, l15 = os.getloadavg()
        load = (round(l1, 2), round(l5, 2), round(l15, 2))
    except OSError:
        load = None
    return MachineInfo(
        cpu=cpu,
        cores=os.cpu_count() or 1,
        usable_cores=usable,
        memory_bytes=memory,
        platform=platform.platform(),
        python=platform.python_version(),
        versions=library_versions(*VERSIONED_LIBS),
        load_avg=load,
        isa=cpu_isa(),
    )


# ---- parameters ------------------------------------------------------------------------------------
def _onnx_parameters(path: Path) -> int:
    """Elements of the ONNX initializers, except int64/bool/string ones (shapes, indices)."""
    import onnx

    skip = {onnx.TensorProto.INT64, onnx.TensorProto.BOOL, onnx.TensorProto.STRING}
    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type not in skip)


def _safetensors_parameters(path: Path) -> int:
    """Elements of every tensor in a safetensors file (read from the header; no torch)."""
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())


#: component format -> parameter counter; formats without one report None.
_PARAMETER_COUNTERS: dict[str, Callable[[Path], int]] = {"onnx": _onnx_parameters, "torch": _safetensors_parameters}


def count_parameters(folder: Path, manifest: Manifest) -> int | None:
    """Parameters of both components (ONNX initializers or the torch state dict); None if a format has no counter."""
    total = 0
    for comp in manifest.components.values():
        counter = _PARAMETER_COUNTERS.get(comp.format)
        if counter is None:
            return None
        total += counter(folder / comp.file)
    return total


# ---- peak memory in a fresh process ----------------------------------------------------------------
def measure_peak_rss(target: str, texts: Sequence[str], threads: int, *, baseline: bool = False) -> int | None:
    """Peak RSS (bytes) of a fresh `python -m speedy.bench.worker` that loads `target` and synthesises `texts`.

    `target` is an artifact folder, or a baseline name with `baseline=True`. Returns None (and logs a
    warning) if the worker fails, e.g. killed for memory.
    """
    with tempfile.TemporaryDirectory(prefix="speedy-bench-") as tmp:
        texts_file = Path(tmp) / "texts.json"
        texts_file.write_text(json.dumps(list(texts), ensure_ascii=False), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "speedy.bench.worker",
            "--baseline" if baseline else "--artifact",
            target,
            "--threads",
            str(threads),
            "--texts-json",
            str(texts_file),
        ]
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            _LOGGER.warning("peak RSS of %s not measured: %s", target, e)
            return None
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        _LOGGER.warning("peak RSS of %s not measured: worker exit %d (%s)", target, proc.returncode, tail)
        return None
    return int(json.loads(lines[-1])["peak_rss_bytes"])


# ---- timing one synthesizer ------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One synthesis of one text through `Synthesizer.stream`: seconds, and each chunk's audio if kept.

    first_chunk_s: from the call to the first yielded chunk; acoustic_s / vocoder_s: summed over chunks.
    """

    wall_s: float
    first_chunk_s: float
    acoustic_s: float
    vocoder_s: float
    audio_s: float
    chunks: tuple[np.ndarray, ...] = ()


def run_once(synth: Any, text: str, keep_audio: bool = False, first_only: bool = False, chunked: bool = False) -> Run:
    """Synthesise `text` through `synth.stream`, timing it; `first_only` stops after the first chunk.

    `chunked=False` vocodes whole sentences (what `synthesize`, `/tts` and batch work do: the throughput the
    RTF reports); `chunked=True` is the streaming path (`/tts/stream`), whose overlapping vocoder context
    costs more in total but yields the first audio sooner.
    """
    start = time.perf_counter()
    first = math.nan
    ac = vo = audio = 0.0
    kept: list[np.ndarray] = []
    stream = synth.stream(text, chunked=chunked)
    for chunk in stream:
        if math.isnan(first):
            first = time.perf_counter() - start
        ac += chunk.acoustic_s
        vo += chunk.vocoder_s
        audio += chunk.duration_s
        if keep_audio:
            kept.append(chunk.audio)
        if first_only:
            stream.close()
            break
    return Run(time.perf_counter() - start, first, ac, vo, audio, tuple(kept))


def _rtf(runs: Sequence[Run]) -> StageRtf:
    """Aggregate RTF of a group of runs (sum of seconds / sum of audio seconds)."""
    audio = sum(r.audio_s for r in runs)
    if audio <= 0:
        return StageRtf(math.nan, math.nan, math.nan)
    return StageRtf(
        acoustic=sum(r.acoustic_s for r in runs) / audio,
        vocoder=sum(r.vocoder_s for r in runs) / audio,
        total=sum(r.wall_s for r in runs) / audio,
    )


def _median_rtf(rtfs: Sequence[StageRtf]) -> StageRtf:
    """Median of each stage's RTF over repeats (taken separately, so the parts need not add up exactly)."""
    return StageRtf(
        acoustic=float(np.median([r.acoustic for r in rtfs])),
        vocoder=float(np.median([r.vocoder for r in rtfs])),
        total=float(np.median([r.total for r in rtfs])),
    )


@dataclass(frozen=True)
class Timings:
    """What `time_synthesizer` measured on one synthesizer (seconds; RTFs are medians over timed passes)."""

    load_s: float
    latency: Percentiles
    rtf: StageRtf
    by_length: tuple[LengthRtf, ...]
    first_audio_s: float
    audio_s: float
    audio: tuple[tuple[np.ndarray, ...], ...]  # per text, per sentence: the first pass's audio
    sample_rate: int


def time_synthesizers(
    loads: Sequence[Callable[[], Any]],
    texts: Sequence[str],
    probes: Sequence[str],
    targets: Sequence[int],
    first_probe: str,
    warmup: int,
    repeat: int,
    keep: int,
) -> tuple[list[Timings], list[Any]]:
    """Time several synthesizers with their runs interleaved, so that they share the machine's noise.

    Each is loaded (timed) first. Then `warmup` untimed + `repeat` timed passes over `texts`, where every
    text is synthesised by each synthesizer in turn before the next text; then the same on each length
    probe (whole sentences vocoded at once). First-audio latency comes from streaming runs (chunked
    vocoder) of `first_probe` stopped at the first chunk. The first pass keeps the audio of the first
    `keep` texts, per sentence.
    Returns the timings and the loaded synthesizers (for quality), in the order of `loads`.
    """
    synths, load_s = [], []
    for load in loads:
        t0 = time.perf_counter()
        synths.append(load())
        load_s.append(time.perf_counter() - t0)
    n = len(synths)
    per_text: list[list[list[float]]] = [[[] for _ in texts] for _ in range(n)]
    passes: list[list[StageRtf]] = [[] for _ in range(n)]
    audio: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(n)]
    audio_s = [0.0] * n
    for p in range(warmup + repeat):
        runs: list[list[Run]] = [[] for _ in range(n)]
        for i, t in enumerate(texts):
            for k, synth in enumerate(synths):
                runs[k].append(run_once(synth, t, keep_audio=(p == 0 and i < keep)))
        for k in range(n):
            if p == 0:
                audio[k] = [r.chunks for r in runs[k][:keep]]
                audio_s[k] = sum(r.audio_s for r in runs[k])
            if p >= warmup:
                passes[k].append(_rtf(runs[k]))
                for i, r in enumerate(runs[k]):
                    per_text[k][i].append(r.wall_s)
    by_length: list[list[LengthRtf]] = [[] for _ in range(n)]
    for target, text in zip(targets, probes):
        probe_runs: list[list[Run]] = [[] for _ in range(n)]
        for _ in range(warmup + repeat):
            for k, synth in enumerate(synths):
                probe_runs[k].append(run_once(synth, text))
        for k in range(n):
            kept = probe_runs[k][warmup:]
            by_length[k].append(LengthRtf(target, len(text), kept[0].audio_s, _median_rtf([_rtf([r]) for r in kept])))
    first: list[list[Run]] = [[] for _ in range(n)]
    for _ in range(warmup + repeat):
        for k, synth in enumerate(synths):
            first[k].append(run_once(synth, first_probe, first_only=True, chunked=True))
    first = [f[warmup:] for f in first]
    out = []
    for k in range(n):
        lat = np.array([np.median(w) for w in per_text[k]])
        out.append(
            Timings(
                load_s=load_s[k],
                latency=Percentiles(float(np.percentile(lat, 50)), float(np.percentile(lat, 95))),
                rtf=_median_rtf(passes[k]),
                by_length=tuple(by_length[k]),
                first_audio_s=float(np.median([r.first_chunk_s for r in first[k]])),
                audio_s=audio_s[k],
                audio=tuple(audio[k]),
                sample_rate=int(synths[k].sample_rate),
            )
        )
    return out, synths


def _relative(ref: Sequence[Sequence[np.ndarray]], test: Sequence[Sequence[np.ndarray]], sample_rate: int) -> Any:
    """The mean `speedy.quality.QualityReport` and the sentences compared (None, 0 when none was):
    `speedy.quality.compare` sentence by sentence,
    averaged with `summarize`. A text split differently from its reference is compared as one piece; a
    sentence `compare` refuses (e.g. silent) is skipped with a warning."""
    from speedy import quality as q

    reports = []
    for i, (r_text, t_text) in enumerate(zip(ref, test)):
        if len(r_text) != len(t_text):
            _LOGGER.warning(
                "text %d: %d sentences vs %d in the reference; compared as one", i + 1, len(t_text), len(r_text)
            )
            r_text, t_text = (np.concatenate(r_text),), (np.concatenate(t_text),)
        for r_snt, t_snt in zip(r_text, t_text):
            try:
                reports.append(q.compare(r_snt, t_snt, sample_rate))
            except InputError as e:
                _LOGGER.warning("text %d: a sentence was not compared (%s)", i + 1, e)
    if not reports:
        return None, 0
    return q.summarize(reports), len(reports)


def _dnsmos_ovrl(test: Sequence[Sequence[np.ndarray]], sample_rate: int) -> float | None:
    """Mean DNSMOS OVRL over the `dnsmos_segments` of every text (each text's sentences joined)."""
    from speedy.quality import dnsmos

    scores = [
        dnsmos(seg, sample_rate)["ovrl"]
        for text in test
        if text
        for seg in dnsmos_segments(np.concatenate(text), sample_rate)
    ]
    return float(np.mean(scores)) if scores else None


def measure_quality(
    ref: Sequence[Sequence[np.ndarray]] | None,
    test: Sequence[Sequence[np.ndarray]],
    sample_rate: int,
    is_reference: bool,
    with_dnsmos: bool,
    components: Any = None,
) -> Quality:
    """Quality of `test` (per text, per sentence audio): relative metrics against `ref` (None = skip; zeros
    for the reference itself, which is not re-analysed), with `with_dnsmos` DNSMOS OVRL, and the
    per-component figures `components` (a `speedy.fidelity.ComponentFidelity`, or None)."""
    from speedy.quality import QualityReport

    rel: Any = None
    n = 0
    if ref is not None and is_reference:
        rel, n = QualityReport(0.0, 0.0, 0.0, 0.0, 0.0), sum(len(t) for t in test)
    elif ref is not None:
        rel, n = _relative(ref, test, sample_rate)
    ovrl = _dnsmos_ovrl(test, sample_rate) if with_dnsmos else None
    comp = (
        {}
        if components is None
        else {
            "vocoder_mcd_db": components.vocoder_mcd_db,
            "acoustic_mcd_db": components.acoustic_mcd_db,
            "duration_match": components.duration_match,
            "component_utterances": components.utterances,
        }
    )
    if rel is None:
        return Quality(dnsmos_ovrl=ovrl, sentences=n, **comp)
    return Quality(
        mcd_db=rel.mcd_db,
        f0_rmse_hz=rel.f0_rmse_hz,
        vuv_error=rel.vuv_error,
        dnsmos_ovrl=ovrl,
        sentences=n,
        f0_gpe=rel.f0_gpe,
        f0_fpe_cents=rel.f0_fpe_cents,
        **comp,
    )
