"""`speedy analyze` pieces on tiny random models: layers, ONNX scope mapping, profile shares, ranking, report I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from speedy.analyze import (OTHER, AnalyzeConfig, Layer, _rows, layer_of, model_layers, profile_times,
                            quantizable_nodes)
from speedy.errors import InputError
from speedy.stages.mixed import groups_from_sensitivity, mixed_scores
from tests.test_prune_stage import IDS, _make_artifact
from tests.test_prune_surgery import tiny_fs2, tiny_mbm


@pytest.fixture(scope="module")
def tiny_vocoder_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "vocoder.onnx"
    torch.onnx.export(tiny_mbm(), (torch.randn(1, 12, 80),), str(path), input_names=["mel"], output_names=["wav"],
                      dynamic_axes={"mel": {1: "frames"}, "wav": {1: "samples"}}, opset_version=17, dynamo=False)
    return path


def test_layers_cover_every_parameter_once() -> None:
    """Blocks are split per element, conv lists stay whole, and parameters add up to the model's."""
    for comp, model in (("acoustic", tiny_fs2()), ("vocoder", tiny_mbm())):
        layers = model_layers(comp, model)
        names = [x.name for x in layers]
        assert sum(x.params for x in layers) == sum(p.numel() for p in model.parameters())
        assert names[-1] == OTHER and len(set(names)) == len(names)
    names = [x.name for x in model_layers("acoustic", tiny_fs2())]
    assert {"encoder.0", "decoder.1", "duration_predictor", "postnet", "mel_before"} <= set(names)
    assert "postnet.0" not in names
    assert {"pre", "upsamples.2", "stacks.0", "stacks.2", "post"} <= {x.name for x in model_layers("vocoder", tiny_mbm())}


def test_onnx_nodes_map_to_layers_and_profile_gives_shares(tiny_vocoder_onnx: Path, tmp_path: Path) -> None:
    """Exported node scopes land in their torch layer; the ORT profile times every heavy layer."""
    names = [x.name for x in model_layers("vocoder", tiny_mbm())]
    assert layer_of("/stacks.1.3/conv1/Conv", names) == "stacks.1"
    assert layer_of("/Conv", names) == OTHER
    nodes = quantizable_nodes(tiny_vocoder_onnx, ("Conv", "ConvTranspose"), names)
    assert len(nodes["stacks.0"]) == 12 and nodes["pre"] == ["/pre/Conv"] and OTHER in nodes  # PQMF convs
    times = profile_times(tiny_vocoder_onnx, [{"mel": np.random.randn(1, 12, 80).astype(np.float32)}], 2, 1, tmp_path)
    per_layer: dict[str, float] = {}
    for node, us in times.items():
        per_layer[layer_of(node, names)] = per_layer.get(layer_of(node, names), 0.0) + us
    assert all(per_layer.get(n, 0) > 0 for n in ("pre", "stacks.0", "stacks.1", "stacks.2"))


def _report(tmp_path: Path) -> Path:
    layers = model_layers("vocoder", tiny_mbm())
    times = {("vocoder", "stacks.2"): 60.0, ("vocoder", "stacks.0"): 40.0}
    quant = {("vocoder", "stacks.2"): (0.1, 0.3), ("vocoder", "stacks.0"): (0.5, 0.9)}
    pruned = {("vocoder", "stacks.0"): {"0.25": 0.2}}
    nodes = {"vocoder": {"stacks.2": ["/stacks.2.0/conv1/Conv"], "stacks.0": ["/stacks.0.0/conv1/Conv"]}}
    rows = _rows(layers, times, quant, pruned, nodes, 1.0)
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"all_int8_mcd_db": 1.0, "fractions": [0.25], "layers": rows}))
    return path


def test_rows_rank_by_saved_per_db_and_feed_mixed(tmp_path: Path) -> None:
    """Rows carry the issue's JSON keys, sorted by saved/dB; mixed reads the float gains back, best first."""
    path = _report(tmp_path)
    rows = json.loads(path.read_text())["layers"]
    keys = {"component", "name", "kind", "params", "time_share", "quant_mcd_db", "prune_mcd_db"}
    assert all(keys <= set(r) for r in rows)
    assert [r["saved_per_db"] for r in rows] == sorted((r["saved_per_db"] for r in rows), reverse=True)
    groups = groups_from_sensitivity(path)
    assert [(g.name, g.float_gain_db) for g in groups] == [("stacks.2", 0.7), ("stacks.0", 0.1)]
    assert mixed_scores(path)[0] == (0.7, "vocoder", "/stacks.2", ["/stacks.2.0/conv1/Conv"])


def test_bad_sensitivity_file_and_options_are_input_errors(tmp_path: Path) -> None:
    """A missing or foreign --sensitivity file and bad analyze options fail with one-line InputErrors."""
    with pytest.raises(InputError, match="not an analyze report"):
        groups_from_sensitivity(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"layers": []}')
    with pytest.raises(InputError, match="not an analyze report"):
        groups_from_sensitivity(tmp_path / "x.json")
    with pytest.raises(InputError, match="--fractions"):
        AnalyzeConfig(fractions=(0.5, 1.0))
    with pytest.raises(InputError, match="--criterion"):
        AnalyzeConfig(criterion="nope")


def test_prune_sensitivity_measures_each_prunable_layer(tmp_path: Path) -> None:
    """Each prunable layer gets an MCD per fraction that removes something (not a quarter of 2 heads alone)."""
    from speedy.artifacts import read_manifest
    from speedy.prune.sensitivity import prune_sensitivity

    folder = _make_artifact(tmp_path / "tiny")
    ids = [np.tile(IDS[0], (1, 2))]  # ~0.5 s of audio: the MCD's Harvest analysis is the slow part
    out = prune_sensitivity(read_manifest(folder), folder, ids, (0.25, 0.5), "l1", lambda m: None)
    assert ("acoustic", "encoder.0") in out and ("vocoder", "stacks.1") in out and ("acoustic", "postnet") in out
    for key, per_f in out.items():
        assert set(per_f) <= {"0.25", "0.5"}, key
        # None = the cut moved an utterance's length beyond ×1.4 (random tiny weights: encoder and
        # duration-predictor cuts may); the vocoder cannot change durations, so it always has figures
        allowed_none = key[0] == "acoustic"
        assert all((v is None and allowed_none) or (v is not None and np.isfinite(v) and v >= 0)
                   for v in per_f.values()), (key, per_f)


def test_a_cut_that_breaks_durations_is_no_candidate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When an utterance's length moves beyond what MCD aligns, compare_pipelines forces the unpruned
    durations (which would score a broken duration predictor as 0 dB): the figure becomes null, the
    table says 'dur!', and the ranking never picks that cut."""
    import speedy.prune.evaluate as evaluate
    from speedy.artifacts import read_manifest
    from speedy.commands.analyze import _prune_cell
    from speedy.prune.sensitivity import prune_sensitivity

    monkeypatch.setattr(evaluate, "compare_pipelines",
                        lambda *a, **k: {"mcd_db": 0.0, "sentences": 1, "forced_durations": 1})
    folder = _make_artifact(tmp_path / "tiny")
    out = prune_sensitivity(read_manifest(folder), folder, [IDS[0]], (0.5,), "l1", lambda m: None)
    assert out and all(v is None for per_f in out.values() for v in per_f.values())
    layers = [Layer("acoustic", name, "x", 1000) for _, name in out if _ == "acoustic"]
    rows = _rows(layers, {}, {}, out, {}, None)
    assert all(r["best_action"] == "-" and r["saved_per_db"] == 0 for r in rows)
    assert _prune_cell({"0.5": None}, "0.5") == "dur!" and _prune_cell({"0.5": 1.234}, "0.5") == "1.23"
    assert _prune_cell({}, "0.5") == "-"
