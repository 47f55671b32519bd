"""Per-graph INT8 of the host-loop families (speedy.stages.int8_graphs) from their declared GraphQuant data
(issue 26 step 1): which op types each graph gets per recipe, the refusals, and that family code holds no
quantize code. No models: the end-to-end runs are in test_sambert_pipeline.py and test_ttskit.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from speedy.errors import InputError
from speedy.families import by_name
from speedy.stages.int8_graphs import graph_ops, int8_graphs
from speedy.stages.quantize import QuantRecipe

FAMILIES = Path(__file__).resolve().parents[1] / "speedy" / "families"


def _ops(family: str, recipe: QuantRecipe, chosen: tuple[str, ...] | None = None) -> dict[str, tuple]:
    spec = by_name(family)
    assert spec.int8 is not None
    pick = spec.int8.default_graphs if chosen is None else chosen
    return {g.name: graph_ops(spec.int8, g, recipe, pick) for g in spec.all_graphs()}


def test_sambert_graphs_follow_the_recipe_within_the_declared_limits() -> None:
    """Frame-rate graphs only under the recipes' acoustic scopes, duration LSTM float, decoder step's MatMuls
    float, the vocoder scoped to HiFi-GAN's residual blocks."""
    dyn = _ops("sambert", QuantRecipe.int8_dynamic())
    assert dyn == {"encoder": ((), None), "variance": ((), None), "duration_step": ((), None),
                   "decoder_memory": (("Conv",), None), "decoder_step": (("Conv",), None),
                   "postnet": (("Conv",), None), "vocoder": ((), None)}
    static = _ops("sambert", QuantRecipe.int8_static())
    assert static["vocoder"] == (("Conv",), ("/conv_blocks",))
    wide = _ops("sambert", QuantRecipe("int8-static", {"acoustic": ("Conv", "MatMul"), "vocoder": ("Conv",)}))
    assert wide["encoder"] == (("Conv", "MatMul"), None)  # unscoped: every acoustic graph
    assert wide["decoder_step"] == (("Conv",), None) and wide["duration_step"] == ((), None)
    assert wide["vocoder"] == (("Conv",), None)


def test_ttskit_policy_ignores_the_recipe_lists() -> None:
    """ttskit's own policy: MatMul/Gemm of decoder step and postnet; the vocoder only when named."""
    gemm = ("MatMul", "Gemm")
    assert _ops("ttskit", QuantRecipe.int8_dynamic()) == {
        "encoder": ((), None), "decoder_step": (gemm, None), "postnet": (gemm, None), "vocoder": ((), None)}
    assert _ops("ttskit", QuantRecipe.int8_dynamic(), ("vocoder",))["vocoder"] == (gemm, None)


def test_sambert_calibration_emotions_are_the_frontends_main_labels() -> None:
    from speedy.families.sambert.frontend import LABELS

    spec = by_name("sambert")
    assert spec.int8 is not None and spec.int8.calib_emotions == tuple(LABELS)


@pytest.mark.parametrize("family, recipe, hint", [
    ("ttskit", QuantRecipe.int8_static(), "use int8-dynamic (decoder step + postnet) or fp16"),
    ("sambert", QuantRecipe.int8_hybrid(), "use int8-dynamic, int8-static or fp16"),
    ("sambert", QuantRecipe.mixed(), "use int8-dynamic, int8-static or fp16"),
])
def test_unsupported_recipes_are_refused_before_anything_is_read(family: str, recipe: QuantRecipe,
                                                                  hint: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"recipe {recipe.name} is not supported for {family} artifacts; {hint}")):
        int8_graphs(by_name(family), None, tmp_path, tmp_path, tmp_path, recipe, [], print)  # type: ignore[arg-type]


def test_a_choice_of_graphs_is_checked(tmp_path: Path) -> None:
    spec = by_name("ttskit")
    with pytest.raises(InputError, match="cannot quantize encoder"):
        int8_graphs(spec, None, tmp_path, tmp_path, tmp_path, QuantRecipe.int8_dynamic(), [], print,  # type: ignore[arg-type]
                    ("encoder",))
    with pytest.raises(InputError, match="no choice of graphs"):
        int8_graphs(by_name("sambert"), None, tmp_path, tmp_path, tmp_path, QuantRecipe.int8_dynamic(), [],  # type: ignore[arg-type]
                    print, ("postnet",))


def test_host_loop_families_hold_no_quantize_code() -> None:
    """Nothing under speedy/families imports the quantize stage modules: the stage reads the families' data."""
    banned = ("speedy.stages.int8", "speedy.stages.ort_int8", "speedy.stages.conv_gemm", "speedy.stages.quantize")
    for path in FAMILIES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(banned), f"{path}: imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(banned) for a in node.names), path
