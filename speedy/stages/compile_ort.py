"""The onnxruntime side of the compile stage: transformer fusions, then an offline-optimised graph.

Per component:
  1. acoustic only: `onnxruntime.transformers.optimizer.optimize_model` (model_type "bert", the
     closest of its recipes to FastSpeech2's post-LN FFT blocks). The fused graph is kept only if some
     fusion applied, ONNX Runtime's output on the check inputs stays within the family's tolerance,
     and it runs no slower than the unfused graph (best of interleaved rounds on this machine).
  2. an `InferenceSession` at the chosen level with `optimized_model_filepath` writes the optimised
     graph. The component's `extra["graph_optimization"]` is set to "disable": the runtime loads the
     saved graph as it is instead of optimising it again (that is where load time goes).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speedy.artifacts import Component, Manifest
from speedy.errors import ModelError

_LOGGER = logging.getLogger(__name__)

#: What the runtime uses to load an offline-optimised graph: nothing left to do.
LOAD_LEVEL = "disable"
#: Fused acoustic graphs are kept only when at most this much slower than the unfused one (timing noise):
#: on the default voice the SkipLayerNormalization fusions measured 1-5 % slower at 1 thread.
KEEP_IF_NOT_SLOWER = 1.01


def compile_ort(
    src: Manifest, source: Path, staging: Path, config: Any, checks: Any, say: Callable[[str], None]
) -> tuple[dict[str, Component], dict[str, Any]]:
    """Write `<name>.onnx` per component into `staging`; returns (components, notes per component)."""
    from speedy.artifacts import replace_component

    comps: dict[str, Component] = {}
    notes: dict[str, Any] = {}
    for name, comp in src.components.items():
        graph = source / comp.file
        note: dict[str, Any] = {"level": config.level}
        if name == "acoustic" and config.transformer_fusions:
            say("acoustic: trying ONNX Runtime's transformer fusions")
            fused, fnote = try_transformer_fusions(graph, staging / f".{name}.fused.onnx", src, name, config, checks)
            note["transformer_optimizer"] = fnote
            if fused is not None:
                graph = fused
        out = staging / f"{name}.onnx"
        say(f"{name}: optimising the graph offline (level {config.level})")
        optimize_offline(graph, out, config.level, config.threads)
        if graph.parent == staging:
            graph.unlink()
        comps[name] = replace_component(
            comp,
            out,
            "onnx",
            graph_optimization=LOAD_LEVEL,
            offline_optimization=config.level,
            threads=config.threads,
            transformer_fusions=note.get("transformer_optimizer", {}).get("kept", False),
        )
        notes[name] = note
    return comps, notes


def optimize_offline(src: Path, out: Path, level: str, threads: int | None) -> None:
    """Optimise `src` once at `level` with ONNX Runtime (CPU) and save the result to `out`."""
    import onnxruntime as ort

    from speedy.runtime.onnx_backend import session_options

    so = session_options(threads, level)
    so.optimized_model_filepath = str(out)
    try:
        ort.InferenceSession(str(src), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"compile: onnxruntime cannot optimise {src.name} ({str(e).splitlines()[0][:200]})") from None
    if not out.is_file():
        raise ModelError(f"compile: onnxruntime wrote no optimised graph for {src.name}")
    _copy_metadata(src, out)


def _copy_metadata(src: Path, out: Path) -> None:
    """Keep the source graph's metadata_props (family, audio facts) on the optimised graph."""
    import onnx

    a = onnx.load(str(src), load_external_data=False)
    if not a.metadata_props:
        return
    b = onnx.load(str(out))
    have = {p.key for p in b.metadata_props}
    for p in a.metadata_props:
        if p.key not in have:
            b.metadata_props.add(key=p.key, value=p.value)
    onnx.save(b, str(out))


def try_transformer_fusions(
    graph: Path, out: Path, src: Manifest, name: str, config: Any, checks: Any
) -> tuple[Path | None, dict[str, Any]]:
    """Run the transformer optimizer on `graph`; return (fused path or None, what happened).

    The note lists each fused operator count, the parity figures of the fused graph and the median
    run time of both graphs on the check inputs (s); `kept` says whether the fused graph is used.
    """
    note: dict[str, Any] = {"kept": False}
    try:
        from onnxruntime.transformers import optimizer
    except ImportError as e:  # shipped with onnxruntime; absent on some minimal builds
        note["reason"] = f"onnxruntime.transformers unavailable ({e})"
        return None, note
    try:  # num_heads/hidden_size 0: the optimizer reads them from the graph
        model = optimizer.optimize_model(
            str(graph), model_type="bert", num_heads=0, hidden_size=0, opt_level=0, use_gpu=False
        )
    except Exception as e:  # the optimizer raises whatever its passes raise; it is optional
        note["reason"] = f"optimizer failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return None, note
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    note["fusions"] = stats
    if not stats:
        note["reason"] = "no fusion applied"
        return None, note
    model.save_model_to_file(str(out))
    if checks is None:
        note["reason"] = "not kept: --no-check, and fusions are kept only when checked"
        out.unlink()
        return None, note
    from speedy.runtime.onnx_backend import AcousticSession, make_session
    from speedy.stages.parity import ParityError, compare_runner, family_spec

    spec = family_spec(src, "compile").component(name)
    comp = src.components[name]
    fused = AcousticSession(make_session(out, config.threads, config.level), comp.inputs, comp.outputs)
    plain = AcousticSession(make_session(graph, config.threads, config.level), comp.inputs, comp.outputs)
    try:
        note["parity"] = [f.__dict__ for f in compare_runner(fused, name, spec, checks, "compile")]
    except ParityError as e:
        note["reason"] = f"not kept: {e}"
        out.unlink()
        return None, note
    t_fused, t_plain = _interleaved_min(fused, plain, checks)
    note["run_s"] = {"fused": t_fused, "plain": t_plain}  # unrounded: the kept decision below is made on these
    if t_fused > KEEP_IF_NOT_SLOWER * t_plain:
        note["reason"] = (
            f"not kept: the fused graph ran slower on the check inputs "
            f"({t_fused * 1000:.1f} ms vs {t_plain * 1000:.1f} ms, best of interleaved rounds)"
        )
        out.unlink()
        return None, note
    note["kept"] = True
    return out, note


def _interleaved_min(a: Any, b: Any, checks: Any, rounds: int = 7) -> tuple[float, float]:
    """Best-of-`rounds` wall time (s) of runners `a` and `b` over the acoustic check inputs, interleaved.

    Interleaving and taking the minimum keep other load on the machine from favouring either graph.
    """
    for r in (a, b):
        r(*checks.acoustic[0][:2])  # warm-up
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, r in enumerate((a, b)):
            t = time.perf_counter()
            for ids, c, *_ in checks.acoustic:
                r(ids, c)
            best[i] = min(best[i], time.perf_counter() - t)
    return best[0], best[1]
