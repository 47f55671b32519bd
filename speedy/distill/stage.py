"""Distill stage: a torch artifact → the same voice with a smaller student vocoder (a torch artifact).

Steps: read the teacher (a torch artifact; the default voice when none is given), make the training pairs
with the teacher (`speedy.distill.data`, cached by checksum), cut the student from the teacher with the
family's student space and re-fit it (`speedy.distill.student`), train it layer-wise then end to end
(`speedy.distill.train`), checkpointing beside the output, then check it on held-out sentences and write the
artifact atomically with `distill` in its lineage. `export`, `quantize` and `compile` take it on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speedy.artifacts import Manifest
from speedy.errors import InputError

if TYPE_CHECKING:  # torch-heavy modules, imported when a function needs them
    from speedy.distill.data import Pairs
    from speedy.distill.student import StudentShape
    from speedy.distill.train import TrainConfig

_LOGGER = logging.getLogger(__name__)

COMPONENTS = ("vocoder", "acoustic", "both")
#: Held-out sentences (g2pL dev split) for the run's own fidelity check.
DEV_SENTENCES = 6
#: Mel windows used by the least-squares re-fit (two adjacent training crops each).
REFIT_CROPS = 32


@dataclass(frozen=True)
class DistillConfig:
    """Options of the distill stage.

    component: what gets a student (the vocoder; the acoustic decoder is not built yet). width, inner_width,
    layers: the student's shape (`speedy.distill.student.StudentShape`). steps / minutes: the training
    budget (minutes are turned into steps after timing a few steps, and training also stops when they are up). sentences: training text (g2pL train
    split); frames: mel frames per crop. lr, batch, hint_weight, hint_fraction, checkpoint_minutes: see
    `speedy.distill.train.TrainConfig`. device: "cpu" or "cuda". threads: torch intra-op threads.
    """

    component: str = "vocoder"
    width: float = 0.5
    inner_width: float | None = None
    layers: int | None = None
    steps: int | None = None
    minutes: float | None = None
    sentences: int = 600
    frames: int = 32
    lr: float = 5e-4
    batch: int = 8
    hint_weight: float = 1.0
    hint_fraction: float = 0.5
    checkpoint_minutes: float = 3.0
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    evaluate: bool = True

    def __post_init__(self) -> None:
        if self.component not in COMPONENTS:
            raise InputError(f"--component must be one of {', '.join(COMPONENTS)}, got {self.component!r}")
        if self.component != "vocoder":
            raise InputError(
                f"distill: --component {self.component} is not built yet; only the vocoder has a student space "
                "(the acoustic decoder's student is open work)"
            )
        self.shape()  # validates width / layers
        if self.steps is not None and self.minutes is not None:
            raise InputError("give --steps or --minutes, not both")
        if self.minutes is not None and not 0 < self.minutes <= 24 * 60:
            raise InputError(f"--minutes must be in (0, 1440], got {self.minutes}")
        if self.device not in ("cpu", "cuda"):
            raise InputError(f"--device must be cpu or cuda, got {self.device!r}")
        if not 10 <= self.frames <= 256:
            raise InputError(f"--frames must be in [10, 256], got {self.frames}")
        if not 8 <= self.sentences <= 30_000:
            raise InputError(f"--sentences must be in [8, 30000], got {self.sentences}")
        self.train_config(self.steps or 1)  # validates lr / batch / hint options

    def shape(self) -> StudentShape:
        from speedy.distill.student import StudentShape

        return StudentShape(width=self.width, layers=self.layers, inner=self.inner_width)

    def train_config(self, steps: int) -> TrainConfig:
        from speedy.distill.train import TrainConfig

        return TrainConfig(
            steps=steps,
            lr=self.lr,
            batch=self.batch,
            feature_weight=self.hint_weight,
            feature_fraction=self.hint_fraction,
            checkpoint_seconds=60.0 * self.checkpoint_minutes,
            max_seconds=None if self.minutes is None else 60.0 * self.minutes,
            seed=self.seed,
        )


def checkpoint_path(out: Path) -> Path:
    """Where checkpoints go: beside the output, ``.<name>.distill.ckpt``."""
    return out.parent / f".{out.name}.distill.ckpt"


def distill(
    source: Path | None,
    out: Path,
    config: DistillConfig = DistillConfig(),
    *,
    force: bool = False,
    resume: bool = False,
    progress: Callable[[str], None] | None = None,
    on_step: Callable[[int, int, Mapping[str, float]], None] | None = None,
    calibration_ids: Sequence[np.ndarray] | None = None,
) -> Manifest:
    """Distil a smaller vocoder from the torch artifact at `source` (None = the default voice) into `out`.

    Args:
        resume: continue from the checkpoint beside `out` (an error if there is none or it is from another run).
        progress: one-line status messages. on_step: (step, total, smoothed losses) after every step.
        calibration_ids: phone-id arrays (1, T) to train on instead of the g2pL text (not cached; tests).

    Returns:
        The written manifest; ``extra["distill"]`` has the shape, multiply-adds, fit errors, training and check.
    """
    import torch

    from speedy.distill.train import TrainState, projections, train
    from speedy.families import default_family, for_family, resolve
    from speedy.prune.family import write_pruned_artifact
    from speedy.prune.recover import load_checkpoint, save_checkpoint
    from speedy.prune.stage import run_key, torch_source
    from speedy.runtime.torch_backend import load_torch_modules

    say = progress or (lambda m: _LOGGER.info(m))
    if source is None:
        source = default_family().hook("torch_artifact")(progress=progress)
    source, out = Path(source), Path(out)
    src = torch_source(source, "distill")
    spec = for_family(src.family)
    if config.component not in spec.students:
        raise InputError(f"distill: the {spec.name} family declares no student space for its {config.component}")
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise InputError("distill: --device cuda, but torch sees no CUDA GPU here; use --device cpu")
    ignored = ("threads", "evaluate", "checkpoint_minutes", "device")
    ckpt_file = checkpoint_path(out)
    key = run_key(src, {k: v for k, v in asdict(config).items() if k not in ignored})
    ckpt = _resume_checkpoint(
        ckpt_file, key, resume, lambda p: load_checkpoint(p, "distill", ("step", "student", "key"))
    )
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    start = time.perf_counter()
    teacher = load_torch_modules(src, source)
    voc = teacher["vocoder"]
    sample_rate = src.audio.sample_rate
    pairs = training_pairs(src, teacher, config, say, calibration_ids)
    build = resolve(spec.students[config.component])
    if ckpt is not None:
        say(f"resuming from {ckpt_file} (step {ckpt['step']}/{ckpt['total_steps']})")
        student = build(voc, config.shape(), [], None, refit_layers=False)
        student.module.load_state_dict(ckpt["student"], strict=True)
        proj = projections(student.module, voc, student.keep)
        proj.load_state_dict(ckpt["projections"])
        state = TrainState(step=int(ckpt["step"]), optimizer=ckpt["optimizer"], losses=dict(ckpt["losses"]))
        state.seconds = float(ckpt["seconds"])
        total, fit_errors = int(ckpt["total_steps"]), dict(ckpt["fit_errors"])
    else:
        n_mels, fits = pairs.mels.shape[-1], min(REFIT_CROPS, max(1, len(pairs) // 2))
        crops = [torch.from_numpy(pairs.mels[2 * i : 2 * i + 2].reshape(1, -1, n_mels)) for i in range(fits)]
        say(f"cutting the {config.shape().label()} student and re-fitting it on {len(crops)} crops (least squares)")
        student = build(voc, config.shape(), crops, say)
        proj = projections(student.module, voc, student.keep)
        state, fit_errors = TrainState(), student.fit_errors
        total = config.steps or _steps_for(config, voc, student.module, proj, pairs, sample_rate)
    cfg = config.train_config(total)

    def save(st: TrainState) -> None:
        save_checkpoint(
            ckpt_file,
            {
                "key": key,
                "step": st.step,
                "total_steps": total,
                "optimizer": st.optimizer,
                "losses": st.losses,
                "seconds": st.seconds,
                "student": student.module.state_dict(),
                "projections": proj.state_dict(),
                "fit_errors": fit_errors,
            },
        )

    say(f"training {total} steps on {len(pairs)} crops of {config.frames} frames ({config.device})")
    state = train(
        voc,
        student.module,
        proj,
        pairs,
        cfg,
        sample_rate,
        state=state,
        checkpoint=save,
        progress=on_step,
        device=config.device,
    )
    from speedy.distill.student import vocoder_macs

    report: dict[str, Any] = {
        "component": config.component,
        "shape": config.shape().label(),
        "teacher_sha256": src.components[config.component].sha256,
        "params": [sum(p.numel() for p in voc.parameters()), sum(p.numel() for p in student.module.parameters())],
        "macs_per_frame": [vocoder_macs(voc), vocoder_macs(student.module)],
        "fit_errors": fit_errors,
        "steps": state.step,
        "planned_steps": total,
        "train_seconds": round(state.seconds, 1),
        "final_losses": {k: round(v, 5) for k, v in state.losses.items()},
        "pairs": {"crops": len(pairs), "frames": config.frames, "sentences": config.sentences, "text": "g2pl_train"},
    }
    if config.evaluate:
        report["check"] = check(src, teacher, student.module, say)
    modules = {**teacher, config.component: student.module}
    opts = {k: v for k, v in asdict(config).items() if k != "evaluate"}
    manifest = write_pruned_artifact(
        source,
        src,
        out,
        modules,
        (config.component,),
        ("distill", opts, report),
        time.perf_counter() - start,
        force=force,
        config_updates=student.config,
    )
    ckpt_file.unlink(missing_ok=True)
    return manifest


def _resume_checkpoint(
    path: Path, key: str, resume: bool, load: Callable[[Path], dict[str, Any]]
) -> dict[str, Any] | None:
    if not resume:
        if path.exists():
            _LOGGER.warning(
                "distill: starting over; %s from an earlier run will be replaced (--resume continues it)", path
            )
        return None
    if not path.exists():
        raise InputError(f"distill: --resume, but there is no checkpoint at {path}")
    ckpt = load(path)
    if ckpt.get("key") != key:
        raise InputError(f"distill: {path} is from a run with other options or weights; drop --resume to start over")
    return ckpt


def training_pairs(
    src: Manifest, teacher: dict, config: DistillConfig, say: Callable[[str], None], ids: Sequence[np.ndarray] | None
) -> Pairs:
    """The teacher's pairs for `config` (cached by checksum): the g2pL train text, or `ids` (1, T) when given
    (not cached). Held-out text (calibration/eval.txt, calib.txt) is never trained on."""
    from speedy.calibration import calibration_ids
    from speedy.corpus import load_corpus
    from speedy.distill.data import cache_key, read_sentences, teacher_pairs
    from speedy.families.wheels import cache_root

    if ids is not None:
        return teacher_pairs(teacher["acoustic"], teacher["vocoder"], ids, config.frames, None)

    held_out = [*load_corpus("eval"), *load_corpus("calib")]
    sentences = read_sentences("train", config.sentences, exclude=held_out)
    key = cache_key(
        src.components["acoustic"].sha256, src.components["vocoder"].sha256, config.sentences, config.frames
    )
    cache = cache_root() / "distill" / f"pairs-{key}.npz"
    if not cache.exists():
        say(f"making teacher pairs from {len(sentences)} sentences (cached in {cache})")
    ids = calibration_ids(src, sentences, 10 * len(sentences))

    def told(done: int, total: int) -> None:
        if done % 100 == 0 and done < total:
            say(f"teacher pairs: {done}/{total} utterances")

    return teacher_pairs(teacher["acoustic"], teacher["vocoder"], ids, config.frames, cache, told)


def _steps_for(config: DistillConfig, teacher, student, proj, pairs, sample_rate: int) -> int:
    """Steps that fit in `config.minutes`, from the time of 3 training steps (hint loss on) on copies."""
    import copy

    import torch

    from speedy.distill.train import batch_at, step_loss

    s, p = copy.deepcopy(student).train(), copy.deepcopy(proj)
    cfg = config.train_config(1)
    times = []
    for i in range(4):
        t = time.perf_counter()
        mel, bands = batch_at(pairs, cfg, i)
        loss = sum(step_loss(teacher, s, p, mel, bands, 1.0, sample_rate).values())
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        times.append(time.perf_counter() - t)
    per_step = float(np.median(times[1:]))
    minutes = config.minutes if config.minutes is not None else 0.0
    return max(1, int(minutes * 60 / per_step))


def check(src: Manifest, teacher: dict, student, say: Callable[[str], None]) -> dict[str, Any]:
    """Vocoder MCD and DNSMOS of the student against the teacher on held-out sentences (g2pL dev split)."""
    import torch

    from speedy.calibration import calibration_ids
    from speedy.distill.data import read_sentences

    try:
        from speedy.quality import dnsmos, mel_cepstral_distortion
    except ImportError as exc:  # the quality extra
        return {"skipped": str(exc)}
    ids = calibration_ids(src, read_sentences("dev", DEV_SENTENCES), DEV_SENTENCES)
    sr = src.audio.sample_rate
    mcd, mos_t, mos_s = [], [], []
    with torch.no_grad():
        for x in ids:
            mel = teacher["acoustic"](torch.from_numpy(x), torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1))[
                0
            ]
            ref, test = teacher["vocoder"](mel)[0].numpy(), student(mel)[0].numpy()
            mcd.append(mel_cepstral_distortion(ref, test, sr))
            mos_t.append(dnsmos(ref, sr)["ovrl"])
            mos_s.append(dnsmos(test, sr)["ovrl"])
    out = {
        "split": "g2pl_dev",
        "utterances": len(ids),
        "vocoder_mcd_db": round(float(np.mean(mcd)), 3),
        "dnsmos_teacher": round(float(np.mean(mos_t)), 3),
        "dnsmos_student": round(float(np.mean(mos_s)), 3),
    }
    say(
        f"held-out check ({out['utterances']} g2pL dev utterances): vocoder MCD {out['vocoder_mcd_db']:.2f} dB, "
        f"DNSMOS {out['dnsmos_student']:.2f} vs teacher {out['dnsmos_teacher']:.2f}"
    )
    return out
