"""How many units each group keeps: one removal fraction for every chosen group, found by bisection.

Parameter counts are computed on the shapes the cuts would give (so a conv between two pruned groups
shrinks on both sides), and channel counts are rounded to multiples of `round_to` (SIMD-friendly GEMM
shapes; heads are never rounded).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from speedy.errors import InputError
from speedy.prune.surgery import PruneGroup


@dataclass(frozen=True)
class Plan:
    """Units kept per group ({name: sorted indices}) and the parameter counts before/after."""

    keep: Mapping[str, Tensor]
    fraction: float
    params_before: int
    params_after: int


def _kept(group: PruneGroup, fraction: float, round_to: int) -> int:
    want = group.units * (1.0 - fraction)
    step = round_to if (group.unit == 1 and group.units >= 4 * round_to) else 1
    n = int(round(want / step)) * step
    return max(min(group.min_units, group.units), min(group.units, n))


def params_after(model: nn.Module, groups: Sequence[PruneGroup], kept: Mapping[str, int]) -> int:
    """Learned parameters of `model` once every group in `kept` is cut to that many units."""
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}
    for g in groups:
        if g.name in kept:
            for cut in (*g.producers, *g.consumers):
                shapes[cut.tensor][cut.dim] = kept[g.name] * cut.unit
    return sum(math.prod(s) for s in shapes.values())


def plan_uniform(
    model: nn.Module, groups: Sequence[PruneGroup], scores: Mapping[str, Tensor], target_ratio: float, round_to: int = 8
) -> Plan:
    """Remove the same fraction of units from every group so that params ≤ target_ratio × before.

    Args:
        model: the (unpruned) component.
        groups: the groups allowed to shrink.
        scores: {group name: (units,) importance}; the highest-scoring units are kept.
        target_ratio: wanted parameters after / before, in (0, 1).
        round_to: channel counts are multiples of this (groups with < 4·round_to units are exempt).

    Raises:
        InputError: the groups cannot remove enough parameters to reach the target.
    """
    before = sum(p.numel() for p in model.parameters())
    budget = target_ratio * before

    def count(f: float) -> int:
        return params_after(model, groups, {g.name: _kept(g, f, round_to) for g in groups})

    lowest = count(1.0)
    if lowest > budget:
        raise InputError(
            f"prune: --target-params {target_ratio:g} is out of reach for the chosen structures: "
            f"at most {1 - lowest / before:.0%} of the parameters can be removed "
            f"({lowest / before:.2f} is the smallest ratio)"
        )
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count(mid) <= budget else (mid, hi)
    kept = {g.name: _kept(g, hi, round_to) for g in groups}
    keep = {}
    for g in groups:
        s = scores[g.name]
        if s.shape != (g.units,):
            raise InputError(f"prune: criterion gave {tuple(s.shape)} scores for {g.name} ({g.units} units)")
        keep[g.name] = torch.topk(s, kept[g.name]).indices.sort().values
    return Plan(keep=keep, fraction=hi, params_before=before, params_after=count(hi))


def _round_keep(group: PruneGroup, n: int, round_to: int) -> int:
    step = round_to if (group.unit == 1 and group.units >= 4 * round_to) else 1
    n = int(math.ceil(n / step)) * step
    return max(min(group.min_units, group.units), min(group.units, n))


def plan_global(
    model: nn.Module, groups: Sequence[PruneGroup], scores: Mapping[str, Tensor], target_ratio: float, round_to: int = 8
) -> Plan:
    """Remove the units with the lowest importance per parameter across all groups, down to the target.

    A unit goes when score / parameters-per-unit is below a threshold τ found by bisection (the kept
    count of each group is rounded up to `round_to`), so groups whose units matter less per parameter
    lose more. Meaningful when scores are comparable across groups (taylor: the squared output change).
    `Plan.fraction` is the fraction of all units removed.
    """
    before = sum(p.numel() for p in model.parameters())
    budget = target_ratio * before
    shapes = {n: p.shape for n, p in model.named_parameters()}
    density = {}
    for g in groups:
        s = scores[g.name]
        if s.shape != (g.units,):
            raise InputError(f"prune: criterion gave {tuple(s.shape)} scores for {g.name} ({g.units} units)")
        density[g.name] = s.double() / g.params_per_unit(shapes)

    def kept_at(tau: float) -> dict[str, int]:
        return {g.name: _round_keep(g, int((density[g.name] >= tau).sum()), round_to) for g in groups}

    def count(tau: float) -> int:
        return params_after(model, groups, kept_at(tau))

    top = max(float(d.max()) for d in density.values()) * 2 + 1e-30
    if count(top) > budget:
        lowest = count(top)
        raise InputError(
            f"prune: --target-params {target_ratio:g} is out of reach for the chosen structures: "
            f"at most {1 - lowest / before:.0%} of the parameters can be removed "
            f"({lowest / before:.2f} is the smallest ratio)"
        )
    lo, hi = 0.0, top
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count(mid) <= budget else (mid, hi)
    kept = kept_at(hi)
    keep = {g.name: torch.topk(scores[g.name], kept[g.name]).indices.sort().values for g in groups}
    removed = sum(g.units - kept[g.name] for g in groups) / max(1, sum(g.units for g in groups))
    return Plan(keep=keep, fraction=removed, params_before=before, params_after=count(hi))


ALLOCATIONS = {"uniform": plan_uniform, "global": plan_global}
