"""Sambert acoustic model and KAN-TTS HiFi-GAN: checkpoint layout, step-wise decoding, vocoder details."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sambert_fixture import (
    AM_PARAMS_16K,
    AM_PARAMS_SMALL,
    VOC_PARAMS_16K,
    VOCAB,
    acoustic_state,
    vocoder_state,
    write_sambert_folder,
)
from sambert_golden import AM_16K_KEYS, AM_16K_VOCAB, VOC_16K_KEYS

from speedy.families.sambert.kan_hifigan import KanHifiGan, KanHifiGanConfig, fold_weight_norm
from speedy.families.sambert.loop import IDENTITY_CONTROLS, SambertLoop, length_regulate
from speedy.families.sambert.model import SambertAcoustic, SambertConfig, SambertInputs
from speedy.families.sambert.source import load_sambert
from speedy.families.sambert.torch_graphs import loop_config, sample_inputs, torch_graphs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # -> Iterator[None]
    """Small models run fastest single-threaded on the shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small() -> SambertAcoustic:
    model = SambertAcoustic(SambertConfig.from_params(AM_PARAMS_SMALL, VOCAB))
    model.load_checkpoint_state(acoustic_state(AM_PARAMS_SMALL, seed=3))
    return model


def test_acoustic_layout_matches_kantts_16k() -> None:
    """The 16 kHz acoustic model has KAN-TTS' 395 state-dict keys, in order, with the same shapes."""
    assert AM_16K_VOCAB == VOCAB
    state = SambertAcoustic(SambertConfig.from_params(AM_PARAMS_16K, VOCAB)).state_dict()
    assert len(state) == len(AM_16K_KEYS) == 395
    assert list(state) == list(AM_16K_KEYS)
    assert {k: tuple(v.shape) for k, v in state.items()} == AM_16K_KEYS


def test_vocoder_layout_matches_kantts_16k() -> None:
    """The fixture's weight-norm generator state has KAN-TTS' 318 keys and shapes; folding leaves 212."""
    state = vocoder_state(VOC_PARAMS_16K, seed=0)
    assert len(state) == len(VOC_16K_KEYS) == 318
    assert {k: tuple(v.shape) for k, v in state.items()} == VOC_16K_KEYS
    folded = fold_weight_norm(state)
    assert len(folded) == 212 and not any(k.endswith(("weight_g", "weight_v")) for k in folded)


def test_real_size_folder_loads_strictly(tmp_path: Path) -> None:
    """A folder with the real 16 kHz sizes loads strictly; parameter counts match KAN-TTS (12.7 M + 4.86 M)."""
    write_sambert_folder(tmp_path / "m", size="16k")
    loaded = load_sambert(tmp_path / "m")
    assert sum(p.numel() for p in loaded.acoustic.parameters()) == 12_706_787
    folded = sum(int(np.prod(shape)) for key, shape in VOC_16K_KEYS.items() if not key.endswith("weight_g"))
    assert sum(p.numel() for p in loaded.vocoder.parameters()) == folded
    assert loaded.acoustic.config.vocab_sizes["sy"] == 147
    assert loaded.voice.audio.sample_rate == 16000 and loaded.vocoder.hop_size == 200


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_fold_weight_norm_equals_torch_weight_norm() -> None:
    """Folding gives the weight torch's own weight_norm computes (for convs and transposed convs)."""
    for layer in (torch.nn.Conv1d(4, 6, 3), torch.nn.ConvTranspose1d(6, 4, 5, 2)):
        wn = torch.nn.utils.weight_norm(layer)
        with torch.no_grad():
            wn.weight_g.mul_(1.7)
            wn(torch.zeros(1, layer.in_channels, 8))  # recompute .weight
        state = {"c.weight_g": wn.weight_g.detach(), "c.weight_v": wn.weight_v.detach(), "c.bias": wn.bias.detach()}
        folded = fold_weight_norm(state)
        assert torch.equal(folded["c.weight"], wn.weight.detach())


@pytest.mark.parametrize("band", [0, 1, 3])
def test_stepwise_decoder_equals_looped_reference(small: SambertAcoustic, band: int) -> None:
    """decoder_step with an explicit cache and band inputs reproduces the reference masked loop."""
    torch.manual_seed(band)
    n = 11
    cfg = small.config
    frames = n * cfg.outputs_per_step
    lr = [torch.randn(1, frames, d) for d in (cfg.encoder_projection_units, cfg.emotion_units, cfg.speaker_units)]
    dur_pos = torch.arange(frames).float().remainder(4).add(1).unsqueeze(0)
    with torch.no_grad():
        memory, h_k, h_v = small.decoder_memory(lr[0], dur_pos, lr[1], lr[2])
        want = small._decode_reference(memory, band)
        x_k = torch.zeros(cfg.decoder_num_layers, cfg.decoder_num_heads, n, cfg.decoder_head_dim)
        x_v = torch.zeros_like(x_k)
        frame = torch.zeros(1, 1, cfg.num_mels)
        got = []
        b = torch.tensor(band)
        for s in range(n):
            out, k, v = small.decoder_step(frame, memory[:, s : s + 1], x_k, x_v, h_k, h_v, torch.tensor(s), b, b)
            x_k[:, :, s], x_v[:, :, s] = k[:, :, 0], v[:, :, 0]
            got.append(out)
            frame = out[:, :, -cfg.num_mels :]
    got_mel = torch.cat(got, dim=1).reshape(1, -1, cfg.num_mels)
    torch.testing.assert_close(got_mel, want, atol=1e-5, rtol=1e-5)


def test_host_loop_on_torch_equals_forward(small: SambertAcoustic) -> None:
    """The host loop driving the PyTorch pieces gives forward's durations, band and mel."""
    inputs = sample_inputs(small, 21, seed=4)
    want = small(inputs)
    loop = SambertLoop(torch_graphs(small), loop_config(small, None, 16000))
    got = loop.acoustic(inputs)
    np.testing.assert_array_equal(got.durations, want.durations.numpy())
    assert got.band == want.band
    np.testing.assert_allclose(got.mel, want.mel.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(got.pitch, want.pitch.numpy(), atol=1e-6)


def test_controls_change_only_what_they_should(small: SambertAcoustic) -> None:
    """Identity controls equal no controls; a pitch shift changes the mel but not the pitch prediction."""
    inputs = sample_inputs(small, 9, seed=5)
    base = small(inputs)
    same = small(inputs, torch.tensor(IDENTITY_CONTROLS))
    shifted = small(inputs, torch.tensor([1.0, 0.5, 1.0, 0.0]))
    assert torch.equal(base.mel, same.mel)
    assert torch.equal(base.pitch, shifted.pitch)
    assert not torch.equal(base.mel, shifted.mel)


def test_length_regulate_positions_and_padding() -> None:
    """Symbols repeat by duration, positions count 1..d per symbol, padding reaches a multiple of r."""
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)
    pos, (rep,) = length_regulate(np.array([2, 0, 3]), 3, feats)
    assert pos.tolist() == [[1, 2, 1, 2, 3, 0]]
    assert rep[0, :, 0].tolist() == [0, 0, 4, 4, 4, 0]


def test_vocoder_is_causal_and_hop_exact() -> None:
    """Output length is frames × hop, and changing a later frame leaves earlier samples unchanged."""
    voc = KanHifiGan(KanHifiGanConfig(channels=16))
    mel = torch.randn(1, 12, 80)
    with torch.no_grad():
        a = voc(mel)
        mel[:, 8:] += 1.0
        b = voc(mel)
    assert a.shape == (1, 12 * 200)
    assert torch.equal(a[:, : 8 * 200], b[:, : 8 * 200]) and not torch.equal(a, b)


def test_inputs_validation() -> None:
    """SambertInputs refuses mismatched lengths and out-of-vocabulary ids with one-line errors."""
    from speedy.errors import InputError

    with pytest.raises(InputError, match="tone: length 2"):
        SambertInputs([1, 2, 3], [1, 2], [0, 0, 0], [0, 0, 0], [1, 1, 1], [0, 0, 0])
    inputs = SambertInputs.with_style([1, 2, 200], [1, 2, 3], [0, 0, 0], [0, 0, 0], emotion=1, speaker=0)
    with pytest.raises(InputError, match=r"sy\[2\] = 200"):
        inputs.check_vocab({"sy": 147})
