"""The real default voice: cut a half-width student vocoder, re-fit it, train a few steps, then export it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_real_vocoder_student_trains_and_exports(default_torch: Path, tmp_path: Path) -> None:
    """Half width: ≤ 30 % of the teacher's multiply-adds; the re-fit and the steps run on the real teacher,
    the held-out check reports figures, and `export` takes the student (ONNX parity checked there)."""
    from speedy.artifacts import read_manifest
    from speedy.distill import DistillConfig, distill
    from speedy.stages.export import ExportConfig, export

    out = tmp_path / "student"
    cfg = DistillConfig(width=0.5, steps=4, sentences=8, batch=2, threads=2)
    manifest = distill(default_torch, out, cfg)
    rep = manifest.extra["distill"]
    (teacher_macs, student_macs), (teacher_params, student_params) = rep["macs_per_frame"], rep["params"]
    assert student_macs <= 0.3 * teacher_macs and student_params < 0.6 * teacher_params
    assert rep["steps"] == 4 and rep["fit_errors"]
    check = rep["check"]
    assert check["split"] == "g2pl_dev" and check["utterances"] == 6
    assert check["vocoder_mcd_db"] > 0 and 1.0 < check["dnsmos_teacher"] < 5.0
    onnx = export(out, tmp_path / "onnx", ExportConfig(sentences=("今天天气很好。",)))
    assert [s.stage for s in read_manifest(tmp_path / "onnx").lineage][-2:] == ["distill", "export"]
    assert onnx.components["vocoder"].format == "onnx"
