"""One pipeline for every family (issue 26 step 1): families declare their graphs as a component list and
hand the export stage a plan; nothing under speedy/families imports the stages or the runtime. Toy modules
with random weights (shapes only) and the real registry's declarations."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from speedy.artifacts import Audio, Controls, Frontend, Manifest, Source, read_manifest
from speedy.errors import ParityError
from speedy.families import FamilySpec, frozen, registered, specs
from speedy.families.graph_spec import ExportPlan, GraphSpec, OutputCheck
from speedy.stages.export import ExportConfig, export

FAMILIES = Path(__file__).parents[1] / "speedy" / "families"
#: What a family may not import, at module or function level: everything above it in DESIGN.md's order.
ABOVE = ("stages", "runtime", "backends", "synth", "bench", "serve", "analyze", "prune", "distill", "batch",
         "commands", "cli", "fidelity")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_families_import_nothing_above_them() -> None:
    """No module under speedy/families imports stages, runtime or anything above (function-level included)."""
    bad = [
        f"{path.relative_to(FAMILIES.parent.parent)}: {name}"
        for path in sorted(FAMILIES.rglob("*.py"))
        for name in _imports(path)
        if name.startswith("speedy.") and name.split(".")[1] in ABOVE
    ]
    assert not bad, "\n".join(bad)


def test_every_family_declares_its_graphs() -> None:
    """Each registered family lists its graphs by component; a one-graph component is named after itself, a
    host loop has a compose hook and a loop check, and graph names are unique (they are manifest components)."""
    for spec in specs():
        assert spec.graphs, spec.name
        names = [g.name for g in spec.all_graphs()]
        assert len(names) == len(set(names)), spec.name
        for component, graphs in spec.graphs.items():
            assert all(isinstance(g, GraphSpec) and g.checks for g in graphs), spec.name
            if len(graphs) > 1:
                assert spec.compose and spec.loop_check is not None, spec.name
            elif not spec.multi_graph:
                assert graphs[0].name == component, spec.name
        assert spec.export_plan, spec.name


# ---- a toy vocoder-only family through the export stage ------------------------------------------------
TOY = "toy-vocoder"
GRAPHS = {
    "vocoder": (
        GraphSpec("vocoder", ("mel",), ("wav",), {"mel": {1: "frames"}, "wav": {1: "samples"}},
                  (OutputCheck("wav", "max_abs", 1e-4),), "vocoder"),
    )
}


class _Toy(torch.nn.Module):
    """mel (1, T, 8) → wav (1, 4·T): one transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.up = torch.nn.ConvTranspose1d(8, 1, 4, stride=4)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.up(mel.transpose(1, 2))[:, 0]


def toy_plan(source: Any, config: Any, say: Any, offset: float = 0.0) -> ExportPlan:
    """The toy family's plan; `offset` shifts the PyTorch reference (a graph that "disagrees" with PyTorch)."""
    module = _Toy().eval()
    mels = [np.random.default_rng(n).standard_normal((1, n, 8)).astype(np.float32) for n in (5, 9)]
    with torch.inference_mode():
        refs = [module(torch.from_numpy(m)).numpy() + offset for m in mels]
    return ExportPlan(
        manifest=lambda comps: Manifest(
            family=TOY, source=Source("test", "toy", "0"), components=comps, audio=Audio(16000, 4, 8, "none"),
            frontend=Frontend("none", ()), controls=Controls(inputs=(), emotions={}), extra={"vocoder_only": True}),
        modules={"vocoder": module},
        trace={"vocoder": (mels[0],)},
        checks={"vocoder": [((m,), (r,)) for m, r in zip(mels, refs)]},
        step={"source": "toy"},
    )


SPEC = FamilySpec(name=TOY, families=(TOY,), frontends=frozen({}), graphs=frozen(GRAPHS),
                  export_plan=f"{__name__}:toy_plan")


def test_export_stage_writes_what_the_family_declares(tmp_path: Path) -> None:
    """The stage exports each declared graph with its names and dynamic axes, checks it on inputs of two lengths
    and records the figure; the folder reads back with verified checksums."""
    import onnxruntime as ort

    with registered(SPEC):
        m = export(None, tmp_path / "a", ExportConfig(threads=1), family=SPEC)
    assert list(m.components) == ["vocoder"] and m.lineage[-1].stage == "export"
    (fig,) = m.extra["parity"]
    assert fig["component"] == "vocoder" and fig["output"] == "wav" and fig["cases"] == 2 and fig["value"] < 1e-4
    assert read_manifest(tmp_path / "a").components["vocoder"].dynamic_axes["mel"] == {"1": "frames"}
    sess = ort.InferenceSession(str(tmp_path / "a" / "vocoder.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"mel": np.zeros((1, 13, 8), np.float32)})[0].shape == (1, 52)


def test_export_stage_refuses_a_graph_off_pytorch_and_writes_nothing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph beyond its tolerance fails with a ParityError naming graph, output and difference; no folder
    and no temporary folder are left."""
    monkeypatch.setattr(f"{__name__}.toy_plan.__defaults__", (0.5,))
    with registered(SPEC), pytest.raises(ParityError, match=r"vocoder\.wav max \|Δ\| 0\.5 > tolerance 0\.0001"):
        export(None, tmp_path / "b", ExportConfig(threads=1), family=SPEC)
    assert list(tmp_path.iterdir()) == []
