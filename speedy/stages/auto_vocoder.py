"""`speedy quantize --recipe auto` on a vocoder-only artifact: the fastest vocoder recipe within a fidelity budget.

`speedy.stages.auto` picks an (acoustic, vocoder) pair; a vocoder-only artifact (e.g. the hifigan family) has
no acoustic model and takes a recording, so its search is over the vocoder's recipes alone:

1. Build each candidate once with the quantize stage (`VOCODER_RECIPES`; FP32 is the source itself), calibrated
   on the calibration text minus its last `check_sentences` (mixed checks itself on the `check_sentences` before
   those).
2. Those held-out sentences are spoken by the default voice, resampled to the vocoder's rate and analysed with
   the family's mel settings (`speedy.stages.copy_calib.recording_mels`: the input `speedy synth --wav` and
   bench's spoken-copy rows give the vocoder). Each candidate vocodes them, timed on this machine (runs
   interleaved across candidates, median of `repeat` after a warm-up); fidelity is the MCD of its copy-
   synthesised audio against FP32's (mean over sentences).
3. Candidates within `max_mcd` and at least `min_gain` faster than FP32 are tried fastest first: the first whose
   DNSMOS OVRL (over the concatenated held-out audio, in 9.5 s segments) is within `max_dnsmos_drop` of FP32's
   wins. FP32 is the fallback.

The manifest's `extra["quantize"]` holds every candidate's measurements and the DNSMOS trials, with the keys of
the pair search (`chosen`, `candidates`, `pairs_tried`) so that the CLI prints either.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speedy.artifacts import Manifest, atomic_artifact, lineage_step, read_manifest, sha256_file, write_manifest
from speedy.errors import InputError

if TYPE_CHECKING:
    from speedy.stages.auto import AutoBudget

_LOGGER = logging.getLogger(__name__)

VOCODER_RECIPES = ("fp32", "int8-static", "mixed", "fp16")
"""The candidates (int8-dynamic and int8-hybrid leave vocoders float). `mixed` keeps layer groups float until its
own held-out check (the last `check_sentences` of the calibration part, not the search's) is within
`MIXED_MARGIN` × `max_mcd`: a margin, so that it is not just over the budget on the search's sentences."""
MIXED_MARGIN = 0.9


@dataclass(frozen=True)
class VocoderCandidate:
    """One vocoder recipe as measured: seconds per held-out pass (median), MCD vs FP32, DNSMOS drop if tried."""

    component: str
    recipe: str
    seconds: float
    mcd_db: float
    duration_match: None
    size_bytes: int
    within_budget: bool
    dnsmos_drop: float | None = None


def _vocoders(folders: dict[str, Path], threads: int | None) -> dict[str, Any]:
    from speedy.synth import Synthesizer

    return {recipe: Synthesizer.load(folder, threads=threads) for recipe, folder in folders.items()}


def _time(synths: dict[str, Any], mels: Sequence[np.ndarray], repeat: int) -> tuple[dict[str, float], dict[str, list]]:
    """Median seconds per pass over `mels` for each synthesizer's vocoder (interleaved), and its last outputs."""
    times: dict[str, list[float]] = {k: [] for k in synths}
    audio: dict[str, list] = {}
    for r in range(repeat + 1):
        for key, synth in synths.items():
            t0 = time.perf_counter()
            audio[key] = [synth.vocode(m) for m in mels]
            if r:
                times[key].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}, audio


def _ovrl(clips: Sequence[np.ndarray], sr: int) -> float:
    from speedy.quality import dnsmos, dnsmos_segments

    audio = np.concatenate(list(clips))
    return float(np.mean([dnsmos(seg, sr)["ovrl"] for seg in dnsmos_segments(audio, sr)]))


def search_vocoder(
    source: Path,
    out: Path,
    budget: AutoBudget,
    *,
    calibration_text: Sequence[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    student: Path | None = None,
) -> Manifest:
    """Write the fastest vocoder recipe within `budget` from the vocoder-only FP32 ONNX artifact `source`."""
    from speedy.corpus import load_corpus
    from speedy.quality import mcd_against, reference_features
    from speedy.stages.copy_calib import recording_mels
    from speedy.stages.quantize import QuantRecipe, quantize

    say = progress or (lambda m: _LOGGER.info(m))
    src = read_manifest(source)
    if not src.vocoder_only:
        raise InputError("internal: search_vocoder is for vocoder-only artifacts")
    if student is not None:
        raise InputError(
            "--student adds a distilled voice's vocoder to the pair search; not for a vocoder-only artifact"
        )
    voc = src.components["vocoder"]
    if voc.format != "onnx" or voc.precision != "fp32":
        raise InputError("quantize --recipe auto takes an FP32 ONNX artifact (run 'speedy export')")
    text = list(calibration_text) if calibration_text is not None else load_corpus("calib")
    calib_n = budget.calib_sentences or QuantRecipe.named("int8-static").calib_sentences
    if len(text) < calib_n + 2 * budget.check_sentences:
        raise InputError(
            f"the calibration text has {len(text)} sentences; auto needs at least "
            f"{calib_n + 2 * budget.check_sentences} (calibration, mixed's check and the search's held-out sentences)"
        )
    held_out, calib = text[-budget.check_sentences :], text[: -budget.check_sentences]
    sr = src.audio.sample_rate
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        work = staging.parent / (staging.name + ".candidates")
        work.mkdir(exist_ok=True)
        try:
            folders = {"fp32": Path(source)}
            for recipe in VOCODER_RECIPES[1:]:
                say(f"auto: building the {recipe} candidate")
                extra = {"max_mcd": MIXED_MARGIN * budget.max_mcd, "check_sentences": budget.check_sentences}
                named = QuantRecipe.named(recipe, calib_sentences=budget.calib_sentences, **extra)
                quantize(source, work / recipe, named, calibration_text=calib, progress=say)
                folders[recipe] = work / recipe
            mels = recording_mels(src, held_out, len(held_out), say)
            say(f"auto: timing {len(folders)} candidates on {len(mels)} held-out sentences")
            seconds, audio = _time(_vocoders(folders, budget.threads), mels, budget.repeat)
            refs = [reference_features(a, sr) for a in audio["fp32"]]
            cands: dict[str, VocoderCandidate] = {}
            for recipe, folder in folders.items():
                mcd = 0.0
                if recipe != "fp32":
                    mcd = float(np.mean([mcd_against(r, a, sr, align="auto") for r, a in zip(refs, audio[recipe])]))
                ok = mcd <= budget.max_mcd
                size = (folder / read_manifest(folder).components["vocoder"].file).stat().st_size
                cands[recipe] = VocoderCandidate("vocoder", recipe, seconds[recipe], mcd, None, size, ok)
                say(
                    f"auto: vocoder {recipe}: {seconds[recipe] * 1000:.0f} ms, MCD {mcd:.2f} dB"
                    + ("" if ok else " (over budget)")
                )
            chosen, tried = _choose(cands, audio, sr, budget, say)
            folder = folders[chosen]
            for f in (read_manifest(folder).components["vocoder"].file,):
                shutil.copyfile(folder / f, staging / voc.file)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        precision = chosen
        comps = {
            "vocoder": replace(
                voc,
                precision=precision,
                sha256=sha256_file(staging / voc.file),
                extra={**dict(voc.extra), "auto_recipe": chosen},
            )
        }
        report = {
            "budget": asdict(budget),
            "held_out_sentences": len(mels),
            "chosen": {"vocoder": chosen},
            "candidates": [asdict(c) for c in cands.values()],
            "pairs_tried": tried,
        }
        step = lineage_step(
            "quantize", {"recipe": "auto", **asdict(budget)}, time.perf_counter() - start, "onnxruntime", "onnx"
        )
        manifest = src.with_step(step, components=comps, extra={**dict(src.extra), "quantize": report})
        write_manifest(staging, manifest)
    return manifest


def _choose(
    cands: dict[str, VocoderCandidate],
    audio: dict[str, list],
    sr: int,
    budget: AutoBudget,
    say: Callable[[str], None],
) -> tuple[str, list[dict]]:
    """The fastest in-budget candidate whose DNSMOS holds (FP32 as the fallback); updates `cands` with drops."""
    base = cands["fp32"].seconds
    order = sorted(
        (
            c
            for c in cands.values()
            if c.recipe != "fp32" and c.within_budget and c.seconds <= (1 - budget.min_gain) * base
        ),
        key=lambda c: c.seconds,
    )
    tried: list[dict] = []
    ref = _ovrl(audio["fp32"], sr) if order else None
    for c in order:
        assert ref is not None
        drop = ref - _ovrl(audio[c.recipe], sr)
        cands[c.recipe] = replace(c, dnsmos_drop=round(drop, 4))
        tried.append({"vocoder": c.recipe, "seconds": c.seconds, "dnsmos_drop": round(drop, 4)})
        say(f"auto: vocoder {c.recipe}: DNSMOS {-drop:+.3f} vs FP32")
        if drop <= budget.max_dnsmos_drop:
            return c.recipe, tried
    tried.append({"vocoder": "fp32", "seconds": base, "dnsmos_drop": 0.0})
    return "fp32", tried
