"""Sambert and HiFi-GAN numerics against KAN-TTS's own classes.

tests/fixtures/sambert_reference/reference.npz holds what KAN-TTS@66202d05's `KanTtsSAMBERT` and
`Generator` computed on the small fixture checkpoint (tests/fixtures/make_sambert_reference.py, run by
hand on a fetched KAN-TTS checkout). Here this project's modules load the same checkpoint through the
ModelScope reader and must give the same durations exactly and the same mel and waveform within float32
rounding: unlike the other Sambert parity tests, the reference shares no code with speedy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sambert_fixture import state_digest, write_sambert_folder

from speedy.families.sambert.loop import SambertInputs
from speedy.families.sambert.source import LoadedSambert, load_checkpoint, load_sambert, read_voice

REFERENCE = Path(__file__).parent / "fixtures" / "sambert_reference" / "reference.npz"
STREAMS = {"sy": "sy", "tone": "tone", "syllable_flag": "syllable_flag", "word_segment": "ws",
           "emotion": "emotion", "speaker": "speaker"}
"""Reference stream name (KAN-TTS vocabulary) → SambertInputs field."""
MEL_ATOL = 1e-4
"""Max |Δ| on the mel (normalised units, values of order 1): float32 rounding of a different op order."""
WAV_ATOL = 1e-4
"""Max |Δ| on the waveform in [-1, 1]."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return dict(data)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, reference: dict[str, np.ndarray]) -> LoadedSambert:
    """The fixture folder the reference was made from, read by speedy; refuses a stale reference."""
    folder = write_sambert_folder(tmp_path_factory.mktemp("sambert") / "model", voices=("zhitian_emo", "zhizhe_emo"))
    info = read_voice(folder)
    digest = (state_digest(load_checkpoint(info.am_checkpoint)["model"])
              + state_digest(load_checkpoint(info.voc_checkpoint)["model"]["generator"]))
    assert digest == str(reference["digest"]), (
        "the fixture checkpoint changed since reference.npz was made; rerun tests/fixtures/make_sambert_reference.py")
    return load_sambert(folder)


def _cases(reference: dict[str, np.ndarray]) -> list[str]:
    return sorted({k.split("_", 1)[0] for k in reference if k.startswith("c")})


def test_reference_has_cases(reference: dict[str, np.ndarray]) -> None:
    """Three utterances (5, 12 and 21 symbols), each with mel, durations and waveform."""
    assert _cases(reference) == ["c0", "c1", "c2"]
    assert [reference[f"{c}_sy"].size for c in _cases(reference)] == [5, 12, 21]


@pytest.mark.parametrize("case", ["c0", "c1", "c2"])
def test_acoustic_matches_kantts(loaded: LoadedSambert, reference: dict[str, np.ndarray], case: str) -> None:
    """Symbols → identical durations, and decoder / postnet mels within float32 rounding of KAN-TTS's."""
    inputs = SambertInputs(**{field: reference[f"{case}_{k}"] for k, field in STREAMS.items()})
    with torch.no_grad():
        out = loaded.acoustic(inputs)
    np.testing.assert_array_equal(out.durations.numpy(), reference[f"{case}_durations"])
    np.testing.assert_allclose(out.dec_mel.numpy(), reference[f"{case}_dec_mel"], rtol=0, atol=MEL_ATOL)
    np.testing.assert_allclose(out.mel.numpy(), reference[f"{case}_mel"], rtol=0, atol=MEL_ATOL)


@pytest.mark.parametrize("case", ["c0", "c1", "c2"])
def test_vocoder_matches_kantts(loaded: LoadedSambert, reference: dict[str, np.ndarray], case: str) -> None:
    """KAN-TTS's mel → the same waveform as KAN-TTS's weight-norm Generator (ours has the norm folded)."""
    mel = torch.from_numpy(reference[f"{case}_mel"])[None]
    with torch.no_grad():
        wav = loaded.vocoder(mel)[0].numpy()
    want = reference[f"{case}_wav"]
    assert wav.shape == want.shape == (mel.shape[1] * 200,)
    np.testing.assert_allclose(wav, want, rtol=0, atol=WAV_ATOL)
