"""Student vocoders cut from their teacher: channel selection + shallower stacks + least-squares re-fit.

A student has the teacher's architecture with fewer channels per upsampling stage (`width`, a fraction of
every channel group: the first conv's output, each stage's residual stream, each residual block's inner
channels) and/or fewer residual blocks per stack (`layers`: the first N dilations are kept). It starts
from the teacher, never from random weights:

1. channels are kept by the L1 norm of their weights (`speedy.prune.criteria`), cut for real
   (`speedy.prune.surgery.prune_group`);
2. blocks past `layers` are dropped;
3. every convolution that reads changed inputs is re-solved by ridge regression on teacher activations,
   in forward order (each fit sees the student's already re-fitted layers before it): the first conv, each
   block's dilated conv (towards the teacher's kept inner channels), each block as a whole (shortcut and
   1×1 conv fitted jointly to the teacher's block output, or, for the last kept block of a shallower
   stack, to the teacher's *stack* output, which the dropped blocks used to produce), and the output conv.

At width 1 and all layers nothing is cut or re-fitted: the student equals the teacher exactly.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from speedy.errors import InputError

_LOGGER = logging.getLogger(__name__)

RIDGE = 1e-4
"""Ridge strength relative to the mean diagonal of XᵀX (the fits have far more rows than unknowns)."""
ROWS_PER_CROP = 3000
"""Output samples per calibration crop used in each fit, evenly spaced."""


@dataclass(frozen=True)
class StudentShape:
    """A point of the student space: `width` in (0, 1] (fraction of channels kept, rounded to multiples
    of `round_to`), `layers` residual blocks per stack (None = the teacher's count)."""

    width: float = 0.5
    layers: int | None = None
    inner: float | None = None
    round_to: int = 8

    def __post_init__(self) -> None:
        for name, value in (("--width", self.width), ("--inner-width", self.inner)):
            if value is not None and not (isinstance(value, (int, float)) and 0.0 < float(value) <= 1.0):
                raise InputError(f"{name} must be in (0, 1], got {value}")
        if self.layers is not None and self.layers < 1:
            raise InputError(f"--layers must be >= 1, got {self.layers}")
        if not 1 <= self.round_to <= 64:
            raise InputError(f"round_to must be in [1, 64], got {self.round_to}")

    def label(self) -> str:
        """Short name such as ``w0.50-l3`` (used in reports and cache keys)."""
        inner = f"-i{self.inner:.2f}" if self.inner is not None else ""
        return f"w{self.width:.2f}{inner}" + (f"-l{self.layers}" if self.layers else "")

    def fraction(self, kind: str) -> float:
        """Channels kept for a group kind (`speedy.families.zhtts.pruned.VOCODER_KINDS`)."""
        return self.inner if kind == "vocoder-inner" and self.inner is not None else self.width


def kept_units(units: int, width: float, round_to: int, min_units: int) -> int:
    """Channels kept of `units` at `width`: rounded to a multiple of `round_to`, never below `min_units`."""
    if width >= 1.0:
        return units
    k = int(round(units * width / round_to)) * round_to
    return int(min(units, max(min_units, k)))


def vocoder_macs(model: nn.Module, frames: int = 1) -> int:
    """Multiply-adds of one MB-MelGAN forward per `frames` mel frames (convolutions only; the PQMF included).

    Counted from the layer shapes and the time rate each layer runs at: a conv at `r` samples per frame costs
    out·in·k·r per frame; a transposed conv with stride s costs in·out·k per *input* sample.
    """
    from speedy.families.zhtts.mb_melgan import MBMelGAN

    if not isinstance(model, MBMelGAN):
        raise InputError(f"distill: no multiply-add count for {type(model).__name__}")
    cfg = model.cfg
    total = _conv_macs(model.pre, 1)
    rate = 1
    for up, stack in zip(model.upsamples, model.stacks):
        assert isinstance(up, nn.ConvTranspose1d) and isinstance(stack, nn.ModuleList)
        total += up.in_channels * up.out_channels * up.kernel_size[0] * rate
        rate *= up.stride[0]
        for block in stack:
            total += sum(_conv_macs(c, rate) for c in (block.shortcut, block.conv1, block.conv2))
    total += _conv_macs(model.post, rate)
    total += cfg.subbands * cfg.pqmf_taps * rate * cfg.subbands  # synthesis filter at the full rate
    return int(total * frames)


def _conv_macs(conv: nn.Module, rate: int) -> int:
    assert isinstance(conv, nn.Conv1d)
    return int(conv.out_channels * conv.in_channels * conv.kernel_size[0] * rate)


@dataclass(frozen=True)
class Student:
    """A student cut from its teacher.

    module: the student (eval mode); keep: {channel group: teacher channel indices kept}; fit_errors:
    {re-fitted layer: ‖ΔY‖ / ‖Y‖ on the calibration crops}; config: config.json sections to replace so the
    family's loader builds this shape (e.g. a shallower stack's dilations).
    """

    module: nn.Module
    keep: dict[str, Tensor]
    fit_errors: dict[str, float]
    config: dict[str, dict[str, object]]


def build_student(
    teacher: nn.Module,
    shape: StudentShape,
    mels: Sequence[Tensor],
    say: Callable[[str], None] | None = None,
    refit_layers: bool = True,
) -> Student:
    """Cut an MB-MelGAN student from `teacher` and re-fit it on the mel crops `mels` ((1, L, n_mels) each).

    `refit_layers=False` gives the cut student only (what a resumed run rebuilds before loading its weights).
    """
    from speedy.families.zhtts.mb_melgan import MBMelGAN, MBMelGANConfig
    from speedy.prune.criteria import get_criterion
    from speedy.prune.surgery import groups_for, prune_group

    if not isinstance(teacher, MBMelGAN):
        raise InputError(f"distill: no student space for a {type(teacher).__name__} vocoder")
    n_blocks = len(teacher.cfg.dilations)
    layers = shape.layers or n_blocks
    if layers > n_blocks:
        raise InputError(f"--layers {layers} exceeds the teacher's {n_blocks} residual blocks per stack")
    config: dict[str, dict[str, object]] = {"mb_melgan": {"dilations": list(teacher.cfg.dilations[:layers])}}
    if shape.width >= 1.0 and (shape.inner or 1.0) >= 1.0 and layers == n_blocks:
        full = {g.name: torch.arange(g.units) for g in groups_for("vocoder", teacher)}
        return Student(copy.deepcopy(teacher).eval(), full, {}, config)
    cfg = MBMelGANConfig(**{**teacher.cfg.__dict__, "dilations": teacher.cfg.dilations[:layers]})
    student = MBMelGAN(cfg, fake_quant=teacher.fake_quant)
    state = {k: v for k, v in teacher.state_dict().items() if (_block_index(k) or 0) < layers}
    student.load_state_dict(state, strict=True)
    crit = get_criterion("l1")
    keep: dict[str, Tensor] = {}
    for group in groups_for("vocoder", student):
        current = {g.name: g for g in groups_for("vocoder", student)}[group.name]  # shapes change as we cut
        k = kept_units(current.units, shape.fraction(current.kind), shape.round_to, current.min_units)
        keep[group.name] = torch.arange(current.units)
        if k < current.units:
            keep[group.name] = torch.topk(crit(current, student), k).indices.sort().values
            prune_group(student, current, keep[group.name])
    errors = refit(teacher, student, keep, mels, say) if refit_layers else {}
    return Student(student.eval(), keep, errors, config)


def _block_index(key: str) -> int | None:
    parts = key.split(".")
    return int(parts[2]) if parts[0] == "stacks" else None


def unfold_rows(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """A conv's (already padded) input (B, C, N) -> receptive-field rows (B·N_out, C·k)."""
    k, dil = conv.kernel_size[0], conv.dilation[0]
    cols = torch.nn.functional.unfold(x.unsqueeze(2), (1, k), dilation=(1, dil))  # (B, C·k, N_out)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _capture(model: nn.Module, mels: Sequence[Tensor], paths: Sequence[str], pre: bool) -> dict[str, list[Tensor]]:
    """Run `model` (float sub-band path) on every crop and keep the input (pre=True) or output of each module."""
    store: dict[str, list[Tensor]] = {p: [] for p in paths}
    handles = []
    for p in paths:
        mod = model.get_submodule(p)
        if pre:
            handles.append(mod.register_forward_pre_hook(lambda _m, a, p=p: store[p].append(a[0].detach())))
        else:
            handles.append(mod.register_forward_hook(lambda _m, _a, y, p=p: store[p].append(y.detach())))
    try:
        with torch.no_grad():
            for mel in mels:
                model.subbands(mel)
    finally:
        for h in handles:
            h.remove()
    return store


def _rows(n: int, limit: int) -> Tensor:
    return torch.linspace(0, n - 1, min(n, limit)).round().long()


def _solve(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> tuple[Tensor, float]:
    """Ridge regression with a bias column: rows X (n, d), Y (n, o) -> ((d + 1, o) float64, relative error)."""
    xtx = xty = None
    yy = 0.0
    for x, y in zip(xs, ys):
        x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1).double()
        y = y.double()
        xtx = x.T @ x if xtx is None else xtx + x.T @ x
        xty = x.T @ y if xty is None else xty + x.T @ y
        yy += float((y**2).sum())
    assert xtx is not None and xty is not None, "no calibration rows"
    lam = RIDGE * float(xtx.diagonal().mean())
    sol = torch.linalg.solve(xtx + lam * torch.eye(xtx.shape[0], dtype=xtx.dtype), xty)
    resid = float(torch.einsum("ij,ij->", sol, xtx @ sol)) - 2 * float((sol * xty).sum()) + yy
    return sol, round(max(resid, 0.0) ** 0.5 / max(yy, 1e-12) ** 0.5, 5)


def _flat(y: Tensor, rows: Tensor, channels: Tensor | None = None) -> Tensor:
    """(1, C, N) activations -> (len(rows), C') rows at the sampled positions (optionally some channels)."""
    y = y[0].T[rows]
    return y if channels is None else y[:, channels]


def refit(
    teacher: nn.Module,
    student: nn.Module,
    keep: dict[str, Tensor],
    mels: Sequence[Tensor],
    say: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Re-solve the student's convolutions towards the teacher's activations, in forward order, in place.

    Args:
        keep: {group name: teacher unit indices the student kept} (see `speedy.families.zhtts.pruned.vocoder_groups`).
        mels: calibration crops (1, L, n_mels), L >= the vocoder's minimum.

    Returns:
        {layer path: ‖ΔY‖ / ‖Y‖ of its fit on the calibration rows}.
    """
    n_teacher, n_student = len(teacher.stacks[0]), len(student.stacks[0])
    targets = []
    for s in range(len(student.stacks)):
        for b in range(n_student):
            targets += [f"stacks.{s}.{b}.conv1", f"stacks.{s}.{b}"]
        targets.append(f"stacks.{s}.{n_teacher - 1}")
    ref = _capture(teacher, mels, sorted(set(targets)) + ["post"], pre=False)
    errors: dict[str, float] = {}
    with torch.no_grad():
        for s in range(len(student.stacks)):
            stream = keep[f"stage{s}.stream"]
            for b in range(n_student):
                q = f"stacks.{s}.{b}"
                block = student.get_submodule(q)
                # the dilated conv, towards the teacher's kept inner channels
                ins = _capture(student, mels, [f"{q}.conv1"], pre=True)[f"{q}.conv1"]
                xs, ys = [], []
                for x, y in zip(ins, ref[f"{q}.conv1"]):
                    rows = _rows(y.shape[-1], ROWS_PER_CROP)
                    xs.append(unfold_rows(x, block.conv1)[rows])
                    ys.append(_flat(y, rows, keep[f"{q}.inner"]))
                sol, errors[f"{q}.conv1"] = _solve(xs, ys)
                block.conv1.weight.copy_(sol[:-1].T.reshape(block.conv1.weight.shape).float())
                block.conv1.bias.copy_(sol[-1].float())
                # shortcut + 1×1 conv jointly, towards the block's (or, for a cut stack's last block, the stack's) output
                last = b == n_student - 1
                target = f"stacks.{s}.{n_teacher - 1}" if last else q
                got = _capture(student, mels, [q, f"{q}.conv2"], pre=True)
                xs, ys = [], []
                for x, h, y in zip(got[q], got[f"{q}.conv2"], ref[target]):
                    rows = _rows(y.shape[-1], ROWS_PER_CROP)
                    xs.append(torch.cat([_flat(x, rows), _flat(h, rows)], dim=1))
                    ys.append(_flat(y, rows, stream))
                sol, errors[q] = _solve(xs, ys)
                c = block.shortcut.in_channels
                block.shortcut.weight.copy_(sol[:c].T.reshape(block.shortcut.weight.shape).float())
                block.conv2.weight.copy_(sol[c:-1].T.reshape(block.conv2.weight.shape).float())
                block.shortcut.bias.copy_(sol[-1].float())
                block.conv2.bias.zero_()
                if say is not None:
                    say(f"re-fit {q}: dilated conv {errors[f'{q}.conv1']:.3f}, block {errors[q]:.3f}")
        ins = _capture(student, mels, ["post"], pre=True)["post"]
        xs, ys = [], []
        for x, y in zip(ins, ref["post"]):
            rows = _rows(y.shape[-1], ROWS_PER_CROP)
            xs.append(unfold_rows(x, student.post)[rows])
            ys.append(_flat(y, rows))
        sol, errors["post"] = _solve(xs, ys)
        student.post.weight.copy_(sol[:-1].T.reshape(student.post.weight.shape).float())
        student.post.bias.copy_(sol[-1].float())
    return errors
