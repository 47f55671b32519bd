"""`speedy serve`: the web page and HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import click

from speedy.commands.common import hidden_alias, ray_option, take_alias


@click.command()
@click.option(
    "--artifact", type=click.Path(), default=None, help="Artifact folder (default: the default voice's ONNX export)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=int, default=8000, show_default=True, help="TCP port to listen on (checked before loading)."
)
@click.option(
    "--workers",
    type=int,
    default=0,
    callback=take_alias,
    help="Synthesis runs at once (default: one per core).",
)
@hidden_alias("--workers-threads", "workers", type=int)
@click.option(
    "--threads-per-worker",
    "threads",
    type=click.IntRange(1, 256),
    default=None,
    callback=take_alias,
    help="ONNX Runtime threads of each worker (default: cores ÷ workers; --ray: 1, and the CPUs reserved per replica).",
)
@hidden_alias("--threads-per-replica", "threads", type=click.IntRange(1, 256))
@click.option(
    "--queue",
    type=int,
    default=16,
    show_default=True,
    help="Requests that may wait; beyond: 503 + Retry-After (--ray: what Serve's router holds for full replicas).",
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Per-request timeout in seconds.")
@click.option(
    "--api-key",
    default=None,
    envvar="SPEEDY_API_KEY",
    help="Require 'Authorization: Bearer KEY' on POST /tts, /tts/stream, /v1/audio/speech and GET /v1/models "
    "(also $SPEEDY_API_KEY); /, /voices, /healthz, /metrics and /docs stay open.",
)
@ray_option("Deploy with Ray Serve")
@click.option(
    "--replicas",
    type=int,
    default=1,
    show_default=True,
    help="--ray: replicas, each holding one Synthesizer (the floor when --max-replicas is set).",
)
@click.option("--max-replicas", type=int, default=None, help="--ray: autoscale between --replicas and this.")
@click.option(
    "--max-ongoing-requests",
    type=int,
    default=4,
    show_default=True,
    help="--ray: requests one replica admits (one running, the rest waiting); more get its 503 + Retry-After.",
)
def serve(
    artifact: str | None,
    host: str,
    port: int,
    workers: int,
    threads: int | None,
    queue: int,
    timeout: float,
    api_key: str | None,
    ray_address: str | None,
    replicas: int,
    max_replicas: int | None,
    max_ongoing_requests: int,
) -> None:
    """Serve the Chinese TTS web page at / and the HTTP API.

    \b
    Routes: POST /tts, POST /tts/stream, POST /v1/audio/speech (OpenAI-compatible), GET /v1/models,
    GET /voices, GET /healthz, GET /metrics (Prometheus), GET /docs (OpenAPI).
    SIGTERM stops accepting connections and drains the requests in flight.
    With --ray the same app runs as a Ray Serve deployment (see README, "Beyond one machine").
    """
    from speedy.serve import ServeSettings, run

    if ray_address is not None:
        from speedy.batch import import_ray
        from speedy.serve.ray_app import RayServeConfig
        from speedy.serve.ray_app import run as run_ray

        import_ray()
        config = RayServeConfig(
            address=None if ray_address == "local" else ray_address,
            replicas=replicas,
            max_replicas=max_replicas,
            max_ongoing_requests=max_ongoing_requests,
            threads=threads or 1,
        )
        run_ray(
            artifact,
            ServeSettings(host=host, port=port, queue=queue, timeout_s=timeout, api_key=api_key or None),
            config,
        )
        return
    run(
        artifact,
        ServeSettings(
            host=host,
            port=port,
            workers=workers,
            threads_per_worker=threads or 0,
            queue=queue,
            timeout_s=timeout,
            api_key=api_key or None,
        ),
    )
