"""Structured pruning surgery for the prune stage: which groups a module has, read from its family's
`PruneMap` (speedy.families), and the tensor surgery itself (`speedy.families.surgery`, re-exported here).

A module is prunable as `component` when some registered family's prune map names its class for that
component (its "module map"); the family's group builder then lists the groups, in module order.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from speedy.errors import InputError
from speedy.families import PruneMap, resolve, specs
from speedy.families.surgery import (
    Cut,
    PruneGroup,
    count_params,
    mask_group,
    owner_of,
    prune_group,
    sync_attributes,
    unit_index,
    widths,
)
from speedy.families.surgery import resize as resize_groups

__all__ = [
    "Cut",
    "PruneGroup",
    "count_params",
    "groups_for",
    "mask_group",
    "owner_of",
    "prune_group",
    "prune_map_for",
    "resize",
    "sync_attributes",
    "unit_index",
    "widths",
]


def prune_map_for(component: str, model: nn.Module) -> PruneMap:
    """The prune map of the family whose module map names `model`'s class for `component`; InputError
    (one line, naming what is supported) when no registered family does."""
    name = type(model).__name__
    for spec in specs():
        if spec.prune is not None and spec.prune.modules.get(component) == name:
            return spec.prune
    known = ", ".join(
        f"{spec.name}: {c} {cls}" for spec in specs() if spec.prune is not None for c, cls in spec.prune.modules.items()
    )
    raise InputError(
        f"prune: the {component} model ({name}) has no prunable structures known to speedy (supported: {known or 'none'})"
    )


def groups_for(component: str, model: nn.Module) -> list[PruneGroup]:
    """Prunable groups of `model` as `component` (its family's `PruneMap.groups`); InputError if none."""
    return list(resolve(prune_map_for(component, model).groups[component])(model))


def resize(model: nn.Module, component: str, target: Mapping[str, int]) -> None:
    """Shrink `model` to the widths `target` ({group name: units}) keeping the first units."""
    resize_groups(model, component, lambda m: groups_for(component, m), target)
