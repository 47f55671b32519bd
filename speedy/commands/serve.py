"""`speedy serve`: the web page and HTTP API (FastAPI + uvicorn)."""

from __future__ import annotations

import click


@click.command()
@click.option("--artifact", type=click.Path(), default=None, help="Artifact folder (default: the default voice's ONNX export).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers-threads", "workers", type=int, default=0,
              help="Synthesis runs at once (default: one per core; each gets cores/N ONNX Runtime threads).")
@click.option("--queue", type=int, default=16, show_default=True, help="Requests that may wait; beyond: 503 + Retry-After.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Per-request timeout in seconds.")
@click.option("--api-key", default=None, envvar="SPEEDY_API_KEY",
              help="Require 'Authorization: Bearer KEY' on the API routes (also $SPEEDY_API_KEY).")
def serve(artifact: str | None, host: str, port: int, workers: int, queue: int, timeout: float,
          api_key: str | None) -> None:
    """Serve the Chinese TTS web page at / and the HTTP API.

    \b
    Routes: POST /tts, POST /tts/stream, POST /v1/audio/speech (OpenAI-compatible), GET /v1/models,
    GET /voices, GET /healthz, GET /metrics (Prometheus), GET /docs (OpenAPI).
    SIGTERM stops accepting connections and drains the requests in flight.
    """
    from speedy.serve import ServeSettings, run

    run(artifact, ServeSettings(host=host, port=port, workers=workers, queue=queue, timeout_s=timeout,
                                api_key=api_key or None))
