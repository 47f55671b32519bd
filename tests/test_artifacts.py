"""The manifest contract and atomic artifact folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speedy.artifacts import (FORMAT_VERSION, Audio, Component, Controls, Frontend, Manifest, Source, atomic_artifact,
                              read_manifest, sha256_file, write_manifest)
from speedy.errors import InputError, ModelError, OutputError


def _manifest(folder: Path) -> Manifest:
    comps = {}
    for name in ("acoustic", "vocoder"):
        f = folder / f"{name}.onnx"
        f.write_bytes(os.urandom(64))
        comps[name] = Component(file=f.name, format="onnx", precision="fp32", inputs=("x",), outputs=("y",),
                                sha256=sha256_file(f))
    return Manifest(family="toy", source=Source("test", "here", "0" * 64), components=comps,
                    audio=Audio(24000, 300, 80, "none"), frontend=Frontend("baker-pinyin", ("pad", "sil")),
                    controls=Controls(("speed",), {"kind": "preset", "names": {}}))


def test_roundtrip(tmp_path: Path) -> None:
    """A written manifest reads back equal, checksums verified."""
    out = tmp_path / "a"
    with atomic_artifact(out) as staging:
        m = _manifest(staging)
        write_manifest(staging, m)
    assert read_manifest(out) == m


def test_tampered_file_is_rejected(tmp_path: Path) -> None:
    """Changing a model file after it was written fails the checksum with exit code 3."""
    out = tmp_path / "a"
    with atomic_artifact(out) as staging:
        write_manifest(staging, _manifest(staging))
    (out / "vocoder.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="checksum mismatch for vocoder.onnx") as e:
        read_manifest(out)
    assert e.value.exit_code == 3


def test_newer_format_version_is_rejected(tmp_path: Path) -> None:
    """A manifest from a newer format version says to upgrade."""
    out = tmp_path / "a"
    with atomic_artifact(out) as staging:
        write_manifest(staging, _manifest(staging))
    data = json.loads((out / "manifest.json").read_text())
    data["format_version"] = FORMAT_VERSION + 1
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="newer"):
        read_manifest(out)


@pytest.mark.parametrize("content, match", [(None, "no manifest.json"), ("{not json", "not valid JSON"),
                                            ('{"format_version": 1}', "missing key")])
def test_bad_folders(tmp_path: Path, content: str | None, match: str) -> None:
    """Folders without a usable manifest name the problem."""
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ModelError, match=match):
        read_manifest(tmp_path)


def test_existing_target_needs_force(tmp_path: Path) -> None:
    """An existing target is refused before any work unless force is given; force replaces it."""
    out = tmp_path / "a"
    out.mkdir()
    with pytest.raises(InputError, match="--force"):
        with atomic_artifact(out):
            pass
    with atomic_artifact(out, force=True) as staging:
        write_manifest(staging, _manifest(staging))
    assert read_manifest(out).family == "toy"


def test_failure_leaves_nothing(tmp_path: Path) -> None:
    """An exception inside the stage leaves neither the target nor a staging folder."""
    out = tmp_path / "a"
    with pytest.raises(RuntimeError):
        with atomic_artifact(out) as staging:
            (staging / "acoustic.onnx").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_missing_parent_is_created(tmp_path: Path) -> None:
    """A target whose parent folders do not exist gets them (mkdir -p), and the artifact lands there."""
    target = tmp_path / "nope" / "deeper" / "a"
    with atomic_artifact(target) as staging:
        write_manifest(staging, _manifest(staging))
    assert (target / "manifest.json").is_file()


def test_parent_under_a_file_is_output_error(tmp_path: Path) -> None:
    """A target whose parent is a file (cannot be created) is exit code 4."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        with atomic_artifact(tmp_path / "afile" / "a"):
            pass


def test_killed_stage_leaves_no_valid_folder(tmp_path: Path) -> None:
    """A stage killed with SIGKILL mid-write leaves nothing that read_manifest accepts."""
    script = textwrap.dedent(f"""
        import time, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_artifacts import _manifest
        from speedy.artifacts import atomic_artifact, write_manifest
        with atomic_artifact(Path({str(tmp_path / 'a')!r})) as staging:
            m = _manifest(staging)
            print("ready", flush=True)
            time.sleep(30)
            write_manifest(staging, m)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "a").exists()
    for leftover in tmp_path.iterdir():  # the staging folder may remain, but is never a valid artifact
        with pytest.raises(ModelError):
            read_manifest(leftover)


def test_default_voice(tmp_path: Path) -> None:
    """The default voice is extra["default_voice"] when it names a voice (ttskit: Aiyue), else the first voice."""
    from dataclasses import replace

    m = _manifest(tmp_path)
    assert m.default_voice == m.controls.voices[0]
    many = replace(m, controls=replace(m.controls, voices=("Aimei", "Aiyue")))
    assert many.default_voice == "Aimei"
    assert replace(many, extra={"default_voice": "Aiyue"}).default_voice == "Aiyue"
    assert replace(many, extra={"default_voice": "nobody"}).default_voice == "Aimei"
