"""`speedy serve --ray`: the same FastAPI app (speedy.serve.app.create_app) as a Ray Serve ingress deployment.

Each replica loads one Synthesizer in its constructor and builds the app around it at replica start
(`__serve_build_asgi_app__`), so routes, limits and error bodies are those of `speedy serve`. Admission
moves to Ray Serve: a replica takes at most `max_ongoing_requests` requests (run one at a time on its
`threads` cores, the rest waiting in the app's own queue), Serve queues up to `queue` more, and beyond
that the proxy answers 503.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, replace
from typing import Any

from speedy.errors import InputError
from speedy.serve.settings import ServeSettings

_LOGGER = logging.getLogger(__name__)


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

    def deployment_options(self, queue: int) -> dict[str, Any]:
        """Keyword arguments of `serve.deployment(...)`."""
        opts: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "max_queued_requests": queue,
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
    """The app settings inside one replica: one synthesis at a time on `threads` cores, and room in the app's
    queue for every request Serve lets in (so the replica itself never answers 503)."""
    return replace(settings, workers=1, threads_per_worker=config.threads, queue=config.max_ongoing_requests)


def build_app(artifact: str | None, settings: ServeSettings, config: RayServeConfig) -> Any:
    """The bound Ray Serve application (what `serve.run` takes)."""
    from ray import serve

    inner = replica_settings(settings, config)

    class SpeedyIngress:
        """One replica: a Synthesizer loaded once, the FastAPI app built around it."""

        def __init__(self, artifact: str | None, settings: ServeSettings) -> None:
            from speedy.batch import run_setup_hook
            from speedy.synth import Synthesizer

            run_setup_hook()  # $SPEEDY_BATCH_SETUP: plug-in families (replicas are fresh interpreters)
            self.settings = settings
            self.synthesizer = Synthesizer.load(artifact, threads=settings.threads_per_worker)

        def __serve_build_asgi_app__(self) -> Any:
            from speedy.serve.app import create_app

            return create_app(self.synthesizer, self.settings)

    deployment = serve.deployment(name="speedy", **config.deployment_options(settings.queue))(
        serve.ingress()(SpeedyIngress)
    )
    return deployment.bind(artifact, inner)


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
