"""What each model family declares for export: graph inputs, outputs, dynamic axes and tolerances.

Export checks ONNX Runtime against PyTorch with these numbers and fails with a typed error naming the
output and the difference (optimum's pattern of per-architecture export specs with ATOL_FOR_VALIDATION).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    def settings(self) -> dict[str, Any]:
        """`extra` as plain dicts, ready for a manifest component (the declaration holds read-only mappings)."""
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in self.extra.items()}

    def axes_json(self) -> dict[str, dict[str, str]]:
        """`dynamic_axes` as a manifest component records them (axis numbers as strings)."""
        return {k: {str(a): n for a, n in v.items()} for k, v in self.dynamic_axes.items()}


#: A family's graphs by component: {"acoustic": (GraphSpec, ...), "vocoder": (GraphSpec,)}. A component of one
#: graph of its own name is a single graph; a component of several is assembled by the family's host loop.
Graphs = Mapping[str, tuple[GraphSpec, ...]]

#: JSON has no infinity: the SNR of bit-identical outputs is recorded as this stand-in, with a note.
IDENTICAL_SNR_DB = 999.0


def flat(graphs: Graphs) -> dict[str, GraphSpec]:
    """Every graph of every component by name, in declaration order (acoustic first)."""
    return {g.name: g for component in graphs.values() for g in component}


def snr_value(snr: float) -> dict[str, Any]:
    """The ``value`` of an SNR parity figure (dB), with the stand-in and its note when the outputs are identical."""
    if snr == float("inf"):
        return {"value": IDENTICAL_SNR_DB, "note": "bit-identical outputs"}
    return {"value": snr}


@dataclass(frozen=True)
class ExportPlan:
    """What a family's ``export_plan`` hook hands the export stage (speedy.stages.export), which writes every
    declared graph, checks it and writes the manifest. Built with torch on the family's side.

    manifest:  (components) -> the artifact's manifest holding them (family, source, audio, frontend, controls,
               extra, and any lineage before export; the stage adds the export step and the parity figures).
    modules:   graph name -> torch module whose ``forward`` takes the graph's inputs in order.
    trace:     graph name -> example inputs (torch tensors, in input order) the exporter traces with.
    checks:    graph name -> [(inputs, PyTorch outputs)] as numpy arrays, compared by the graph's `checks`.
    step:      the export step's lineage parameters.
    metadata:  graph name -> entries written into the ONNX file's ``metadata_props``.
    component_extra: graph name -> entries of the component's ``extra`` beyond opset, role and the GraphSpec's.
    figures:   parity figures the family measured before export (e.g. its module against a shipped TorchScript).
    loop_check: (manifest, the exported host loop's acoustic runner) -> parity figures against the PyTorch reference;
               raises speedy.errors.ModelError beyond tolerance. None for single-graph families.
    roles:     whether components record their graph's role (host-loop families: which recipe lists apply).
    """

    manifest: Callable[[Mapping[str, Any]], Any]
    modules: Mapping[str, Any]
    trace: Mapping[str, tuple[Any, ...]]
    checks: Mapping[str, Sequence[tuple[tuple[Any, ...], tuple[Any, ...]]]]
    opset: int = OPSET
    step: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    component_extra: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    figures: tuple[Mapping[str, Any], ...] = ()
    loop_check: Callable[[Any, Any], list[dict[str, Any]]] | None = None
    roles: bool = False


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


@dataclass(frozen=True)
class GraphQuant:
    """How ``speedy quantize`` makes a host-loop family's graphs INT8, one graph at a time
    (speedy.stages.int8_graphs). Plain data; graph names are the family's GraphSpec names.

    recipes:        the INT8 recipes the family takes; `hint`: the end of the one-line refusal of the others
                    ("use int8-dynamic or fp16").
    Which op types a graph gets: the family's own policy when `op_types` is set, else the recipe's list for
    the graph's role, less:
    float_graphs:   graphs always copied float (and listed as such in the report).
    float_ops:      graph -> op types never quantized in it.
    scoped_graphs:  when the recipe scopes the acoustic component (node-name prefixes written for a one-graph
                    model), INT8 is restricted to these acoustic graphs instead.
    vocoder_scopes: node-name prefixes the vocoder's INT8 is restricted to when the recipe scopes the vocoder.
    op_types:       the family's own policy: graph -> op types, quantized dynamically whatever the recipe's
                    lists and scopes say, in `default_graphs` (or in the graphs a caller names).
    per_channel:    weight scales per output channel (True) or per tensor (False); None: the recipe's.
    conv_gemm:      graphs whose convolutions are rewritten as unfold + MatMul (speedy.stages.conv_gemm) before
                    dynamic INT8 of their MatMuls (only those); their components record ``conv_gemm``.
    Static INT8 records each graph's inputs from the FP32 host loop over the calibration text:
    step_rates:     step graph -> its calls per symbol (≈); of those, about `calib_steps` per sentence are kept.
    calib_emotions: emotion names cycled over the calibration sentences, those the voice has (none: default).
    check_text:     the sentence on which the report measures the INT8 loop against FP32 (None: no such report).
    """

    recipes: tuple[str, ...]
    hint: str
    float_graphs: tuple[str, ...] = ()
    float_ops: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    scoped_graphs: tuple[str, ...] = ()
    vocoder_scopes: tuple[str, ...] = ()
    op_types: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    default_graphs: tuple[str, ...] = ()
    per_channel: bool | None = None
    conv_gemm: tuple[str, ...] = ()
    step_rates: Mapping[str, int] = field(default_factory=dict)
    calib_steps: int = 24
    calib_emotions: tuple[str, ...] = ()
    check_text: str | None = None
