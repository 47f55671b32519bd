"""Model families: one :class:`FamilySpec` per family, registered once.

Stages, the runtime, bench and serve look a manifest's family up here instead of branching on family
names or on ``extra["graphs"]``. A spec names its hooks as ``"module:function"`` strings that are
imported only when called, so this module imports neither torch nor any family's code: the torch-free
runtime reads it too.

Adding a family: a package ``speedy/families/<name>/`` whose ``__init__`` defines ``SPEC`` (no heavy
imports there), plus its name in :data:`_PACKAGES`. The spec declares the family's graphs as a component list
(speedy.families.graph_spec) and an ``export_plan`` hook; the stages do the rest (export, per-graph INT8,
compile and its checks), so a family imports nothing above it: no stages, no runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from speedy.errors import ModelError
from speedy.families.graph_spec import GraphQuant, Graphs, GraphSpec, LoopCheck, flat

#: Packages under speedy.families whose ``SPEC`` is a registered family (one line per family).
_PACKAGES: tuple[str, ...] = ("zhtts", "sambert", "ttskit", "hifigan")


@dataclass(frozen=True)
class PruneMap:
    """What ``speedy prune`` needs of a family (plain data and hooks into the family's own package).

    modules:  component -> class name of the torch module whose groups prune knows (the "module map":
              prune takes a module of that class for that component, and refuses any other).
    groups:   component -> "module:function" (nn.Module) -> list of `speedy.families.surgery.PruneGroup`,
              in module order.
    kinds:    component -> group kinds cut when none are chosen.
    hidden:   component -> module-list attributes whose layers' outputs recovery distils one by one.
    family:   the manifest ``family`` value of a pruned artifact (a `torch_loaders` key of the same spec).
    files:    component -> weights file of a pruned artifact.
    """

    modules: Mapping[str, str]
    groups: Mapping[str, str]
    kinds: Mapping[str, tuple[str, ...]]
    family: str
    files: Mapping[str, str]
    hidden: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TfliteBaseline:
    """A family's original TFLite graphs, run as a ``speedy bench --baseline NAME`` row (speedy.bench.baseline).

    graphs:   component -> file of the runnable graph in the baseline's cache folder.
    files:    other files `build` writes there (the symbol table); all are checked before a cached folder is used.
    build:    "module:function" (folder, schema, source_wheel=None) -> dict for variant.json (its
              ``original_bytes``: component -> size of the graph as shipped): writes `graphs` and `files`
              into `folder` (schema: ai_edge_litert's flatbuffer schema module).
    key:      "module:function" () -> (cache folder name, source sha256) of the built folder.
    manifest: "module:function" (folder) -> in-memory Manifest (family, audio, frontend and its symbols).
    inputs:   the acoustic graph's named inputs: ids first, then speaker ids (fed 0) and ratios (fed 1); any
              other input is a dropout mask of (1, T, mask_width), fed ones.
    outputs:  the acoustic graph's (mel, per-token durations) output names.
    version:  bump when `build` changes: a cached folder of another version is rebuilt.
    precision, lineage: what the bench row prints in place of an artifact's precision and lineage.
    """

    graphs: Mapping[str, str]
    files: tuple[str, ...]
    build: str
    key: str
    manifest: str
    inputs: tuple[str, ...]
    outputs: tuple[str, str]
    mask_width: int
    version: int
    precision: str
    lineage: tuple[str, ...]


@dataclass(frozen=True)
class FamilySpec:
    """What the rest of the code needs to know about one model family.

    name:        the built-in name (``speedy export NAME``) and the family's key here.
    families:    manifest ``family`` values this spec handles (a pruned variant is the same family).
    frontends:   manifest frontend name -> module with ``text_to_utterances`` (and optional ``encoder``).
    builtin:     True when the family's weights ship in a package (``speedy export NAME``).
    export_plan: "module:function" (source: Path | None, config, say, **options) -> ExportPlan
                 (speedy.families.graph_spec): the family's torch modules, example inputs and PyTorch outputs for
                 the export stage; `source` is a torch artifact or model folder, None for the built-in weights.
    from_folder: the kind of foreign model folder the family exports from (``--from-modelscope``), if any.
    default:     True for the one family whose built-in source is the default voice (what ``synth`` loads and
                 ``export``, ``trace``, ``prune`` and ``analyze`` take when given no source).
    torch_artifact: "module:function" (progress=None) -> Path of the family's torch artifact built from its
                 built-in source (the default family's is what those stages read when given no source).
    torch_loaders: manifest family -> "module:function" folder -> (acoustic nn.Module, vocoder nn.Module,
                 config dict), eval mode, CPU (what export, prune and the torch backends load).
    graphs:      component -> its ONNX graphs (speedy.families.graph_spec.GraphSpec, plain data): what export
                 writes and checks, quantize and compile iterate over, and the runtime opens. A component of one
                 graph of its own name is a single graph; a component of several is assembled by `compose`.
    compose:     "module:function" (manifest, graphs: {graph name: opened session}) -> the runner of the
                 ``acoustic`` component assembled from its graphs (the host loop); None when every component
                 is one graph. The runtime opens the sessions, so the family's loop imports no runtime.
    fp16_max_level: the highest ONNX Runtime optimisation level the host loop's FP16 graphs are opened at.
    int8:        how quantize makes a host-loop family's graphs INT8, one by one (GraphQuant, plain data, read
                 by speedy.stages.int8_graphs); None: the one-graph path.
    loop_check:  how compile checks a host-loop family's compiled graphs through the loop (LoopCheck: text,
                 tolerances); compile refuses host-loop families without one.
    native_emotions: "module:function" name -> bool: emotion names the model embeds natively.
    reference:   "module:function" () -> (folder, fresh): where the family's FP32 ONNX export of its built-in
                 weights is cached and whether that copy is current (torch-free); speedy.stages.export
                 .reference_artifact exports it when not. What ``speedy bench`` compares a row of this family with
                 by default, and the default family's is the default voice ``synth`` loads.
    students:    component -> "module:function" (teacher, StudentShape, calibration mels, say) ->
                 speedy.distill.student.Student: the family's student space for ``speedy distill`` (a
                 component without one: distill refuses it in one line).
    analysis:    "module:function" (audio (samples,), manifest) -> mel (frames, n_mels): a vocoder-only
                 family's torch-free mel analysis, for copy synthesis of a recording.
    prune:       the family's `PruneMap` (prunable modules, groups, pruned variant); None: prune refuses it.
    durations:   frontends (manifest names, keys of `frontends`) whose acoustic runner returns per-token
                 durations over the phone ids of that frontend's utterances: per-component fidelity
                 (speedy.fidelity) imposes them; other frontends are not supported there.
    baselines:   baseline name -> `TfliteBaseline`: the family's original graphs as a bench row.
    """

    name: str
    families: tuple[str, ...]
    frontends: Mapping[str, str]
    builtin: bool = False
    export_plan: str | None = None
    from_folder: str | None = None
    default: bool = False
    torch_artifact: str | None = None
    torch_loaders: Mapping[str, str] = field(default_factory=dict)
    graphs: Graphs = field(default_factory=dict)
    compose: str | None = None
    fp16_max_level: str | None = None
    int8: GraphQuant | None = None
    loop_check: LoopCheck | None = None
    native_emotions: str | None = None
    reference: str | None = None
    students: Mapping[str, str] = field(default_factory=dict)
    analysis: str | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    prune: PruneMap | None = None
    durations: tuple[str, ...] = ()
    baselines: Mapping[str, TfliteBaseline] = field(default_factory=dict)

    @property
    def multi_graph(self) -> bool:
        """True when the acoustic model is a host loop over several graphs (compile/auto refuse it)."""
        return self.compose is not None

    def graph_names(self, component: str) -> tuple[str, ...]:
        """The names of `component`'s graphs (manifest components), in loop order."""
        return tuple(g.name for g in self.graphs.get(component, ()))

    def all_graphs(self) -> tuple[GraphSpec, ...]:
        """Every graph of every component, acoustic first."""
        return tuple(flat(self.graphs).values())

    def component(self, name: str) -> GraphSpec:
        """The one graph of single-graph component `name`; ModelError when the family has no such component."""
        graphs = self.graphs.get(name, ())
        if len(graphs) != 1:
            raise ModelError(f"model family {self.name!r} has no {name} component")
        return graphs[0]

    def hook(self, attr: str) -> Any:
        """The object a hook string names, imported now; ModelError when the family has no such hook."""
        target = getattr(self, attr)
        if not target:
            raise ModelError(f"model family {self.name!r} has no {attr} hook")
        return resolve(target)

    def graph_spec(self, stage: str) -> FamilySpec:
        """This spec, for a stage that runs single-graph components only; ModelError naming `stage` for
        host-loop families (and for a family that declares no graphs)."""
        if self.multi_graph or not self.graphs:
            raise ModelError(
                f"{stage}: {self.name} artifacts are multi-graph (the acoustic model is a host loop); "
                f"{stage} supports single-graph families only "
                f"({', '.join(s.name for s in specs() if s.graphs and not s.multi_graph)}): use its ONNX "
                "artifact as it is"
            )
        return self


def resolve(target: str) -> Any:
    """Import ``"module:attr"`` and return the attribute."""
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


_REGISTRY: dict[str, FamilySpec] = {}


def specs() -> tuple[FamilySpec, ...]:
    """Every registered family, in registration order."""
    if not _REGISTRY:
        for package in _PACKAGES:
            spec = importlib.import_module(f"speedy.families.{package}").SPEC
            if spec.name in _REGISTRY:
                raise ModelError(f"model family {spec.name!r} is registered twice")
            _REGISTRY[spec.name] = spec
    return tuple(_REGISTRY.values())


@contextmanager
def registered(spec: FamilySpec) -> Iterator[FamilySpec]:
    """Register `spec` for the duration of a ``with`` block (a plug-in family, or a test's toy family)."""
    specs()
    if spec.name in _REGISTRY:
        raise ModelError(f"model family {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    try:
        yield spec
    finally:
        _REGISTRY.pop(spec.name, None)


def names() -> tuple[str, ...]:
    """Every registered family's name."""
    return tuple(s.name for s in specs())


def builtin_names() -> tuple[str, ...]:
    """Families whose weights ship in a package (what ``speedy export NAME`` takes)."""
    return tuple(s.name for s in specs() if s.builtin)


def by_name(name: str) -> FamilySpec:
    """The spec registered as `name`; ModelError listing the known names."""
    for spec in specs():
        if spec.name == name:
            return spec
    raise ModelError(f"unknown model family {name!r}; known: {', '.join(names())}")


def default_family() -> FamilySpec:
    """The one family flagged ``default``: its built-in source is the default voice."""
    flagged = [s for s in specs() if s.default]
    if len(flagged) != 1:
        raise ModelError(
            f"exactly one model family must be flagged default, found {len(flagged)}: "
            f"{', '.join(s.name for s in flagged) or 'none'}"
        )
    return flagged[0]


def lookup(family: str) -> FamilySpec | None:
    """The spec that handles a manifest's ``family`` value, or None (e.g. a test's toy family)."""
    for spec in specs():
        if family in spec.families:
            return spec
    return None


def for_family(family: str) -> FamilySpec:
    """The spec that handles a manifest's ``family`` value; ModelError listing the known ones."""
    spec = lookup(family)
    if spec is not None:
        return spec
    known = ", ".join(f for s in specs() for f in s.families)
    raise ModelError(f"unknown model family {family!r} in manifest (known: {known})")


def multi_graph(manifest: Any) -> bool:
    """True when the manifest's family runs its acoustic model as a host loop over several graphs."""
    spec = lookup(manifest.family)
    return spec is not None and spec.multi_graph


def prune_map(family: str, stage: str = "prune") -> PruneMap:
    """The prune map of a manifest's ``family`` value; InputError "`stage`: not supported for FAMILY" (one
    line, exit 2) when its family declares none."""
    from speedy.errors import InputError

    spec = lookup(family)
    if spec is None or spec.prune is None:
        known = ", ".join(s.name for s in specs() if s.prune is not None) or "none"
        raise InputError(f"{stage}: not supported for {spec.name if spec else family} (supported: {known})")
    return spec.prune


def torch_loader(family: str) -> Any:
    """The torch loader of a manifest family value; ModelError when it has none."""
    spec = for_family(family)
    target = spec.torch_loaders.get(family)
    if target is None:
        raise ModelError(f"model family {family!r} has no torch modules to load")
    return resolve(target)


def frontend_module(frontend: str) -> str:
    """The module implementing a manifest's frontend name; ModelError when no family provides it."""
    for spec in specs():
        if frontend in spec.frontends:
            return spec.frontends[frontend]
    raise ModelError(f"unknown frontend {frontend!r} in manifest")


def frontend_encoder(manifest: Any) -> Any:
    """The encoder a host-loop family's frontend binds to `manifest` (``text_to_utterances``,
    ``encode(utt, options)``, ``emotions``); ModelError when the manifest's frontend has none."""
    module = importlib.import_module(frontend_module(manifest.frontend.name))
    if not hasattr(module, "encoder"):
        raise ModelError(f"frontend {manifest.frontend.name!r} has no encoder (a single-graph family's frontend)")
    return module.encoder(manifest)


def is_native_emotion(name: str | None) -> bool:
    """True when some family embeds emotion `name` natively (its controls then map it to an id)."""
    return any(spec.hook("native_emotions")(name) for spec in specs() if spec.native_emotions)


_V = TypeVar("_V")


def frozen(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    """A read-only mapping for FamilySpec fields (frozen dataclasses should not hold mutable dicts)."""
    return MappingProxyType(dict(mapping))
