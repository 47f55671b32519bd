"""Shared fixtures: the real default voice, converted and exported once per session into the cache."""

from __future__ import annotations

from pathlib import Path

import pytest


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
