"""The real default voice: cut a half-width student vocoder, re-fit it, train 50 steps, export it, speak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_real_vocoder_student_trains_exports_and_speaks(default_torch: Path, default_onnx: Path, tmp_path: Path) -> None:
    """Half width: ≤ 30 % of the teacher's multiply-adds; 50 steps on the real teacher lower the loss, the
    held-out check reports figures, `export` takes the student (ONNX parity checked there) and it speaks."""
    from speedy.artifacts import read_manifest
    from speedy.distill import DistillConfig, distill
    from speedy.stages.auto import student_vocoder
    from speedy.stages.export import ExportConfig, export
    from speedy.synth import Synthesizer

    out = tmp_path / "student"
    losses: list[float] = []
    cfg = DistillConfig(width=0.5, steps=50, sentences=8, batch=4, threads=2)
    manifest = distill(default_torch, out, cfg, on_step=lambda step, total, smooth: losses.append(smooth["stft"]))
    rep = manifest.extra["distill"]
    (teacher_macs, student_macs), (teacher_params, student_params) = rep["macs_per_frame"], rep["params"]
    assert student_macs <= 0.3 * teacher_macs and student_params < 0.6 * teacher_params
    assert rep["steps"] == 50 and len(losses) == 50 and rep["fit_errors"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # the STFT loss falls (smoothed, 2 % per step)
    check = rep["check"]
    assert check["split"] == "g2pl_dev" and check["utterances"] == 6
    assert check["vocoder_mcd_db"] > 0 and 1.0 < check["dnsmos_teacher"] < 5.0
    export(out, tmp_path / "onnx", ExportConfig(sentences=("今天天气很好。",)))
    assert [s.stage for s in read_manifest(tmp_path / "onnx").lineage][-2:] == ["distill", "export"]
    assert student_vocoder(read_manifest(default_onnx), tmp_path / "onnx").is_file()  # auto --student takes it
    audio = Synthesizer.load(tmp_path / "onnx", threads=2).synthesize("你好。")
    samples = audio.audio
    assert samples.size > 2400 and np.isfinite(samples).all() and np.abs(samples).max() > 0.01
