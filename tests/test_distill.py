"""`speedy distill` on a tiny random torch artifact: the student space, the losses, resumable training,
the artifact it writes and the errors it gives. The real-voice run is in test_distill_integration.py."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from speedy.artifacts import read_manifest
from speedy.distill import DistillConfig, checkpoint_path, distill
from speedy.distill.losses import feature_mse, log_mel_l1, multi_resolution_stft, spectral_convergence
from speedy.distill.student import StudentShape, build_student, kept_units, vocoder_macs
from speedy.distill.train import DistillInterrupted, TrainConfig
from speedy.errors import InputError, ModelError
from speedy.models.registry import load_models
from tests.test_prune_stage import IDS, _make_artifact
from tests.test_prune_surgery import tiny_mbm


@pytest.fixture()
def tiny_artifact(tmp_path: Path) -> Path:
    return _make_artifact(tmp_path / "tiny")


def _cfg(**kw: object) -> DistillConfig:
    base = dict(width=0.5, steps=6, frames=12, batch=2, evaluate=False, threads=1, checkpoint_minutes=0.0)
    return DistillConfig(**{**base, **kw})  # type: ignore[arg-type]


def _mels(n: int = 3, frames: int = 24) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(1, frames, 80, generator=gen) for _ in range(n)]


# --- student space -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{"width": 0.0}, {"width": 1.5}, {"width": 0.5, "inner": 2.0}, {"width": 0.5, "layers": 0}]
)
def test_student_shape_rejects_values_outside_its_range(kw: dict) -> None:
    with pytest.raises(InputError):
        StudentShape(**kw)


def test_kept_units_rounds_and_keeps_a_minimum() -> None:
    assert kept_units(64, 0.5, 8, 1) == 32
    assert kept_units(64, 0.3, 8, 1) % 8 == 0
    assert kept_units(64, 0.01, 8, 8) == 8


def test_width_one_student_is_the_teacher_exactly() -> None:
    teacher = tiny_mbm().eval()
    student = build_student(teacher, StudentShape(width=1.0), _mels())
    mel = _mels(1)[0]
    with torch.no_grad():
        assert torch.equal(student.module(mel), teacher(mel))
    assert student.module is not teacher


def test_narrow_student_is_smaller_and_refit_brings_it_closer_to_the_teacher() -> None:
    """Half width: fewer multiply-adds (the tiny model's narrow last stages keep their minimum channels, so
    not the quarter the real one gets); the least-squares re-fit lowers the error to the teacher's waveform
    on held-out mels (else the re-fit would be doing nothing)."""
    teacher = tiny_mbm().eval()
    shape = StudentShape(width=0.5, round_to=4)
    cut = build_student(teacher, shape, [], refit_layers=False)
    fitted = build_student(teacher, shape, _mels(4))
    assert 0.2 < vocoder_macs(fitted.module) / vocoder_macs(teacher) < 0.7
    assert sum(p.numel() for p in fitted.module.parameters()) < 0.7 * sum(p.numel() for p in teacher.parameters())
    held_out = torch.randn(1, 30, 80, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = teacher(held_out)
        err_cut = float(torch.mean((cut.module(held_out) - ref) ** 2))
        err_fit = float(torch.mean((fitted.module(held_out) - ref) ** 2))
    assert err_fit < 0.8 * err_cut, (err_fit, err_cut)
    assert fitted.fit_errors and all(v >= 0 for v in fitted.fit_errors.values())


def test_shallower_student_drops_blocks_and_records_its_dilations() -> None:
    teacher = tiny_mbm().eval()
    student = build_student(teacher, StudentShape(width=1.0, layers=2), _mels(2))
    assert student.config["mb_melgan"]["dilations"] == list(teacher.cfg.dilations[:2])
    assert all(len(stack) == 2 for stack in student.module.stacks)
    with pytest.raises(InputError, match="exceeds"):
        build_student(teacher, StudentShape(width=1.0, layers=99), [])


# --- losses and schedule --------------------------------------------------------------------------------


def test_losses_are_zero_on_identical_signals_and_grow_with_the_difference() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6000, generator=gen)
    near, far = x + 0.01 * torch.randn_like(x), x + 0.5 * torch.randn_like(x)
    for fn in (multi_resolution_stft, lambda a, b: log_mel_l1(a, b, 24000)):
        assert float(fn(x, x)) == pytest.approx(0.0, abs=1e-5)
        assert 0 < float(fn(x, near)) < float(fn(x, far))
    assert float(spectral_convergence(torch.ones(2, 3, 4), torch.ones(2, 3, 4))) == pytest.approx(0.0, abs=1e-6)
    h = torch.randn(2, 8, 50, generator=gen)
    assert float(feature_mse(h, h)) == 0.0 and float(feature_mse(h, 2 * h)) == pytest.approx(1.0, rel=1e-4)


def test_schedule_warms_up_decays_and_drops_the_hint() -> None:
    cfg = TrainConfig(steps=100, lr=1e-3, warmup=10, feature_weight=2.0, feature_fraction=0.5)
    assert cfg.lr_at(0) == pytest.approx(1e-4) and cfg.lr_at(9) == pytest.approx(1e-3)
    assert cfg.lr_at(99) == pytest.approx(1e-4, rel=0.05)
    assert cfg.hint_at(0) == 2.0 and cfg.hint_at(25) == pytest.approx(1.0) and cfg.hint_at(50) == 0.0


# --- the stage ---------------------------------------------------------------------------------------


def test_distill_writes_a_smaller_loadable_artifact(tiny_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "student"
    steps: list[int] = []
    losses: list[float] = []

    def on_step(step: int, total: int, smooth: dict) -> None:
        steps.append(step)
        losses.append(smooth["total"])

    m = distill(tiny_artifact, out, _cfg(steps=30), calibration_ids=IDS, on_step=on_step)
    assert steps == list(range(1, 31))
    assert losses[-1] < losses[0]  # training moves the student towards the teacher
    assert read_manifest(out).lineage[-1].stage == "distill"
    rep = m.extra["distill"]
    assert rep["steps"] == 30 and rep["params"][1] < 0.7 * rep["params"][0]
    base_a, base_v, _ = load_models(tiny_artifact)
    acoustic, vocoder, _ = load_models(out)
    assert sum(p.numel() for p in vocoder.parameters()) == rep["params"][1]
    assert all(torch.equal(a, b) for a, b in zip(acoustic.state_dict().values(), base_a.state_dict().values()))
    with torch.no_grad():
        assert vocoder(torch.randn(1, 20, 80)).shape == base_v(torch.randn(1, 20, 80)).shape
    assert not checkpoint_path(out).exists()  # a finished run leaves no checkpoint behind


def test_interrupted_run_resumes_to_the_same_weights(tiny_artifact: Path, tmp_path: Path) -> None:
    """Ctrl-C at step 3 of 6, then --resume: the same student as an uninterrupted 6-step run, and the
    output folder never half-written."""
    whole = distill(tiny_artifact, tmp_path / "whole", _cfg(), calibration_ids=IDS)
    out = tmp_path / "resumed"

    def stop(step: int, total: int, smooth: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(DistillInterrupted, match="--resume"):
        distill(tiny_artifact, out, _cfg(), calibration_ids=IDS, on_step=stop)
    assert not out.exists() and checkpoint_path(out).exists()
    resumed = distill(tiny_artifact, out, _cfg(), resume=True, calibration_ids=IDS)
    assert resumed.extra["distill"]["steps"] == whole.extra["distill"]["steps"] == 6
    _, want, _ = load_models(tmp_path / "whole")
    _, got, _ = load_models(out)
    for (k, a), b in zip(want.state_dict().items(), got.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_resume_refuses_missing_foreign_or_corrupt_checkpoints(tiny_artifact: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    with pytest.raises(InputError, match="no checkpoint"):
        distill(tiny_artifact, out, _cfg(), resume=True, calibration_ids=IDS)
    checkpoint_path(out).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="unreadable"):
        distill(tiny_artifact, out, _cfg(), resume=True, calibration_ids=IDS)

    def stop(step: int, total: int, smooth: dict) -> None:
        raise KeyboardInterrupt

    with pytest.raises(DistillInterrupted):
        distill(tiny_artifact, out, _cfg(), calibration_ids=IDS, on_step=stop)
    with pytest.raises(InputError, match="other options"):
        distill(tiny_artifact, out, _cfg(width=0.75), resume=True, calibration_ids=IDS)
    assert not out.exists()


def test_bad_sources_and_options_are_refused(tiny_artifact: Path, tmp_path: Path, monkeypatch) -> None:
    onnx_like = _make_artifact(tmp_path / "onnx", fmt="onnx")
    with pytest.raises(InputError, match="torch artifact"):
        distill(onnx_like, tmp_path / "a", _cfg(), calibration_ids=IDS)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="--force"):
        distill(tiny_artifact, tmp_path / "exists", _cfg(), calibration_ids=IDS)
    with pytest.raises(InputError, match="not built yet"):
        _cfg(component="acoustic")
    with pytest.raises(InputError, match="not both"):
        _cfg(minutes=1.0)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            distill(tiny_artifact, tmp_path / "b", _cfg(device="cuda"), calibration_ids=IDS)
    import speedy.families as families

    real = families.for_family
    monkeypatch.setattr(families, "for_family", lambda name: dataclasses.replace(real(name), students={}))
    with pytest.raises(InputError, match="no student space"):
        distill(tiny_artifact, tmp_path / "c", _cfg(), calibration_ids=IDS)
    assert not any((tmp_path / n).exists() for n in ("a", "b", "c"))


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["--width", "1.5"], 2, "--width must be in (0, 1]"),
        (["--component", "acoustic"], 2, "not built yet"),
        (["--steps", "5", "--minutes", "1"], 2, "not both"),
    ],
)
def test_cli_errors_are_one_line_with_an_exit_code(tmp_path: Path, args: list[str], code: int, words: str) -> None:
    from speedy.cli import main

    result = CliRunner().invoke(main, ["distill", "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == code, result.output
    assert words in result.output and "Traceback" not in result.output


def test_cli_corrupt_source_exits_with_one_line(tmp_path: Path) -> None:
    from speedy.cli import main

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    result = CliRunner().invoke(main, ["distill", str(bad), "-o", str(tmp_path / "o"), "--steps", "1"])
    assert result.exit_code in (2, 3), result.output
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_progress_line_shows_step_losses_and_rate() -> None:
    from speedy.commands.distill import describe

    line = describe(120, 2000, {"total": 3.21, "stft": 1.5, "hint": 0.25, "mel": 0.4}, 2.46)
    assert line == "step 120/2000  total 3.210  stft 1.500  hint 0.250  2.5 steps/s"
    assert "hint" not in describe(1900, 2000, {"total": 1.0, "stft": 0.5}, 3.0)


def test_a_time_budget_stops_training_short_of_the_planned_steps(tiny_artifact: Path) -> None:
    """--minutes is a wall-clock budget: if the machine slows down after the steps were planned, training
    stops when the time is up (here at once: the first step) and the state says how far it got."""
    from speedy.distill.data import teacher_pairs
    from speedy.distill.train import projections, train

    teacher = load_models(tiny_artifact)
    pairs = teacher_pairs(teacher[0], teacher[1], IDS, 12, None)
    student = build_student(teacher[1], StudentShape(width=0.5, round_to=4), [], refit_layers=False)
    proj = projections(student.module, teacher[1], student.keep)
    cfg = TrainConfig(steps=500, batch=2, max_seconds=0.0)
    state = train(teacher[1], student.module, proj, pairs, cfg, 24000)
    assert state.step == 1


def test_sigterm_checkpoints_like_ctrl_c(tiny_artifact: Path, tmp_path: Path) -> None:
    """A job stopped with SIGTERM (a scheduler, `kill`) keeps its last step in the checkpoint and resumes."""
    import os
    import signal

    out = tmp_path / "s"

    def term(step: int, total: int, smooth: dict) -> None:
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(DistillInterrupted, match="stopped at step 2/6"):
        distill(tiny_artifact, out, _cfg(), calibration_ids=IDS, on_step=term)
    assert signal.getsignal(signal.SIGTERM) is before and not out.exists()
    assert distill(tiny_artifact, out, _cfg(), resume=True, calibration_ids=IDS).extra["distill"]["steps"] == 6
