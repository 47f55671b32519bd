"""What each model family declares for export: graph inputs, outputs, dynamic axes and tolerances.

Export checks ONNX Runtime against PyTorch with these numbers and fails with a typed error naming the
output and the difference (optimum's pattern of per-architecture export specs with ATOL_FOR_VALIDATION).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: ONNX opset for every export (a module constant so that every artifact says the same).
OPSET = 17


@dataclass(frozen=True)
class OutputCheck:
    """How one output is compared: `max_abs` ≤ tol, `exact` equality, `snr_db` ≥ tol, or `allclose`
    (every element within tol + rtol·|reference|). name "*": every output of the graph."""

    name: str
    kind: str  # "max_abs" | "exact" | "snr_db" | "allclose"
    tol: float = 0.0
    rtol: float = 0.0


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph a family exports, written as the manifest component of the same `name`.

    inputs/outputs: tensor names in graph order; dynamic_axes: {tensor: {axis: name}}; checks: how export
    compares ONNX Runtime with PyTorch on each output. role: "acoustic" or "vocoder", which of a recipe's
    op-type lists and scopes applies to the graph (a host loop's graphs are all "acoustic").
    extra: settings recorded on the component's ``extra`` (session settings such as ``max_threads``).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    checks: tuple[OutputCheck, ...] = ()
    role: str = "acoustic"
    extra: Mapping[str, Any] = field(default_factory=dict)


#: A family's graphs by component: {"acoustic": (GraphSpec, ...), "vocoder": (GraphSpec,)}. A component of one
#: graph of its own name is a single graph; a component of several is assembled by the family's host loop.
Graphs = Mapping[str, tuple[GraphSpec, ...]]


@dataclass(frozen=True)
class LoopCheck:
    """How ``speedy compile`` checks a host-loop family's compiled graphs against its source, through the loop
    (speedy.stages.loop_check): on `text` (held out of calibration), the loop's frame count per symbol must be
    equal (figure output `steps`; `wording` is how the error message names that check), its mel within
    `mel_tol` (max |Δ|) and the vocoder, fed the source's mel, within `snr_db` of the source's."""

    text: str
    steps: str
    wording: str
    mel_tol: float = 1e-3
    snr_db: float = 40.0
