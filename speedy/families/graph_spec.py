"""What each model family declares for export: graph inputs, outputs, dynamic axes and tolerances.

Export checks ONNX Runtime against PyTorch with these numbers and fails with a typed error naming the
output and the difference (optimum's pattern of per-architecture export specs with ATOL_FOR_VALIDATION).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    """A single-graph family's export contract for its acoustic model and vocoder (what parity checks);
    a vocoder-only family has no acoustic contract."""

    family: str
    acoustic: ComponentSpec | None
    vocoder: ComponentSpec
    notes: dict[str, str] = field(default_factory=dict)

    def component(self, name: str) -> ComponentSpec:
        spec = {"acoustic": self.acoustic, "vocoder": self.vocoder}[name]
        if spec is None:
            from speedy.errors import ModelError

            raise ModelError(f"model family {self.family!r} has no {name} component")
        return spec


def loop_figures(
    steps_output: str, steps_equal: bool, mel_diff: float, mel_tol: float, snr: float, snr_tol: float, enforced: bool
) -> list[dict[str, Any]]:
    """Parity figures of a compiled host-loop family against its source, in the manifest's format: the loop's
    frame count per symbol (`steps_output`: "durations" or "stop_step", exact), the mel (max |Δ|) and the
    vocoder fed the source's mel (SNR, dB)."""
    loop = "acoustic-loop"
    return [
        {
            "component": loop,
            "output": steps_output,
            "kind": "exact",
            "value": 0.0 if steps_equal else 1.0,
            "tol": 0.0,
            "enforced": enforced,
        },
        {
            "component": loop,
            "output": "mel",
            "kind": "max_abs",
            "value": mel_diff,
            "tol": mel_tol,
            "enforced": enforced,
        },
        {"component": "vocoder", "output": "wav", "kind": "snr_db", "value": snr, "tol": snr_tol, "enforced": enforced},
    ]
