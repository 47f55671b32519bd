"""The FastAPI app: page, native API, OpenAI-compatible speech API, health and metrics.

create_app assembles the app from its routers (speedy.serve.routes_page, speedy.serve.routes_tts) around
one ServeState (speedy.serve.state). Bad requests are 4xx with `{"error": {"message", "field", "type"}}`
(speedy.serve.http); no route answers a client's mistake with a 5xx or a traceback. Synthesis runs in a
bounded pool (speedy.serve.workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from speedy.errors import InputError
from speedy.runtime import malloc
from speedy.serve import routes_page, routes_tts
from speedy.serve.http import ApiError, BodyLimit, SynthesisStream, bad_json_message, error_response
from speedy.serve.metrics import Metrics
from speedy.serve.routes_tts import OPENAI_VOICES
from speedy.serve.settings import ServeSettings
from speedy.serve.state import ServeState
from speedy.serve.workers import SynthesisPool

__all__ = ["OPENAI_VOICES", "ApiError", "BodyLimit", "SynthesisStream", "create_app", "run"]

_LOGGER = logging.getLogger(__name__)


def create_app(synthesizer: Any, settings: ServeSettings) -> FastAPI:
    """The app around a loaded Synthesizer; `settings` sizes the pool and sets the limits.

    A vocoder-only artifact (copy synthesis, no text input) is refused here, before the server starts.
    """
    if getattr(getattr(synthesizer, "manifest", None), "vocoder_only", False):
        raise InputError(
            f"serve: {synthesizer.root} is a vocoder-only artifact; the server speaks text, so serve a "
            "text-to-speech artifact (copy-synthesise recordings with 'speedy synth --artifact DIR --wav')"
        )
    pool = SynthesisPool(settings.workers, settings.queue, on_idle=malloc.trim if settings.trim_memory else None)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        warm_up = getattr(synthesizer, "warm_up", None)
        if warm_up is not None:  # before accepting: the first request then starts audio as fast as later ones
            _LOGGER.info("warmed up in %.2f s", await asyncio.to_thread(warm_up))
        yield
        # After uvicorn stopped accepting (SIGTERM): let admitted runs finish.
        if not await asyncio.to_thread(pool.drain, settings.timeout_s):
            _LOGGER.warning("shutdown: %d requests still running after %g s", pool.in_flight, settings.timeout_s)

    app = FastAPI(
        title="OpenSpeedy TTS", version="0.1.0", description="Chinese multi-emotion text-to-speech.", lifespan=lifespan
    )
    metrics = Metrics.create()
    app.state.synthesizer, app.state.pool, app.state.metrics, app.state.settings = synthesizer, pool, metrics, settings
    app.state.serve = ServeState(synthesizer, pool, metrics, settings)
    _add_error_handlers(app)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.include_router(routes_page.router)
    app.mount("/static", StaticFiles(directory=str(routes_page.STATIC)), name="static")
    app.include_router(routes_tts.router)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Validation, HTTP and ApiError exceptions answered as `{"error": {...}}` JSON."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        kind = first.get("type", "invalid")
        if kind == "json_invalid":  # loc is ("body", character index into the decoded body)
            return error_response(422, bad_json_message(first, exc.body), None, kind)
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        msg = first.get("msg", "invalid value")
        field = ".".join(loc) or None
        return error_response(422, f"{field}: {msg}" if field else msg, field, kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), kind="http", headers=getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, exc.kind, exc.headers)


def run(artifact: str | None, settings: ServeSettings) -> None:
    """Bind the port, load the Synthesizer with `threads_per_worker` intra-op threads, then serve until
    SIGTERM/SIGINT (a port in use: InputError, exit 2, before anything loads).

    uvicorn's graceful shutdown drains in-flight requests (up to the request timeout) on SIGTERM.
    """
    import uvicorn

    from speedy.serve import listen
    from speedy.synth import Synthesizer

    sock = listen.bind(settings.host, settings.port)  # a port in use fails now, before the load
    malloc.limit_arenas(settings.malloc_arenas)  # before any worker thread allocates (speedy.runtime.malloc)
    try:
        synthesizer = Synthesizer.load(artifact, threads=settings.threads_per_worker)
    except BaseException:
        sock.close()
        raise
    app = create_app(synthesizer, settings)
    _LOGGER.info(
        "serving %s on http://%s:%d (%d workers × %d threads, queue %d)",
        synthesizer.root,
        settings.host,
        settings.port,
        settings.workers,
        settings.threads_per_worker,
        settings.queue,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=listen.uvicorn_log_config(),
        log_level=listen.uvicorn_log_level(),
        timeout_graceful_shutdown=int(settings.timeout_s),
    )
    uvicorn.Server(config).run(sockets=[sock])
