"""HiFi-GAN generator: shapes, determinism, TorchScript/ONNX parity, weight-norm folding.

Random weights only (no real checkpoint is reachable here); inputs are a few frames to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from speedy.errors import InputError
from speedy.models.hifigan import HiFiGANConfig, HiFiGANGenerator, fold_weight_norm

OPSET = 17
CONFIGS = {"v1": HiFiGANConfig.v1, "v2": HiFiGANConfig.v2, "v3": HiFiGANConfig.v3}
#: Export parity on v2 and v3 covers both residual block types; v1 is v2's code at 4× the width (512
#: channels), which only makes tracing slower.
PARITY = ["v2", "v3"]


def _model(name: str, seed: int = 0) -> HiFiGANGenerator:
    torch.manual_seed(seed)
    return HiFiGANGenerator(CONFIGS[name]()).eval()


def _mel(frames: int, n_mels: int = 80, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, frames, n_mels, generator=gen)


@pytest.fixture(scope="module")
def models() -> dict[str, HiFiGANGenerator]:
    return {name: _model(name) for name in CONFIGS}


def test_paper_configs() -> None:
    """V1/V2/V3 carry the paper's rates, kernels, channels and residual block types."""
    v1, v2, v3 = HiFiGANConfig.v1(), HiFiGANConfig.v2(), HiFiGANConfig.v3()
    assert v1.upsample_rates == v2.upsample_rates == (8, 8, 2, 2)
    assert v1.upsample_kernel_sizes == (16, 16, 4, 4)
    assert (v1.upsample_initial_channel, v2.upsample_initial_channel) == (512, 128)
    assert v1.resblock == v2.resblock == 1 and v1.resblock_kernel_sizes == (3, 7, 11)
    assert v3.upsample_rates == (8, 8, 4) and v3.upsample_kernel_sizes == (16, 16, 8)
    assert v3.upsample_initial_channel == 256 and v3.resblock == 2
    assert v3.resblock_dilation_sizes == ((1, 2), (2, 6), (3, 12))
    assert v1.hop_size == v2.hop_size == v3.hop_size == 256


def test_config_validation_names_the_option() -> None:
    """A bad config is refused with a message naming the field."""
    with pytest.raises(InputError, match="upsample_kernel_sizes"):
        HiFiGANConfig(upsample_rates=(8, 8), upsample_kernel_sizes=(16,))
    with pytest.raises(InputError, match="resblock"):
        HiFiGANConfig(resblock=3)
    cfg = HiFiGANConfig.from_dict({"resblock": "2", "num_mels": 80, "upsample_rates": [8, 8, 4],
                                   "upsample_kernel_sizes": [16, 16, 8],
                                   "upsample_initial_channel": 256,
                                   "resblock_kernel_sizes": [3, 5, 7],
                                   "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]],
                                   "segment_size": 8192})
    assert cfg == HiFiGANConfig.v3()


def test_checkpoint_parameter_names(models: dict[str, HiFiGANGenerator]) -> None:
    """Parameter names follow the reference checkpoint layout."""
    keys1 = set(models["v1"].state_dict())
    assert {"conv_pre.weight", "ups.0.weight", "resblocks.0.convs1.0.weight",
            "resblocks.11.convs2.2.bias", "conv_post.weight"} <= keys1
    assert "resblocks.8.convs.1.weight" in models["v3"].state_dict()


@pytest.mark.parametrize("name, frames", [("v1", 3), ("v2", 3), ("v2", 8), ("v3", 3), ("v3", 8)])
def test_output_shape_and_range(
    models: dict[str, HiFiGANGenerator], name: str, frames: int
) -> None:
    """(B, frames, n_mels) in gives (B, frames*256) in [-1, 1] out."""
    with torch.inference_mode():
        wav = models[name](_mel(frames).repeat(2, 1, 1))
    assert wav.shape == (2, frames * 256)
    assert wav.abs().max() <= 1.0 and torch.isfinite(wav).all()


def test_deterministic(models: dict[str, HiFiGANGenerator]) -> None:
    """Same weights and input give bit-identical output; a seed rebuilds the same weights."""
    mel = _mel(5)
    with torch.inference_mode():
        a, b = models["v2"](mel), models["v2"](mel)
        c = _model("v2")(mel)
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", PARITY)
def test_torchscript_trace_parity(models: dict[str, HiFiGANGenerator], name: str) -> None:
    """A traced generator matches eager within 1e-5, also at a length it was not traced at."""
    model = models[name]
    with torch.inference_mode():
        traced = torch.jit.trace(model, _mel(4), check_trace=False)
        for frames in (4, 9):
            mel = _mel(frames, seed=frames)
            diff = (traced(mel) - model(mel)).abs().max().item()
            assert diff <= 1e-5, f"{name} at {frames} frames: {diff}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", PARITY)
def test_onnx_export_parity(
    models: dict[str, HiFiGANGenerator], name: str, tmp_path: Path
) -> None:
    """ONNX export with a dynamic frame axis matches eager in onnxruntime at two lengths."""
    import onnxruntime as ort

    model, path = models[name], tmp_path / f"hifigan_{name}.onnx"
    torch.onnx.export(
        model, (_mel(4),), str(path), dynamo=False, opset_version=OPSET,
        input_names=["mel"], output_names=["wav"],
        dynamic_axes={"mel": {1: "frames"}, "wav": {1: "samples"}},
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for frames in (3, 11):
        mel = _mel(frames, seed=frames)
        with torch.inference_mode():
            ref = model(mel).numpy()
        (out,) = sess.run(["wav"], {"mel": mel.numpy()})
        assert out.shape == (1, frames * 256)
        assert np.abs(out - ref).max() <= 1e-4


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_fold_weight_norm_matches_weight_norm_modules(models: dict[str, HiFiGANGenerator]) -> None:
    """A weight-normed copy's state dict (legacy and parametrization names) folds to equal output."""
    ref = models["v3"]
    mel = _mel(6)
    with torch.inference_mode():
        expected = ref(mel)
    for wn in (nn.utils.weight_norm, nn.utils.parametrizations.weight_norm):
        torch.manual_seed(3)
        wn_model = HiFiGANGenerator(HiFiGANConfig.v3()).eval()
        for module in wn_model.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                wn(module)
        with torch.no_grad():  # make g differ from ||v|| so folding is really exercised
            for pname, p in wn_model.named_parameters():
                if pname.endswith(("weight_g", "original0")):
                    p.mul_(1.5)
        with torch.inference_mode():
            wn_out = wn_model(mel)
        state = wn_model.state_dict()
        assert any(k.endswith(("weight_g", "original0")) for k in state)
        plain = HiFiGANGenerator(HiFiGANConfig.v3()).eval()
        plain.load_checkpoint_state({"generator": state})
        with torch.inference_mode():
            assert (plain(mel) - wn_out).abs().max().item() <= 1e-5
        assert not torch.equal(wn_out, expected)
    assert "conv_pre.weight" in fold_weight_norm(state)
