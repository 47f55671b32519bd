"""Prune stage: a torch artifact → a smaller torch artifact (real structured pruning + recovery).

Steps: read the torch artifact, score every prunable group of the chosen component(s) with the
criterion, cut all groups by one fraction so the parameters fall to the target, then distil the
pruned student from the unpruned teacher on calibration text (`speedy.prune.recover`), checkpointing
beside the output so that a re-run with the same options resumes. The result is written atomically as the
family's pruned variant (its `PruneMap.family`, per-group widths in config.json), which `export` takes on.
What prune needs of a family is its FamilySpec's `prune` (speedy.families.PruneMap); a family without one
is refused in one line.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import Manifest, read_manifest
from speedy.errors import InputError
from speedy.families import prune_map

_LOGGER = logging.getLogger(__name__)

COMPONENT_CHOICES = ("acoustic", "vocoder", "both")
#: Evaluation sentences for the after-recovery MCD (taken from the eval corpus, never calibration text).
EVAL_SENTENCES = 4
#: Vocoder re-fit: utterances (64-frame crops) and output samples per crop used for the least squares.
VOCODER_REFIT_SENTENCES = 32
VOCODER_REFIT_ROWS = 160


@dataclass(frozen=True)
class PruneConfig:
    """Options of the prune stage.

    target_params: parameters kept / before, per pruned component, in (0, 1) (0.7 = 30 % fewer).
    component: "acoustic" | "vocoder" | "both". criterion: see `speedy.prune.criteria.CRITERIA`
    (default taylor: on the default voice it lost far less before recovery than l1).
    allocation: "global" ranks units across groups by importance per parameter; "uniform" removes the
    same fraction from every group.
    kinds: group kinds allowed to shrink (None = all of the component's kinds).
    round_to: channel counts become multiples of this. refit: re-solve the layers that read pruned
    units by least squares towards the unpruned outputs (`speedy.prune.reconstruct`). calib_sentences:
    sentences for data criteria, re-fit and recovery. recover_steps, lr, hidden_weight, checkpoint_every:
    see `RecoveryConfig`. threads: torch intra-op threads.
    """

    target_params: float = 0.7
    component: str = "acoustic"
    criterion: str = "taylor"
    allocation: str = "global"
    kinds: tuple[str, ...] | None = None
    round_to: int = 8
    refit: bool = True
    calib_sentences: int = 300
    recover_steps: int = 0
    lr: float = 3e-5
    hidden_weight: float = 1.0
    checkpoint_every: int = 50
    seed: int = 0
    threads: int | None = None
    evaluate: bool = True

    def __post_init__(self) -> None:
        from speedy.prune.criteria import CRITERIA

        if not (isinstance(self.target_params, (int, float)) and 0.0 < self.target_params < 1.0):
            raise InputError(f"--target-params must be in (0, 1) (parameters kept), got {self.target_params}")
        if self.component not in COMPONENT_CHOICES:
            raise InputError(f"--component must be one of {', '.join(COMPONENT_CHOICES)}, got {self.component!r}")
        if self.criterion not in CRITERIA:
            raise InputError(f"unknown --criterion {self.criterion!r}; choose one of: {', '.join(CRITERIA)}")
        if self.allocation not in ("uniform", "global"):
            raise InputError(f"--allocation must be uniform or global, got {self.allocation!r}")
        if not 1 <= self.round_to <= 64:
            raise InputError(f"--round-to must be in [1, 64], got {self.round_to}")
        if not 1 <= self.calib_sentences <= 5000:
            raise InputError(f"--calib-sentences must be in [1, 5000], got {self.calib_sentences}")
        self.recovery()  # validates steps / lr / checkpoint interval

    @property
    def components(self) -> tuple[str, ...]:
        return ("acoustic", "vocoder") if self.component == "both" else (self.component,)

    def recovery(self):  # -> RecoveryConfig
        from speedy.prune.recover import RecoveryConfig

        return RecoveryConfig(
            steps=self.recover_steps,
            lr=self.lr,
            checkpoint_every=self.checkpoint_every,
            hidden_weight=self.hidden_weight,
            seed=self.seed,
        )


def checkpoint_path(out: Path) -> Path:
    """Where recovery checkpoints go: beside the output, ``.<name>.prune.ckpt``."""
    return out.parent / f".{out.name}.prune.ckpt"


def run_key(src: Manifest, options: Mapping[str, Any]) -> str:
    """Identity of a training run (prune's recovery, distill): the source weights and every option that
    changes the result, so that a checkpoint is only resumed by the run that wrote it."""
    blob = json.dumps({"src": {n: c.sha256 for n, c in src.components.items()}, "opts": dict(options)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def torch_source(source: Path, stage: str) -> Manifest:
    """The manifest of `source`, which must be a torch artifact: `stage` trains weights before export."""
    src = read_manifest(source)
    formats = {c.format for c in src.components.values()}
    if formats != {"torch"}:
        raise InputError(
            f"{stage}: {source} is an artifact in {'/'.join(sorted(formats))} format; {stage} works on torch "
            f"weights before export — run {stage} on the torch artifact (e.g. the default voice), then "
            "'speedy export' (and 'speedy quantize') on its output"
        )
    return src


def prune(
    source: Path | None,
    out: Path,
    config: PruneConfig = PruneConfig(),
    *,
    force: bool = False,
    calibration_ids: Sequence[np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> Manifest:
    """Prune the torch artifact at `source` (None = the default voice) into `out`.

    Args:
        source: torch artifact folder. out: folder to write (atomically; `force` replaces it).
        config: target, component, criterion, recovery options.
        calibration_ids: phoneme-id arrays (1, T) int64 to use instead of the calibration corpus.
        progress: one-line status messages. on_step: (step, total, loss) after every recovery step.

    Returns:
        The written manifest; ``extra["prune"]`` has params before/after, widths, recovery time and MCD.
    """
    import torch

    from speedy.prune.recover import RecoveryState, load_checkpoint, recover, save_checkpoint
    from speedy.prune.surgery import count_params, groups_for, resize, widths
    from speedy.runtime.torch_backend import load_torch_modules

    say = progress or (lambda m: _LOGGER.info(m))
    if source is None:
        from speedy.families import default_family

        source = default_family().hook("torch_artifact")(progress=progress)
    source, out = Path(source), Path(out)
    src = torch_source(source, "prune")
    prune_map(src.family)  # InputError "prune: not supported for FAMILY" before any work
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it")
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    teacher = load_torch_modules(src, source)
    for c in config.components:
        groups_for(c, teacher[c])  # InputError early if the component has no prunable structures
    ids = _ids(src, config, calibration_ids)
    start = time.perf_counter()
    ignored = ("threads", "evaluate", "checkpoint_every")
    ckpt_file = checkpoint_path(out)
    key = run_key(src, {k: v for k, v in asdict(config).items() if k not in ignored})
    ckpt = load_checkpoint(ckpt_file) if ckpt_file.exists() else None
    if ckpt is not None and ckpt.get("key") != key:
        _LOGGER.warning("prune: %s is from a run with other options or weights; starting over", ckpt_file)
        ckpt = None
    student = {c: copy.deepcopy(m) for c, m in teacher.items()}
    before = {c: count_params(teacher[c]) for c in config.components}
    if ckpt is not None:
        say(f"resuming from {ckpt_file} (step {ckpt['step']}/{config.recover_steps})")
        for c in config.components:
            resize(student[c], c, ckpt["widths"][c])
            student[c].load_state_dict(ckpt["state"][c], strict=True)
        report: dict[str, Any] = dict(ckpt["report"])
        state = RecoveryState(
            step=int(ckpt["step"]),
            optimizer=ckpt["optimizer"],
            losses=list(ckpt["losses"]),
            seconds=float(ckpt["seconds"]),
            rng=ckpt.get("rng"),
        )
    else:
        report = _prune_components(teacher, student, config, ids, say)
        state = RecoveryState()

    def save(st: RecoveryState) -> None:
        save_checkpoint(
            ckpt_file,
            {
                "key": key,
                "step": st.step,
                "optimizer": st.optimizer,
                "losses": st.losses[-50:],
                "seconds": st.seconds,
                "rng": st.rng,
                "widths": {c: widths(groups_for(c, student[c])) for c in config.components},
                "state": {c: student[c].state_dict() for c in config.components},
                "report": report,
            },
        )

    if config.recover_steps > 0:
        say(f"recovering by self-distillation: {config.recover_steps} steps on {len(ids)} calibration utterances")
        state = recover(
            teacher,
            student,
            config.components,
            [torch.from_numpy(np.asarray(x)) for x in ids],
            config.recovery(),
            state=state,
            checkpoint=save,
            progress=on_step,
        )
    report.update(
        {
            c: {**report[c], "params_before": before[c], "params_after": count_params(student[c])}
            for c in config.components
        }
    )
    report["recovery"] = {
        "steps": state.step,
        "seconds": round(state.seconds, 1),
        "final_loss": round(state.losses[-1], 5) if state.losses else None,
    }
    if config.evaluate:
        report["eval"] = _evaluate(src, teacher, student, say)
    manifest = _write(source, src, out, student, config, report, time.perf_counter() - start, force)
    ckpt_file.unlink(missing_ok=True)
    return manifest


def _ids(src: Manifest, config: PruneConfig, given: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    if given is not None:
        ids = [np.asarray(x, dtype=np.int64).reshape(1, -1) for x in given]
        if not ids or any(x.size == 0 for x in ids):
            raise InputError("prune: calibration ids are empty")
        return ids
    from speedy.calibration import calibration_ids
    from speedy.corpus import load_corpus

    return calibration_ids(src, load_corpus("calib"), config.calib_sentences)


def _prune_components(
    teacher: dict, student: dict, config: PruneConfig, ids: Sequence[np.ndarray], say: Callable[[str], None]
) -> dict[str, Any]:
    """Score, plan, cut (and re-fit) each chosen component of `student` in place; returns the report."""
    import torch

    from speedy.prune.criteria import get_criterion
    from speedy.prune.plan import ALLOCATIONS
    from speedy.prune.reconstruct import ROWS_PER_INPUT
    from speedy.prune.surgery import groups_for, prune_group, prune_map_for

    report: dict[str, Any] = {}
    probe_ids = [torch.from_numpy(np.asarray(x)) for x in ids[:8]]
    # Acoustic re-fit: every calibration utterance, every frame (see reconstruct.ROWS_PER_INPUT). The
    # vocoder's layers see 64-frame crops at up to 24 kHz, so a few utterances already give far more rows
    # than unknowns, and all of them would take most of an hour.
    refit_ids = {
        "acoustic": [torch.from_numpy(np.asarray(x)) for x in ids],
        "vocoder": [torch.from_numpy(np.asarray(x)) for x in ids[:VOCODER_REFIT_SENTENCES]],
    }
    refit_rows = {"acoustic": ROWS_PER_INPUT, "vocoder": VOCODER_REFIT_ROWS}
    for c in config.components:
        model = student[c]
        kinds = config.kinds or prune_map_for(c, model).kinds[c]
        groups = [g for g in groups_for(c, model) if g.kind in kinds]
        if not groups:
            raise InputError(f"prune: the {c} model has no prunable structures of kind {', '.join(kinds)}")
        crit = get_criterion(config.criterion)
        if crit.needs_data:
            crit.prepare(
                model,
                groups,
                functools.partial(calibration_run, component=c, acoustic=student["acoustic"], ids=probe_ids),
            )
        plan = ALLOCATIONS[config.allocation](
            model, groups, {g.name: crit(g, model) for g in groups}, config.target_params, config.round_to
        )
        cut = [g for g in groups if len(plan.keep[g.name]) < g.units]
        for g in cut:
            prune_group(model, g, plan.keep[g.name])
        refit: dict[str, float] = {}
        if config.refit and cut:
            from speedy.prune.reconstruct import refit_consumers

            rids = refit_ids[c]
            say(f"{c}: re-fitting the layers that read pruned units (least squares, {len(rids)} utterances)")
            durs = _teacher_durations(teacher["acoustic"], rids)
            refit = refit_consumers(
                teacher[c],
                model,
                cut,
                plan.keep,
                functools.partial(calibration_run, component=c, acoustic=teacher["acoustic"], ids=rids, durations=durs),
                rows_per_input=refit_rows[c],
            )
        model.eval()
        say(
            f"{c}: {plan.params_before / 1e6:.2f} M → {plan.params_after / 1e6:.2f} M parameters "
            f"({config.criterion}, {plan.fraction:.0%} of the units of {len(groups)} groups)"
        )
        report[c] = {
            "criterion": config.criterion,
            "allocation": config.allocation,
            "kinds": list(kinds),
            "fraction": round(plan.fraction, 4),
            "refit_error": refit,
            "widths": {g.name: [g.units, len(plan.keep[g.name])] for g in groups},
        }
    return report


def _teacher_durations(acoustic, ids: Sequence) -> list:
    """The unpruned model's durations (1, T) int64 per id tensor, at least 1 frame a token."""
    import torch

    with torch.no_grad():
        return [
            acoustic.durations_from_log(acoustic.predict(*acoustic.encode(x))[0], torch.ones(1)).clamp_min(1)
            for x in ids
        ]


def calibration_run(model, component: str, acoustic, ids: Sequence, durations: Sequence | None = None):  # -> Tensor
    """Calibration pass: every output `model` (as `component`) produces, flattened and joined.

    Acoustic: `durations` (one (1, T) tensor per id tensor) are forced when given, so that two models'
    frames align; else `model`'s own are used. The vocoder is fed the first 64 frames of `acoustic`'s mel per id tensor (1, T).
    """
    import torch

    from speedy.prune.recover import acoustic_outputs, vocoder_float

    outs = []
    for i, x in enumerate(ids):
        if component == "acoustic":
            if durations is not None:
                dur = durations[i]
            else:
                with torch.no_grad():
                    enc, mask = model.encode(x)
                    dur = model.durations_from_log(model.predict(enc, mask)[0], torch.ones(1)).clamp_min(1)
            outs += [t.flatten() for t in acoustic_outputs(model, x, dur)]
        else:
            with torch.no_grad():
                mel = acoustic(x, torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1))[0]
            if mel.shape[1] >= 10:
                outs.append(vocoder_float(model, mel[:, :64]).flatten())
    if not outs:
        raise InputError("prune: calibration sentences gave no usable outputs for the data criterion")
    return torch.cat(outs)


def _evaluate(src: Manifest, teacher: dict, student: dict, say: Callable[[str], None]) -> dict[str, Any]:
    """MCD (dB) of the student pipeline vs the teacher on a few evaluation sentences (torch, default controls)."""
    from speedy.prune.evaluate import pipeline_mcd

    try:
        result = pipeline_mcd(src, teacher, student, EVAL_SENTENCES)
    except (ImportError, KeyError) as exc:  # frontend / quality not available, or a phone not in the table
        _LOGGER.warning("prune: skipped the MCD check (%s)", exc)
        return {"skipped": str(exc)}
    say(
        f"vs unpruned on {result['sentences']} eval utterances: MCD {result['mcd_db']:.3f} dB "
        f"({result['mcd_spectral_db']:.3f} dB with the unpruned durations forced), "
        f"mel L1 {result['mel_l1']:.4f}, duration error {result['duration_error']:.3f} frames/token"
    )
    return result


def _write(
    source: Path,
    src: Manifest,
    out: Path,
    student: dict,
    config: PruneConfig,
    report: dict[str, Any],
    seconds: float,
    force: bool,
) -> Manifest:
    from speedy.prune.family import write_pruned_artifact

    opts = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
    return write_pruned_artifact(
        source, src, out, student, config.components, ("prune", opts, report), seconds, force=force
    )
