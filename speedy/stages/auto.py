"""Accuracy-aware search (`speedy quantize --recipe auto`): the fastest per-component precision within a
fidelity budget, with speed measured on this machine rather than assumed.

Like the accuracy-aware tuning of Intel's Neural Compressor or NNCF, but the candidates are whole
per-component recipes and both axes are measured:

1. Build every candidate file once with the existing recipes (`quantize`): acoustic ∈ {fp32, int8-hybrid,
   int8-static, fp16}, vocoder ∈ {fp32, int8-static, fp16}. With `--backends onnxruntime,openvino`, every
   precision of every other listed backend (`speedy.backends`: OpenVINO f32 / bf16 / int8) is compiled from
   the FP32 source too and joins both components' candidates as `openvino-fp32`, … A precision this CPU
   lacks (bf16 without AVX512_BF16 / AMX) is left out and said so in the report.
2. On held-out sentences (the last `check_sentences` of the calibration text, which the calibrator never
   reads, and never `calibration/eval.txt`, the benchmark's test text), time each candidate on its own
   component (acoustic on the phone ids, vocoder on the FP32 mels; runs interleaved across candidates) and
   measure its fidelity against FP32 with `speedy.fidelity` (acoustic MCD at FP32 durations, duration
   match; vocoder MCD on the FP32 mel). Component errors are measured apart because they are apart: the
   acoustic candidates run with the FP32 vocoder and the other way round.
   With a student (`--student DIR`: the exported ONNX artifact of a `speedy distill` run), its vocoder is
   one more vocoder candidate, `distilled`, measured like the rest.
3. Order the pairs whose components are both within budget and that are at least `min_gain` faster than
   FP32 by their summed time (pairs within `tie` of the fastest one left count as tied and go by their
   summed MCD, so a tie between backends goes to the better fidelity); the first whose whole pipeline keeps
   DNSMOS OVRL within `max_dnsmos_drop` of FP32 wins. FP32 itself always qualifies.
The manifest records the CPU's vector extensions the choice was measured on (`extra["quantize"]["isa"]`);
`speedy info`, `synth` and `serve` warn where the CPU lacks the decisive ones (speedy.runtime.isa_warnings).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import (
    Component,
    Manifest,
    atomic_artifact,
    component_files,
    component_size,
    lineage_step,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.backends import AUTO_NAMES, backend, cpu_isa, missing_isa, resolve
from speedy.errors import InputError
from speedy.families import for_family, multi_graph

_LOGGER = logging.getLogger(__name__)

ACOUSTIC_RECIPES = ("fp32", "int8-hybrid", "int8-static", "fp16")
VOCODER_RECIPES = ("fp32", "int8-static", "fp16", "distilled")


@dataclass(frozen=True)
class AutoBudget:
    """What the search may lose. max_mcd: per component, dB; max_dnsmos_drop: DNSMOS OVRL points below FP32;
    min_duration_match: share of tokens whose frame count must equal FP32's; min_gain: a pair must be at
    least this much faster than FP32 (0.05 = 5 %) to be taken, so that timing noise on a shared machine
    cannot pick a lossy pair that is no faster; tie: pairs within this share of each other's time are
    ordered by fidelity; backends: where components may run, among the backend table's `auto` records
    (AUTO_NAMES; ONNX Runtime's candidates are the quantize recipes, another backend's its compile
    precisions; onnxruntime must be one: FP32 ONNX is the reference every candidate is measured against); check_sentences: held-out
    sentences measured; repeat: timed runs per candidate (median); calib_sentences: calibration sentences for
    the candidates' recipes (None = each recipe's default)."""

    max_mcd: float = 1.5
    max_dnsmos_drop: float = 0.05
    min_duration_match: float = 0.95
    min_gain: float = 0.05
    tie: float = 0.03
    backends: tuple[str, ...] = ("onnxruntime",)
    check_sentences: int = 6
    repeat: int = 3
    threads: int | None = None
    calib_sentences: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.max_mcd <= 20:
            raise InputError(f"--max-mcd must be in (0, 20] dB, got {self.max_mcd}")
        if not 0 <= self.max_dnsmos_drop <= 4:
            raise InputError(f"--max-dnsmos-drop must be in [0, 4], got {self.max_dnsmos_drop}")
        if not 0 <= self.min_duration_match <= 1:
            raise InputError(f"--min-duration-match must be in [0, 1], got {self.min_duration_match}")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"min gain must be in [0, 1), got {self.min_gain}")
        unknown = [b for b in self.backends if b not in AUTO_NAMES]
        if unknown or not self.backends:
            raise InputError(
                f"--backends: unknown backend(s) {', '.join(unknown) or '(none given)'}; "
                f"supported: {', '.join(AUTO_NAMES)}"
            )
        if "onnxruntime" not in self.backends:
            raise InputError("--backends must include onnxruntime (the FP32 ONNX reference runs on it)")
        if not 0 <= self.tie < 0.5:
            raise InputError(f"tie must be in [0, 0.5), got {self.tie}")
        if not 1 <= self.check_sentences <= 100:
            raise InputError(f"check sentences must be in [1, 100], got {self.check_sentences}")
        if self.repeat < 1:
            raise InputError(f"repeat must be at least 1, got {self.repeat}")


@dataclass(frozen=True)
class Candidate:
    """One component recipe as measured: seconds per held-out pass (median), fidelity vs FP32."""

    component: str
    recipe: str
    seconds: float
    backend: str
    mcd_db: float
    duration_match: float | None
    size_bytes: int
    within_budget: bool


class _Pair:
    """The `speedy.fidelity` runner protocol over one acoustic and one vocoder runner."""

    def __init__(self, acoustic: Any, vocoder: Any, manifest: Manifest) -> None:
        self.acoustic, self._vocoder, self.manifest = acoustic, vocoder, manifest
        self.sample_rate = manifest.audio.sample_rate
        self._table = {s: i for i, s in enumerate(manifest.frontend.symbols)}

    def ids_for(self, phones: tuple[str, ...]) -> np.ndarray:
        from speedy.synth import phones_to_ids

        return phones_to_ids(self._table, phones, self.manifest.audio.max_ids)

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        from speedy.synth import vocode_padded

        a = self.manifest.audio
        return vocode_padded(self._vocoder, mel, a.min_vocoder_frames, a.hop_size)


def student_vocoder(src: Manifest, student: Path) -> Path:
    """The FP32 ONNX vocoder file of a distilled artifact, after checking that it fits `src`'s audio."""
    st = read_manifest(student)
    voc = st.components.get("vocoder")
    if "distill" not in [s.stage for s in st.lineage] or voc is None:
        raise InputError(f"--student {student}: not a distilled artifact (run 'speedy distill', then 'speedy export')")
    if voc.format != "onnx" or voc.precision != "fp32":
        raise InputError(f"--student {student}: its vocoder is {voc.format} {voc.precision}; give the FP32 ONNX export")
    a, b = src.audio, st.audio
    if (a.sample_rate, a.hop_size, a.n_mels) != (b.sample_rate, b.hop_size, b.n_mels):
        raise InputError(f"--student {student}: its vocoder's audio settings differ from {src.family}'s")
    return student / voc.file


@dataclass(frozen=True)
class _Built:
    """One built candidate: its component as its own manifest records it (file, format, precision, extra),
    the folder holding its files, and the backend that runs it."""

    component: Component
    root: Path
    backend: str

    def files(self) -> list[Path]:
        """The component's file and the weights file it names (an OpenVINO IR's .bin)."""
        return component_files(self.root, self.component)

    def size(self) -> int:
        return component_size(self.root, self.component)


def _build_candidates(
    source: Path,
    work: Path,
    say: Callable[[str], None],
    text: Sequence[str] | None,
    budget: AutoBudget,
    student: Path | None = None,
) -> tuple[dict[tuple[str, str], _Built], list[str]]:
    """({(component, label): built} for every candidate, each built once; the candidates left out and why).

    Labels: the quantize recipe on ONNX Runtime (fp32, int8-hybrid, …, distilled), "BACKEND-PRECISION" on
    another backend (openvino-bf16, …)."""
    from speedy.stages.compile import CompileConfig, compile_artifact
    from speedy.stages.quantize import QuantRecipe, quantize

    src = read_manifest(source)
    components = tuple(for_family(src.family).graphs)  # single-graph families only: auto refuses host loops
    built = {(c, "fp32"): _Built(src.components[c], source, "onnxruntime") for c in components}
    if student is not None:
        path = student_vocoder(src, student)
        built[("vocoder", "distilled")] = _Built(
            replace(src.components["vocoder"], file=path.name), path.parent, "onnxruntime"
        )
    for recipe in ("int8-hybrid", "int8-static", "fp16"):
        say(f"auto: building the {recipe} candidates")
        out = work / recipe
        m = quantize(
            source,
            out,
            QuantRecipe.named(recipe, calib_sentences=budget.calib_sentences),
            calibration_text=text,
            progress=say,
        )
        for comp in components:
            if m.components[comp].precision != "fp32":
                built[(comp, recipe)] = _Built(m.components[comp], out, "onnxruntime")
    built = {k: v for k, v in built.items() if k[1] in (ACOUSTIC_RECIPES if k[0] == "acoustic" else VOCODER_RECIPES)}
    left_out: list[str] = []
    for name in (n for n in budget.backends if n != "onnxruntime"):
        record = backend(name)
        for precision in record.precisions:
            lacking = missing_isa(record.precision_needs.get(precision, ()))
            if lacking:
                left_out.append(f"{name}-{precision}: {lacking}")
                say(f"auto: leaving out {name} {precision}: it {lacking}")
                continue
            say(f"auto: compiling the {name} {precision} candidates")
            out = work / f"{name}-{precision}"
            config = CompileConfig(backend=name, precision=precision, threads=budget.threads)
            m = compile_artifact(source, out, config, progress=say)
            for comp in components:
                built[(comp, f"{name}-{precision}")] = _Built(m.components[comp], out, name)
    return built, left_out


def _runner(src: Manifest, comp: str, built: _Built, threads: int | None) -> Any:
    from speedy.runtime import RuntimeOptions, load_runner

    manifest = replace(src, components={**src.components, comp: built.component})
    return load_runner(manifest, comp, built.root, RuntimeOptions(threads=threads))


def _time(calls: Mapping[tuple[str, str], Callable[..., object]], repeat: int) -> dict[tuple[str, str], float]:
    """Median seconds of each call over `repeat` runs after one warm-up, interleaved across calls."""
    times: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
    for r in range(repeat + 1):
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            if r:
                times[key].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def search(
    source: Path,
    out: Path,
    budget: AutoBudget,
    *,
    calibration_text: Sequence[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    student: Path | None = None,
) -> Manifest:
    """Write the fastest candidate within `budget` from the FP32 ONNX artifact `source` into `out`.

    `student`: a distilled voice's FP32 ONNX artifact whose vocoder joins the candidates as `distilled`.

    The manifest's `extra["quantize"]` holds every candidate's measurements and the pairs tried.
    """
    from speedy.controls import DEFAULT_CONTROLS
    from speedy.corpus import load_corpus
    from speedy.fidelity import component_fidelity, utterance_ids
    from speedy.quality import dnsmos
    from speedy.stages.quantize import QuantRecipe

    say = progress or (lambda m: _LOGGER.info(m))
    src = read_manifest(source)
    if multi_graph(src) or any(c.format != "onnx" or c.precision != "fp32" for c in src.components.values()):
        raise InputError("quantize --recipe auto takes a single-graph FP32 ONNX artifact (run 'speedy export')")
    if src.vocoder_only:  # no pair to pick: the vocoder's recipes alone
        from speedy.stages.auto_vocoder import search_vocoder

        return search_vocoder(
            source, out, budget, calibration_text=calibration_text, force=force, progress=progress, student=student
        )
    text = list(calibration_text) if calibration_text is not None else load_corpus("calib")
    calib_n = budget.calib_sentences or QuantRecipe.named("int8-static").calib_sentences
    if len(text) < calib_n + budget.check_sentences:
        raise InputError(
            f"the calibration text has {len(text)} sentences; auto needs at least "
            f"{calib_n + budget.check_sentences} (calibration + held-out check sentences)"
        )
    held_out = text[-budget.check_sentences :]
    if student is not None:
        student_vocoder(src, student)  # checked before minutes of candidate building
    from speedy.stages.compile import CompileConfig

    for name in budget.backends:  # a missing extra is refused before the minutes of candidate building
        preflight = backend(name).preflight
        if preflight:
            resolve(preflight)(src, source, CompileConfig(backend=name, threads=budget.threads))
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        work = staging.parent / (staging.name + ".candidates")
        work.mkdir(exist_ok=True)
        try:
            files, left_out = _build_candidates(source, work, say, text[: -budget.check_sentences], budget, student)
            say(f"auto: measuring {len(files)} candidates on {len(held_out)} held-out sentences")
            runners = {k: _runner(src, k[0], b, budget.threads) for k, b in files.items()}
            fp32 = _Pair(runners[("acoustic", "fp32")], runners[("vocoder", "fp32")], src)
            ids = utterance_ids(fp32, held_out)
            mels = [fp32.acoustic(x, DEFAULT_CONTROLS)[0] for x in ids]
            calls = {
                k: (lambda r=r: [r(x, DEFAULT_CONTROLS) for x in ids])
                if k[0] == "acoustic"
                else (lambda r=r: [r(m) for m in mels])
                for k, r in runners.items()
            }
            seconds = _time(calls, budget.repeat)
            cands: dict[tuple[str, str], Candidate] = {}
            ref_cache: dict = {}
            for (comp, recipe), runner in runners.items():
                if recipe == "fp32":
                    mcd, match = 0.0, (1.0 if comp == "acoustic" else None)
                else:
                    pair = (
                        _Pair(runner, fp32._vocoder, src) if comp == "acoustic" else _Pair(fp32.acoustic, runner, src)
                    )
                    f = component_fidelity(fp32, pair, ids, ref_cache)
                    got = f.acoustic_mcd_db if comp == "acoustic" else f.vocoder_mcd_db
                    assert got is not None, f"no MCD for {comp} {recipe}: every held-out utterance was skipped"
                    mcd = float(got)
                    match = f.duration_match if comp == "acoustic" else None
                ok = mcd <= budget.max_mcd and (match is None or match >= budget.min_duration_match)
                cands[(comp, recipe)] = Candidate(
                    component=comp,
                    recipe=recipe,
                    seconds=seconds[(comp, recipe)],
                    backend=files[(comp, recipe)].backend,
                    mcd_db=mcd,
                    duration_match=match,
                    size_bytes=files[(comp, recipe)].size(),
                    within_budget=ok,
                )
                say(
                    f"auto: {comp} {recipe}: {seconds[(comp, recipe)] * 1000:.0f} ms, MCD {mcd:.2f} dB"
                    + ("" if match is None else f", durations {100 * match:.0f} %")
                    + ("" if ok else " (over budget)")
                )
            chosen, tried = _choose(cands, runners, fp32, ids, src, budget, dnsmos, say)
            comps: dict[str, Component] = {}
            for comp, recipe in chosen.items():
                pick = files[(comp, recipe)]
                if pick.backend == "onnxruntime":  # the ONNX file under the source's name
                    shutil.copyfile(pick.root / pick.component.file, staging / src.components[comp].file)
                    comps[comp] = replace(
                        src.components[comp],
                        precision="fp32" if recipe == "distilled" else recipe,  # a student is a float graph
                        sha256=sha256_file(staging / src.components[comp].file),
                        extra={**dict(src.components[comp].extra), "auto_recipe": recipe},
                    )
                else:  # another backend's files as it wrote them (OpenVINO: .xml + .bin)
                    for path in pick.files():
                        shutil.copyfile(path, staging / path.name)
                    comps[comp] = replace(pick.component, extra={**dict(pick.component.extra), "auto_recipe": recipe})
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report = {
            "budget": asdict(budget),
            "isa": list(cpu_isa()),
            "left_out": left_out,
            "held_out_sentences": len(ids),
            "chosen": chosen,
            "candidates": [asdict(c) for c in cands.values()],
            "pairs_tried": tried,
        }
        step = lineage_step(
            "quantize",
            {"recipe": "auto", **asdict(budget), **({"student": str(student)} if student else {})},
            time.perf_counter() - start,
            *dict.fromkeys(lib for name in budget.backends for lib in backend(name).libs),
        )
        manifest = src.with_step(step, components=comps, extra={**dict(src.extra), "quantize": report})
        write_manifest(staging, manifest)
    return manifest


def _choose(
    cands: dict[tuple[str, str], Candidate],
    runners: dict,
    fp32: _Pair,
    ids: list,
    src: Manifest,
    budget: AutoBudget,
    dnsmos: Callable,
    say: Callable[[str], None],
) -> tuple[dict[str, str], list[dict]]:
    """The fastest pair of in-budget components whose whole-pipeline DNSMOS holds (FP32 as the fallback)."""
    from speedy.quality import dnsmos_segments

    sr = src.audio.sample_rate

    def ovrl(pair: _Pair) -> float:
        from speedy.controls import DEFAULT_CONTROLS

        audio = np.concatenate([pair.vocode(pair.acoustic(x, DEFAULT_CONTROLS)[0]) for x in ids])
        return float(np.mean([dnsmos(seg, sr)["ovrl"] for seg in dnsmos_segments(audio, sr)]))

    ac = [c for c in cands.values() if c.component == "acoustic" and c.within_budget]
    vo = [c for c in cands.values() if c.component == "vocoder" and c.within_budget]
    base = cands[("acoustic", "fp32")].seconds + cands[("vocoder", "fp32")].seconds
    pairs = sorted(((a, v) for a in ac for v in vo), key=lambda p: p[0].seconds + p[1].seconds)
    pairs = [
        p
        for p in pairs
        if (p[0].recipe == p[1].recipe == "fp32") or p[0].seconds + p[1].seconds <= (1 - budget.min_gain) * base
    ]
    pairs = _tie_order(pairs, budget.tie)
    ref = ovrl(fp32)
    tried = []
    for a, v in pairs:
        if a.recipe == "fp32" and v.recipe == "fp32":
            tried.append({"acoustic": "fp32", "vocoder": "fp32", "seconds": a.seconds + v.seconds, "dnsmos_drop": 0.0})
            break
        pair = _Pair(runners[("acoustic", a.recipe)], runners[("vocoder", v.recipe)], src)
        drop = ref - ovrl(pair)
        tried.append(
            {"acoustic": a.recipe, "vocoder": v.recipe, "seconds": a.seconds + v.seconds, "dnsmos_drop": round(drop, 4)}
        )
        say(f"auto: acoustic {a.recipe} + vocoder {v.recipe}: DNSMOS {-drop:+.3f} vs FP32")
        if drop <= budget.max_dnsmos_drop:
            return {"acoustic": a.recipe, "vocoder": v.recipe}, tried
    return {"acoustic": "fp32", "vocoder": "fp32"}, tried


def _tie_order(pairs: list[tuple[Candidate, Candidate]], tie: float) -> list[tuple[Candidate, Candidate]]:
    """`pairs` (sorted by summed seconds) reordered so that, at each step, of the pairs within `tie` of the
    fastest one left the one with the smallest summed MCD comes first: a speed difference inside timing
    noise (two backends at the same speed) is decided by fidelity."""
    left, out = list(pairs), []
    while left:
        fastest = left[0][0].seconds + left[0][1].seconds
        group = [p for p in left if p[0].seconds + p[1].seconds <= fastest * (1 + tie)]
        best = min(group, key=lambda p: p[0].mcd_db + p[1].mcd_db)
        out.append(best)
        left.remove(best)
    return out
