"""Shared fixtures: the real default voice, converted and exported once per session into the cache."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session")
def default_onnx() -> Path:
    """The default voice's FP32 ONNX artifact (built on first use, then read from the cache)."""
    from speedy.default_voice import default_artifact

    return default_artifact()


@pytest.fixture(scope="session")
def default_torch() -> Path:
    """The default voice as a torch artifact folder."""
    from speedy.default_voice import torch_artifact

    return torch_artifact()


@pytest.fixture(scope="session")
def synthesizer(default_onnx: Path):  # -> speedy.synth.Synthesizer
    """A Synthesizer on the default ONNX artifact, 2 threads (the CI machine's cores)."""
    from speedy.synth import Synthesizer

    return Synthesizer.load(default_onnx, threads=2)
