"""What each model family declares for export: graph inputs, outputs, dynamic axes and tolerances.

Export checks ONNX Runtime against PyTorch with these numbers and fails with a typed error naming the
output and the difference (optimum's pattern of per-architecture export specs with ATOL_FOR_VALIDATION).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: ONNX opset for every export (a module constant so that every artifact says the same).
OPSET = 17


@dataclass(frozen=True)
class OutputCheck:
    """How one output is compared: `max_abs` ≤ tol, `exact` equality, or `snr_db` ≥ tol."""

    name: str
    kind: str  # "max_abs" | "exact" | "snr_db"
    tol: float = 0.0


@dataclass(frozen=True)
class ComponentSpec:
    """Graph contract of one component: tensor names, dynamic axes ({tensor: {axis: name}}), checks."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]
    checks: tuple[OutputCheck, ...]


@dataclass(frozen=True)
class GraphSpec:
    """A single-graph family's export contract for its acoustic model and vocoder (what parity checks)."""

    family: str
    acoustic: ComponentSpec
    vocoder: ComponentSpec
    notes: dict[str, str] = field(default_factory=dict)

    def component(self, name: str) -> ComponentSpec:
        return {"acoustic": self.acoustic, "vocoder": self.vocoder}[name]
