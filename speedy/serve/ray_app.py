"""`speedy serve --ray`: the same FastAPI app (speedy.serve.app.create_app) as a Ray Serve ingress deployment.

Each replica loads one Synthesizer in its constructor and builds the app around it at replica start
(`__serve_build_asgi_app__`), so routes, limits and error bodies are those of `speedy serve`, and so is
admission: each replica's app admits `max_ongoing_requests` syntheses (one running on its `threads`
cores, the rest in its queue) and answers the next with its own 503 + Retry-After. Serve lets
ADMISSION_SLACK more requests than that into a replica, so the excess reaches the app (and is refused
there at once) and the quick routes (/healthz, /voices, /metrics) never wait behind synthesis; Serve's
router holds up to `queue` requests while every replica is at that bound, and beyond that its proxy
answers 503 with Retry-After: 1 too (with Ray's plain-text body: only under a flood of more
simultaneous arrivals than every replica can take at once plus `queue`; see `router_queue`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from speedy.errors import InputError
from speedy.serve.settings import ServeSettings

_LOGGER = logging.getLogger(__name__)
#: requests Serve may send a replica beyond the syntheses its app admits (refused by the app with its 503)
ADMISSION_SLACK = 8


@dataclass(frozen=True)
class RayServeConfig:
    """How the deployment scales. replicas: fixed count, or the autoscaling floor when max_replicas is set
    (then Serve keeps about `target_ongoing_requests` per replica between replicas and max_replicas)."""

    address: str | None = None  # None = a local Ray; else e.g. ray://head:10001 or "auto"
    replicas: int = 1
    max_replicas: int | None = None
    max_ongoing_requests: int = 4
    threads: int = 1  # ONNX Runtime threads and CPUs reserved per replica

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 1024:
            raise InputError(f"--replicas must be in [1, 1024], got {self.replicas}")
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise InputError(f"--max-replicas ({self.max_replicas}) must be ≥ --replicas ({self.replicas})")
        if not 1 <= self.max_ongoing_requests <= 1000:
            raise InputError(f"--max-ongoing-requests must be in [1, 1000], got {self.max_ongoing_requests}")

    def router_queue(self, queue: int) -> int:
        """Serve's `max_queued_requests`: the `queue` requests held while every replica is full, plus a
        burst as large as all replicas (at most) take at once, K + ADMISSION_SLACK each.

        Serve counts a request as queued from its arrival at the router until a replica is chosen, full
        or not (ray/serve/_private/router.py, wrap_queued_request; ray-project/ray#54542 documents that it
        may refuse more than needed), so a bound of `queue` alone made the proxy refuse simultaneous
        arrivals at an idle replica: with queue 1, 75 of 400 requests sent two at a time got Ray's 503."""
        return queue + (self.max_replicas or self.replicas) * (self.max_ongoing_requests + ADMISSION_SLACK)

    def deployment_options(self, queue: int) -> dict[str, Any]:
        """Keyword arguments of `serve.deployment(...)`; `queue`: requests Serve's router holds for full
        replicas (router_queue)."""
        opts: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests + ADMISSION_SLACK,
            "max_queued_requests": self.router_queue(queue),
            "backpressure_config": {"status_code": 503, "retry_after_s": 1},
            "ray_actor_options": {"num_cpus": self.threads},
        }
        if self.max_replicas is None:
            opts["num_replicas"] = self.replicas
        else:
            opts["autoscaling_config"] = {
                "min_replicas": self.replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": max(1, self.max_ongoing_requests // 2),
                "upscale_delay_s": 10,
                "downscale_delay_s": 120,
            }
        return opts


def replica_settings(settings: ServeSettings, config: RayServeConfig) -> ServeSettings:
    """The app settings inside one replica: one synthesis at a time on `threads` cores and
    `max_ongoing_requests - 1` waiting; the app answers any further request 503 + Retry-After itself."""
    return replace(settings, workers=1, threads_per_worker=config.threads, queue=config.max_ongoing_requests - 1)


def build_app(
    artifact: str | None,
    settings: ServeSettings,
    config: RayServeConfig,
    loader: Callable[[], Any] | None = None,
) -> Any:
    """The bound Ray Serve application (what `serve.run` takes). `loader` (picklable, run once in each
    replica) returns the synthesizer; default: `Synthesizer.load(artifact, threads)`."""
    from ray import serve

    inner = replica_settings(settings, config)

    class SpeedyIngress:
        """One replica: a Synthesizer loaded once, the FastAPI app built around it."""

        def __init__(self, artifact: str | None, settings: ServeSettings, loader: Callable[[], Any] | None) -> None:
            from speedy.batch import run_setup_hook

            run_setup_hook()  # $SPEEDY_BATCH_SETUP: plug-in families (replicas are fresh interpreters)
            self.settings = settings
            if loader is None:
                from speedy.synth import Synthesizer

                self.synthesizer = Synthesizer.load(artifact, threads=settings.threads_per_worker)
            else:
                self.synthesizer = loader()

        def __serve_build_asgi_app__(self) -> Any:
            from speedy.serve.app import create_app

            return create_app(self.synthesizer, self.settings)

    deployment = serve.deployment(name="speedy", **config.deployment_options(settings.queue))(
        serve.ingress()(SpeedyIngress)
    )
    return deployment.bind(artifact, inner, loader)


def start(artifact: str | None, settings: ServeSettings, config: RayServeConfig) -> Any:
    """Connect to (or start) Ray, start Serve's HTTP proxy on settings.host:port and deploy; returns `serve`."""
    from speedy.batch import import_ray

    ray = import_ray()
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=config.address, include_dashboard=False, logging_level="WARNING")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app(artifact, settings, config), name="speedy", route_prefix="/")
    return serve


def run(artifact: str | None, settings: ServeSettings, config: RayServeConfig) -> None:
    """Deploy, then wait for SIGTERM/SIGINT and shut the deployment down (Serve drains the replicas)."""
    serve = start(artifact, settings, config)
    _LOGGER.info(
        "serving on http://%s:%d with Ray Serve (%s)",
        settings.host,
        settings.port,
        config.deployment_options(settings.queue),
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
