"""Per-component fidelity (speedy.fidelity) on small synthetic runners."""

from __future__ import annotations

import numpy as np
import pytest

from speedy.errors import InputError
from speedy.fidelity import component_fidelity, impose_durations


def test_impose_durations_is_identity_when_durations_match() -> None:
    mel = np.arange(12, dtype=np.float32).reshape(1, 6, 2)
    assert impose_durations(mel, np.array([2, 4]), np.array([2, 4])) is mel


def test_impose_durations_maps_each_token_onto_the_reference_count() -> None:
    """Token 0 has 2 frames (rows 0, 1) where the reference has 4; token 1 has 3 (rows 2–4) where it has 1;
    token 2 dropped (0 frames) where the reference has 2 (holds the last frame before it)."""
    mel = np.arange(5, dtype=np.float32).reshape(1, 5, 1)
    out = impose_durations(mel, np.array([2, 3, 0]), np.array([4, 1, 2]))
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 2, 4, 4]
    with pytest.raises(InputError):
        impose_durations(mel, np.array([5]), np.array([2, 3]))


class _Fake:
    """An acoustic model that makes a smooth 'mel' from ids (2 frames a token, or `durations`), and a vocoder
    that renders it as a harmonic tone whose level follows the mel; `noise` adds error to one stage."""

    sample_rate = 24000
    hop = 300

    def __init__(self, acoustic_noise: float = 0.0, vocoder_noise: float = 0.0, durations: int = 2) -> None:
        self.an, self.vn, self.d = acoustic_noise, vocoder_noise, durations

    def acoustic(self, ids: np.ndarray, controls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dur = np.full((1, ids.shape[1]), self.d, np.int64)
        frames = int(dur.sum())
        mel = np.tile(np.linspace(-1, 1, 8, dtype=np.float32), (1, frames, 1))
        mel += self.an * np.random.default_rng(1).normal(size=mel.shape).astype(np.float32)
        return mel, dur

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        n = mel.shape[1] * self.hop
        t = np.arange(n) / self.sample_rate
        level = np.repeat(1.0 + 0.5 * mel[0].mean(axis=1), self.hop)
        tone = sum(np.sin(2 * np.pi * 180 * k * t) / k for k in range(1, 20)) * 0.1 * level
        tone = tone + self.vn * np.random.default_rng(2).normal(size=n) + 1e-3 * np.random.default_rng(3).normal(size=n)
        return tone.astype(np.float32)


def test_component_fidelity_attributes_error_to_the_stage_that_has_it() -> None:
    """Noise in the test vocoder raises vocoder MCD, not acoustic MCD; identical runners score 0 / 0 / 1."""
    ids = [np.zeros((1, 120), np.int64)]
    same = component_fidelity(_Fake(), _Fake(), ids)
    assert same.vocoder_mcd_db == pytest.approx(0.0, abs=1e-6) and same.acoustic_mcd_db == pytest.approx(0.0, abs=1e-6)
    assert same.duration_match == 1.0 and same.utterances == 1
    noisy_voc = component_fidelity(_Fake(), _Fake(vocoder_noise=0.05), ids)
    assert noisy_voc.vocoder_mcd_db > 1.0
    assert noisy_voc.acoustic_mcd_db == pytest.approx(0.0, abs=1e-6)


def test_component_fidelity_counts_moved_durations() -> None:
    """A test model with 3 frames a token where FP32 has 2: no token matches."""
    report = component_fidelity(_Fake(), _Fake(durations=3), [np.zeros((1, 60), np.int64)])
    assert report.duration_match == 0.0
