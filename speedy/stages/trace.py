"""Trace stage: a torch artifact → TorchScript components (format "torchscript"), parity-checked against eager.

The vocoder is traced with `torch.jit.trace` on one mel length and checked by the tracer itself at a
second length (`check_inputs`), so no frame count is baked into the graph. The acoustic model is traced
the same way (a second token count and non-default controls: speed changes the frame count, so a baked
length or control would show) provided the tracer raises no `TracerWarning` (a Python value taken
from a tensor, i.e. a data-dependent length frozen into the graph); otherwise it is scripted with
`torch.jit.script`, and if that fails too it stays as eager torch (format "torch") and the manifest's
`extra["trace"]` says why. Every TorchScript file is then loaded through the runtime backend and
compared with eager PyTorch using the family's export tolerances.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from speedy.artifacts import Component, Manifest, atomic_artifact, lineage_step, read_manifest, write_manifest
from speedy.controls import GraphControls
from speedy.errors import InputError
from speedy.stages.parity import CHECK_CONTROLS, CheckSet, ParityError, build_check_set, compare_runner, family_spec

_LOGGER = logging.getLogger(__name__)

TS_SUFFIX = ".torchscript.pt"


class TraceParityError(ParityError):
    """A TorchScript component disagrees with eager PyTorch beyond the family's tolerance."""


@dataclass(frozen=True)
class TraceConfig:
    """Options of the trace stage.

    threads: torch intra-op threads while tracing and checking (None = torch's default).
    check: compare every TorchScript component with eager PyTorch (on by default; off only for debugging).
    """

    threads: int | None = None
    check: bool = True

    def __post_init__(self) -> None:
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise InputError(f"--threads must be in [1, 256], got {self.threads}")


def trace(
    source: Path,
    out: Path,
    config: TraceConfig = TraceConfig(),
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Trace the torch artifact at `source` to TorchScript in `out` (atomic folder write).

    Returns the written manifest: per component `extra["trace"]` notes ("method": trace | script |
    kept-torch, and why) and `extra["parity"]` figures against eager PyTorch.
    """
    import torch

    from speedy.runtime.torch_backend import TorchAcoustic, TorchVocoder, load_torch_modules

    say = progress or (lambda m: _LOGGER.info(m))
    source = Path(source)
    src = read_manifest(source)
    formats = {c.format for c in src.components.values()}
    if formats != {"torch"}:
        raise InputError(
            f"trace: {source} has {'/'.join(sorted(formats))} components; trace takes a torch "
            "artifact (e.g. the default voice's, or the input of 'speedy export')"
        )
    spec = family_spec(src, "trace")
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:  # refuses an existing `out` before any work
        modules = load_torch_modules(src, source)
        acoustic = TorchAcoustic(modules["acoustic"]) if "acoustic" in modules else None
        checks = build_check_set(src, source, spec, acoustic=acoustic, vocoder=TorchVocoder(modules["vocoder"]))
        comps: dict[str, Component] = {}
        notes: dict[str, Any] = {}
        figures: list[dict] = []
        for name in (n for n in ("vocoder", "acoustic") if n in modules):
            say(f"{name}: tracing to TorchScript")
            comp, note, figs = _trace_component(src, source, staging, name, modules[name], checks, spec, config)
            comps[name], notes[name] = comp, note
            figures += figs
        step = lineage_step("trace", {**asdict(config), "source": str(source)}, time.perf_counter() - start, "torch")
        manifest = replace(src, components=comps).with_step(
            step, extra={**dict(src.extra), "trace": notes, "parity": figures}
        )
        write_manifest(staging, manifest)
    return manifest


def _trace_component(
    src: Manifest, source: Path, staging: Path, name: str, module: Any, checks: CheckSet, spec: Any, config: TraceConfig
) -> tuple[Component, dict[str, Any], list[dict]]:
    """Trace (else script) one component, save it, load it back through the backend and check it.

    Returns (component, note, parity figures); falls back to the eager "torch" component with the
    reasons when neither method gives a TorchScript file that matches eager PyTorch.
    """
    import torch

    from speedy.artifacts import replace_component
    from speedy.runtime import RuntimeOptions, load_runner
    from speedy.stages.compile_torch import keep_torch_files

    rejected: dict[str, str] = {}
    for method in ("trace", "script"):
        try:
            ts = _to_torchscript(method, name, module, checks)
        except _Rejected as e:
            rejected[method] = str(e)
            continue
        path = staging / f"{name}{TS_SUFFIX}"
        torch.jit.save(ts, str(path))
        comp = replace_component(src.components[name], path, "torchscript", method=method)
        if not config.check:
            return comp, {"method": method, "rejected": rejected}, []
        trial = replace(src, components={**src.components, name: comp})
        runner = load_runner(trial, name, staging, RuntimeOptions(threads=config.threads))
        try:
            figs = compare_runner(runner, name, spec.component(name), checks, "trace", TraceParityError)
        except TraceParityError as e:
            rejected[method] = str(e)
            path.unlink()
            continue
        return comp, {"method": method, "rejected": rejected}, [asdict(f) for f in figs]
    _LOGGER.warning("trace: %s stays eager torch (%s)", name, "; ".join(f"{k}: {v}" for k, v in rejected.items()))
    keep_torch_files(source, staging, src)
    return src.components[name], {"method": "kept-torch", "rejected": rejected}, []


class _Rejected(Exception):
    """A TorchScript method failed or would bake in a data-dependent value (internal)."""


def _to_torchscript(method: str, name: str, module: Any, checks: CheckSet) -> Any:
    """A TorchScript module by `method` ("trace" checked at a second input size, or "script")."""
    import torch

    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always", torch.jit.TracerWarning)
        try:
            if method == "script":
                ts = torch.jit.script(module)
            else:
                first, second = _trace_inputs(name, checks)
                ts = torch.jit.trace(module, first, check_inputs=[first, second], check_tolerance=1e-4)
        except Exception as e:  # the tracer/scripter raise many types; the first line says why
            first_line = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise _Rejected(f"{type(e).__name__}: {first_line[:300]}") from None
    tracer = [str(w.message).splitlines()[0][:200] for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
    if tracer:
        raise _Rejected(f"TracerWarning (a data-dependent value would be baked in): {tracer[0]}")
    return ts.eval()


def _trace_inputs(name: str, checks: CheckSet) -> tuple[tuple, tuple]:
    """Two example inputs of different sizes (and, for the acoustic model, different controls).

    Each control is its own tensor: inputs that alias one tensor would be recorded as one.
    """
    import numpy as np
    import torch

    if name == "vocoder":
        mels = [m for m, _ in checks.vocoder]
        a = mels[0]
        b = next((m for m in mels if m.shape[1] != a.shape[1]), np.concatenate([a, a[:, :7]], axis=1))
        return (torch.from_numpy(a),), (torch.from_numpy(b),)
    rows = list(checks.acoustic)
    ids_a, c_a = rows[0][0], rows[0][1]
    ids_b = next((r[0] for r in rows if r[0].shape[1] != ids_a.shape[1]), np.concatenate([ids_a, ids_a], axis=1))
    c_b = CHECK_CONTROLS[1]

    def pack(ids: np.ndarray, c: GraphControls) -> tuple:
        return (torch.from_numpy(ids), *(torch.tensor([v], dtype=torch.float32) for v in c.values()))

    return pack(ids_a, c_a), pack(ids_b, c_b)
