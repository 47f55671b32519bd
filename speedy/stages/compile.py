"""Compile stage: an artifact → the same voice prepared for one runtime backend.

The backends are the records of the one backend table, `speedy.backends`: what each reads and writes,
its compiler ("module:function", e.g. `speedy.stages.compile_ort`), its preflight, precisions, levels and
the hardware it needs. This module validates the options against the record, refuses an input or machine
the record rules out, runs the compiler into a staging folder and checks the result; it has no per-backend
branches.

Every compiled component is run against its source on the same inputs and compared with the family's
export tolerances (`speedy.families.graph_spec`); a difference beyond them raises `CompileParityError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from speedy.artifacts import (
    Manifest,
    atomic_artifact,
    lineage_step,
    read_manifest,
    write_manifest,
)
from speedy.backends import BACKENDS as TABLE
from speedy.backends import COMPILE_PRECISIONS, Backend, backend, fmt, missing_isa, resolve
from speedy.errors import InputError
from speedy.families import lookup
from speedy.stages.loop_check import verify_loop
from speedy.stages.parity import CheckSet, ParityError, build_check_set, compare_runner, family_spec

_LOGGER = logging.getLogger(__name__)


class CompileParityError(ParityError):
    """The compiled component disagrees with its source beyond the family's tolerance."""


@dataclass(frozen=True)
class CompileConfig:
    """Options of the compile stage.

    backend: a `speedy.backends` name (onnxruntime, openvino, tensorrt, torch).
    threads: intra-op threads stored as the artifact's default and used for the checks (None = all cores).
    precision: target precision, one of the backend's `precisions` (tensorrt: fp16, or int8 with
        `int8_calib`; openvino: bf16 or int8); onnxruntime and torch keep the source's and take "fp32".
    max_seq_len: most phoneme ids per sentence the compiled acoustic model must take (tensorrt profiles,
        torch.export dimension bounds).
    max_frames: most mel frames per sentence (12.5 ms each at 24 kHz / hop 300).
    opt_level: onnxruntime graph level ("basic" | "extended" | "all"; default "extended") or the
        TensorRT builder optimisation level ("0".."5"; default "3").
    transformer_fusions: onnxruntime only: try `onnxruntime.transformers.optimizer` on the acoustic model.
    int8_calib: tensorrt + int8 only: a folder of .npz calibration batches (one per sentence; arrays
        named after the graph inputs).
    """

    backend: str = "onnxruntime"
    threads: int | None = None
    precision: str = "fp32"
    max_seq_len: int = 512
    max_frames: int = 2048
    opt_level: str | None = None
    transformer_fusions: bool = True
    int8_calib: Path | None = None
    check: bool = True

    def __post_init__(self) -> None:
        b = backend(self.backend)  # InputError for an unknown name
        if self.threads is not None and not 1 <= self.threads <= 256:
            raise InputError(f"--threads must be in [1, 256], got {self.threads}")
        if self.precision not in b.precisions:
            takers = [x.name for x in TABLE if self.precision in x.precisions]
            if not takers:
                raise InputError(
                    f"--precision {self.precision!r} is unknown; choose one of: {', '.join(COMPILE_PRECISIONS)}"
                )
            raise InputError(
                f"--precision {self.precision} needs --backend {' or '.join(takers)}; the {b.name} backend "
                f"takes {'/'.join(b.precisions)}"
                + (
                    " and keeps the source's precision (use 'speedy quantize' for INT8/FP16 ONNX)"
                    if b.precisions == ("fp32",)
                    else ""
                )
            )
        if not 2 <= self.max_seq_len <= 4096:
            raise InputError(f"--max-seq-len must be in [2, 4096], got {self.max_seq_len}")
        if not 16 <= self.max_frames <= 65536:
            raise InputError(f"--max-frames must be in [16, 65536], got {self.max_frames}")
        if self.opt_level is not None and self.opt_level not in b.levels:
            what = f"takes one of: {', '.join(b.levels)}" if b.levels else "takes no --opt-level"
            raise InputError(f"--opt-level {self.opt_level!r}: the {b.name} backend {what}")
        for option in ("int8_calib",):  # the backend-specific options that have no default
            if getattr(self, option) is None or b.options.get(option) in ("", self.precision):
                continue
            uses = [
                f"--backend {x.name}" + (f" --precision {x.options[option]}" if x.options[option] else "")
                for x in TABLE
                if option in x.options
            ]
            raise InputError(f"--{option.replace('_', '-')} is only used with {' or '.join(uses)}")
        if b.validate:
            resolve(b.validate)(self)

    @property
    def record(self) -> Backend:
        """This config's row of the backend table."""
        return backend(self.backend)

    @property
    def level(self) -> str:
        """The effective optimisation level for the backend."""
        return self.opt_level if self.opt_level is not None else self.record.default_level

    def options(self) -> dict[str, Any]:
        """The options as recorded in the lineage (level resolved)."""
        d = asdict(self)
        d["opt_level"] = self.level
        d["int8_calib"] = str(self.int8_calib) if self.int8_calib else None
        return d


def compile_artifact(
    source: Path,
    out: Path,
    config: CompileConfig,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Manifest:
    """Compile the artifact at `source` for `config.backend` into `out` (atomic folder write).

    Returns the written manifest; `extra["compile"]` holds per-component notes (fusions, profiles,
    reasons for what was kept as it was) and `extra["parity"]` the figures against the source.
    Raises InputError (wrong kind of source, bad options), ModelError / MissingExtraError (exit 3:
    no GPU, missing extra, unusable input) or CompileParityError.
    """
    say = progress or (lambda m: _LOGGER.info(m))
    source = Path(source)
    src = read_manifest(source)
    _check_source(src, source, config)
    family = lookup(src.family)
    record = config.record
    graphs = family is not None and family.multi_graph  # host-loop family: checked through its loop
    if graphs and not record.multi_graph:
        takers = " or ".join(b.name for b in TABLE if b.multi_graph)
        raise InputError(f"compile: {source} is a multi-graph {src.family} artifact; only --backend {takers} takes it")
    if graphs and family is not None and config.check and family.loop_check is None:
        raise InputError(
            f"compile: {family.name} artifacts have no host-loop check yet; use the ONNX artifact "
            "as it is (or pass --no-check)"
        )
    spec = None if graphs else family_spec(src, "compile")
    if record.preflight:
        resolve(record.preflight)(src, source, config)
    lacking = missing_isa(record.precision_needs.get(config.precision, ()))
    if lacking:
        usable = [p for p in record.precisions if missing_isa(record.precision_needs.get(p, ())) is None]
        raise InputError(
            f"compile: --backend {record.name} --precision {config.precision} {lacking} (use {' or '.join(usable)})"
        )
    start = time.perf_counter()
    with atomic_artifact(out, force=force) as staging:
        # spec is None exactly for a multi-graph family
        checks = (
            build_check_set(src, source, spec, threads=config.threads) if config.check and spec is not None else None
        )
        comps, notes = resolve(record.compiler)(src, source, staging, config, checks, say)
        needs = record.precision_needs.get(config.precision)
        if needs:  # read back by speedy.runtime.isa_warnings where the artifact is run
            comps = {n: replace(c, extra={**dict(c.extra), "needs_isa": list(needs)}) for n, c in comps.items()}
        manifest = replace(src, components=comps, extra={**dict(src.extra), "compile": notes})
        figures: list[dict] = []
        if config.check and graphs:
            assert family is not None
            say("checking the compiled graphs against the source through the host loop")
            figures = verify_loop(
                src,
                source,
                manifest,
                staging,
                threads=config.threads,
                strict=config.precision == "fp32",
                error=CompileParityError,
            )
        elif checks is not None:
            say("checking the compiled components against the source")
            figures = verify(manifest, staging, checks, spec, config.threads, strict=config.precision == "fp32")
        step = lineage_step(
            "compile", {**config.options(), "source": str(source)}, time.perf_counter() - start, *record.libs
        )
        manifest = manifest.with_step(step, extra={**dict(manifest.extra), "parity": figures})
        write_manifest(staging, manifest)
    return manifest


def verify(
    manifest: Manifest, root: Path, checks: CheckSet, spec: Any, threads: int | None, strict: bool = True
) -> list[dict]:
    """Load each component of `manifest` through its runtime backend and compare with `checks`.

    `strict=False` reports the figures without enforcing the FP32 tolerances (FP16/INT8 engines).
    """
    from speedy.runtime import RuntimeOptions, load_runner

    figures: list[dict] = []
    opts = RuntimeOptions(threads=threads)
    for name in (n for n in spec.graphs if n in manifest.components):
        runner = load_runner(manifest, name, root, opts)
        figures += [  # NaN (lengths differ, not comparable) is recorded as null: the manifest stays strict JSON
            {**asdict(f), "value": None if f.value != f.value else f.value, "enforced": strict}
            for f in compare_runner(
                runner, name, spec.component(name), checks, "compile", CompileParityError, strict=strict
            )
        ]
    return figures


def _check_source(src: Manifest, source: Path, config: CompileConfig) -> None:
    formats = {c.format for c in src.components.values()}
    reads = config.record.reads
    if not formats <= set(reads):
        hint = " or ".join(getattr(fmt(r), "artifact", "") or f"{r} components" for r in reads)
        raise InputError(
            f"compile: {source} has {'/'.join(sorted(formats))} components; the {config.backend} backend takes {hint}"
        )
