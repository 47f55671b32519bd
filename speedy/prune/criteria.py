"""Importance criteria: small pluggable objects, `criterion(group, model) -> scores (units,)`.

Higher score = more important = kept. Weight criteria (l1, l2, random) look only at the group's
tensors; data criteria (activation, taylor) first run `prepare(model, groups, run)` where `run(model)`
feeds calibration inputs through the model and returns an output tensor to differentiate.

Every cut tensor contributes its per-unit norm divided by its mean over units, and the group score is
the mean over tensors (Torch-Pruning's "mean" group reduction with "mean" normalisation), so a large
consumer matrix does not drown the producer's biases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from speedy.errors import InputError
from speedy.prune.surgery import Cut, PruneGroup, owner_of

RunFn = Callable[[nn.Module], Tensor]
"""model -> an output tensor (any shape) computed from calibration inputs, with autograd enabled."""


def _per_unit(t: Tensor, cut: Cut, p: float) -> Tensor:
    """Lp mass of each unit of `t` along `cut.dim` -> (units,)."""
    x = t.detach().abs().pow(p).movedim(cut.dim, 0)
    x = x.reshape(x.shape[0] // cut.unit, -1).sum(dim=1)
    return x.pow(1.0 / p)


def _normalised_mean(parts: Sequence[Tensor]) -> Tensor:
    return torch.stack([s / s.mean().clamp_min(1e-12) for s in parts]).mean(dim=0)


class Criterion:
    """Base: `name` is the CLI name; `needs_data` says whether `prepare` must run first."""

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = False

    def prepare(self, model: nn.Module, groups: Sequence[PruneGroup], run: RunFn) -> None:
        """Collect statistics for data criteria (no-op for weight criteria)."""

    def __call__(self, group: PruneGroup, model: nn.Module) -> Tensor:
        raise NotImplementedError


class LpNorm(Criterion):
    """Magnitude of the unit's weights (producer rows and consumer columns), normalised per tensor."""

    def __init__(self, p: float = 1.0) -> None:
        self.p = p

    def __call__(self, group: PruneGroup, model: nn.Module) -> Tensor:
        parts = []
        for cut in (*group.producers, *group.consumers):
            owner, attr = owner_of(model, cut.tensor)
            parts.append(_per_unit(getattr(owner, attr), cut, self.p))
        return _normalised_mean(parts)


class L1(LpNorm):
    name = "l1"

    def __init__(self) -> None:
        super().__init__(1.0)


class L2(LpNorm):
    name = "l2"

    def __init__(self) -> None:
        super().__init__(2.0)


class RandomImportance(Criterion):
    """Uniform random scores (a baseline for the others), seeded."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, group: PruneGroup, model: nn.Module) -> Tensor:
        return torch.rand(group.units, generator=self.gen)


class _Probed(Criterion):
    """Shared hook plumbing: activations (and their gradients) at each group's probe, per unit."""

    needs_data = True

    def __init__(self) -> None:
        self.scores: dict[str, Tensor] = {}

    def _accumulate(self, group: PruneGroup, act: Tensor, grad: Tensor | None) -> Tensor:
        raise NotImplementedError

    def prepare(self, model: nn.Module, groups: Sequence[PruneGroup], run: RunFn) -> None:
        handles = []
        acc: dict[str, Tensor] = {}

        def hook_for(g: PruneGroup) -> Callable:
            def pre_hook(_m: nn.Module, args: tuple) -> None:
                x = args[0]
                if not self.uses_grad:
                    acc[g.name] = acc.get(g.name, 0) + self._accumulate(g, x.detach(), None)
                elif x.requires_grad:
                    x.register_hook(
                        lambda grad, x=x.detach(): acc.__setitem__(
                            g.name, acc.get(g.name, 0) + self._accumulate(g, x, grad.detach())
                        )
                    )

            return pre_hook

        for g in groups:
            handles.append(model.get_submodule(g.probe[0]).register_forward_pre_hook(hook_for(g)))
        try:
            if self.uses_grad:
                gen = torch.Generator().manual_seed(0)
                for p in model.parameters():
                    p.requires_grad_(True)
                y = run(model)
                # L = <y, v>, v ~ N(0, I): E[(a·∂L/∂a)²] = ‖J·a‖², the squared output change from
                # removing the unit, to first order (a Taylor/Fisher estimate with no targets needed).
                (y * torch.randn(y.shape, generator=gen)).sum().backward()
                model.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    run(model)
        finally:
            for h in handles:
                h.remove()
        missing = [g.name for g in groups if g.name not in acc]
        if missing:
            raise InputError(f"prune: criterion {self.name!r} saw no activations for {', '.join(missing[:3])}")
        self.scores.update(acc)

    uses_grad: ClassVar[bool] = False

    def __call__(self, group: PruneGroup, model: nn.Module) -> Tensor:
        if group.name not in self.scores:
            raise InputError(f"prune: criterion {self.name!r} was not prepared for {group.name}")
        return self.scores[group.name]


def _units_last(x: Tensor, axis: int, unit: int) -> Tensor:
    """(…, units·unit along axis, …) -> (rest, units, unit)."""
    x = x.movedim(axis, -1)
    return x.reshape(-1, x.shape[-1] // unit, unit)


class ActivationNorm(_Probed):
    """Mean |activation| of the unit on calibration data × its consumers' weight L1 (data-aware l1)."""

    name = "activation"

    def _accumulate(self, group: PruneGroup, act: Tensor, grad: Tensor | None) -> Tensor:
        return _units_last(act.abs(), group.probe[1], group.unit).sum(dim=(0, 2))

    def __call__(self, group: PruneGroup, model: nn.Module) -> Tensor:
        act = super().__call__(group, model)
        cons = [_per_unit(getattr(*owner_of(model, c.tensor)), c, 1.0) for c in group.consumers]
        return act * _normalised_mean(cons)


class Taylor(_Probed):
    """First-order Taylor estimate of the output change when the unit is removed (random projection)."""

    name = "taylor"
    uses_grad = True

    def _accumulate(self, group: PruneGroup, act: Tensor, grad: Tensor | None) -> Tensor:
        assert grad is not None  # internal invariant: uses_grad
        prod = _units_last(act * grad, group.probe[1], group.unit)  # (rest, units, unit)
        return prod.sum(dim=(0, 2)).pow(2)


CRITERIA: dict[str, type[Criterion]] = {c.name: c for c in (L1, L2, RandomImportance, ActivationNorm, Taylor)}


def get_criterion(name: str) -> Criterion:
    """A fresh criterion by CLI name; InputError listing the known ones."""
    if name not in CRITERIA:
        raise InputError(f"unknown --criterion {name!r}; choose one of: {', '.join(CRITERIA)}")
    return CRITERIA[name]()
