"""The FastAPI app: page, native API, OpenAI-compatible speech API, health and metrics.

Bad requests are 4xx with `{"error": {"message", "field", "type"}}`; no route answers a client's mistake
with a 5xx or a traceback. Synthesis runs in a bounded pool (speedy.serve.workers).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from importlib import resources
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from speedy.controls import SynthesisOptions
from speedy.errors import InputError, SpeedyError
from speedy.runtime import malloc
from speedy.serve import audio as audio_io
from speedy.serve.metrics import Metrics
from speedy.serve.schemas import ErrorResponse, SpeechRequest, TTSJSONResponse, TTSRequest, VoicesResponse
from speedy.serve.settings import ServeSettings
from speedy.serve.workers import QueueFull, SynthesisPool

_LOGGER = logging.getLogger(__name__)
#: OpenAI's voice names: accepted as aliases of the default voice so existing clients work unchanged.
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse},
    401: {"model": ErrorResponse},
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
}


class ApiError(Exception):
    """An error answered as JSON with a status code (and optional headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        kind: str = "invalid_request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.kind, self.headers = status, message, field, kind, headers


def _error(
    status: int,
    message: str,
    field: str | None = None,
    kind: str = "invalid_request",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "field": field, "type": kind}}
    return JSONResponse(body, status_code=status, headers=headers)


class SynthesisStream(StreamingResponse):
    """A StreamingResponse that always closes its body generator when sending ends, however it ends
    (client gone, cancelled), so that synthesis stops and the worker slot is freed at once."""

    async def stream_response(self, send: Any) -> None:
        try:
            await super().stream_response(send)
        finally:
            body = self.body_iterator
            assert isinstance(body, AsyncGenerator)  # the body() generator of the stream route
            with anyio.CancelScope(shield=True):
                await body.aclose()


class BodyLimit:
    """ASGI middleware: bodies over `limit` bytes get 413 (Content-Length or counted while streaming)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await _error(413, f"request body over {self.limit} bytes", kind="too_large")(scope, receive, send)
        seen = 0

        async def limited() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, f"request body over {self.limit} bytes", kind="too_large")
            return message

        try:
            await self.app(scope, limited, send)
        except ApiError as e:
            await _error(e.status, e.message, kind=e.kind)(scope, receive, send)


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
    info = synthesizer.describe()
    voices = [v["name"] for v in info["voices"]]

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        kind = first.get("type", "invalid")
        if kind == "json_invalid":  # loc is ("body", character index into the decoded body)
            return _error(422, _bad_json_message(first, exc.body), None, kind)
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        msg = first.get("msg", "invalid value")
        field = ".".join(loc) or None
        return _error(422, f"{field}: {msg}" if field else msg, field, kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), kind="http", headers=getattr(exc, "headers", None))

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.field, exc.kind, exc.headers)

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    def json_body(request: Request) -> None:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'none'}", kind="media_type")

    def auth(request: Request) -> None:
        if settings.api_key is None:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise ApiError(
                401,
                "missing or incorrect API key (Authorization: Bearer KEY)",
                kind="auth",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def options_for(req: TTSRequest) -> SynthesisOptions:
        try:
            return SynthesisOptions(
                speed=req.speed,
                pitch=req.pitch,
                pitch_range=req.pitch_range,
                energy=req.energy,
                emotion=req.emotion,
                voice=req.voice,
            )
        except InputError as e:
            field = "emotion" if "emotion" in str(e) else None
            raise ApiError(422, str(e), field) from None

    def check_voice(name: str | None) -> None:
        if name not in (None, "", *voices):
            raise ApiError(422, f"unknown voice {name!r}; valid voices: {', '.join(voices)}", "voice")

    async def synthesize(text: str, options: SynthesisOptions) -> Any:
        if len(text) > settings.max_chars:
            raise ApiError(422, f"text has {len(text)} characters; the limit is {settings.max_chars}", "text")
        metrics.queue_depth.set(pool.in_flight + 1)
        try:
            result = await pool.run(lambda: synthesizer.synthesize(text, options), settings.timeout_s)
        except QueueFull:
            raise ApiError(
                503, "the server is busy; retry shortly", kind="busy", headers={"Retry-After": "1"}
            ) from None
        except TimeoutError:
            raise ApiError(504, f"synthesis took longer than {settings.timeout_s:g} s", kind="timeout") from None
        except InputError as e:
            raise ApiError(422, str(e), "text" if "text" in str(e) or "nothing to say" in str(e) else None) from None
        except SpeedyError as e:
            _LOGGER.error("synthesis failed: %s", e)
            raise ApiError(500, "synthesis failed; see the server log", kind="server") from None
        finally:
            metrics.queue_depth.set(pool.in_flight)
        metrics.audio_seconds.inc(result.duration_s)
        metrics.rtf.observe(result.rtf)
        return result

    async def stream_body(text: str, options: SynthesisOptions, header: bytes) -> AsyncIterator[bytes]:
        """Admit the request, synthesise the first chunk (so bad text is still a 4xx), then stream.

        Each chunk is made on a worker thread and sent as soon as it is made. If the client goes away,
        the synthesis generator is closed where it stands: the stream stops, its worker slot is freed and
        one line is logged.
        """
        if len(text) > settings.max_chars:
            raise ApiError(422, f"text has {len(text)} characters; the limit is {settings.max_chars}", "text")

        def produce() -> Iterator[bytes]:
            for chunk in synthesizer.stream(text, options):
                metrics.audio_seconds.inc(chunk.duration_s)
                yield chunk.audio_int16_bytes

        try:
            gen = pool.stream(produce)
        except QueueFull:
            raise ApiError(
                503, "the server is busy; retry shortly", kind="busy", headers={"Retry-After": "1"}
            ) from None
        try:
            first = await run_in_threadpool(next, gen, b"")
        except InputError as e:
            raise ApiError(422, str(e), "text") from None

        async def body() -> AsyncIterator[bytes]:
            sent = 0
            try:
                for piece in (header, first):
                    if piece:
                        yield piece
                        sent += len(piece)
                while (piece := await run_in_threadpool(next, gen, None)) is not None:
                    yield piece
                    sent += len(piece)
            except SpeedyError as e:  # headers are out: end the stream short rather than with a traceback
                _LOGGER.error("stream ended early after %d bytes: synthesis failed: %s", sent, e)
            except (asyncio.CancelledError, GeneratorExit):
                _LOGGER.info("client went away after %d bytes of a stream; synthesis stopped, worker freed", sent)
                raise
            finally:
                gen.close()  # never running here: a cancel lands only after the worker thread has returned

        return body()

    static = resources.files("speedy.serve") / "static"

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(static / "index.html"), media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness and load: the model family and how many requests are admitted."""
        return {"status": "ok", "family": info["family"], "in_flight": pool.in_flight, "workers": pool.workers}

    @app.get("/voices", response_model=VoicesResponse)
    async def get_voices() -> dict[str, Any]:
        """Voices with their emotions, control ranges and the sample rate."""
        return {
            **{k: info[k] for k in ("family", "sample_rate", "voices", "controls")},
            "max_chars": settings.max_chars,
        }

    @app.get("/metrics", include_in_schema=False)
    async def get_metrics() -> PlainTextResponse:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        metrics.queue_depth.set(pool.in_flight)
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/tts",
        responses={200: {"content": {"audio/wav": {}}, "model": TTSJSONResponse}, **_ERRORS},
        dependencies=[Depends(auth), Depends(json_body)],
    )
    async def tts(req: TTSRequest) -> Response:
        """Synthesise up to 500 characters: audio/wav, or JSON with base64 audio (format=base64)."""
        options = options_for(req)
        check_voice(req.voice)
        result = await synthesize(req.text, options)
        wav = audio_io.encode(result.audio, result.sample_rate, "wav")
        if req.format == "base64":
            return JSONResponse(
                TTSJSONResponse(
                    audio_base64=base64.b64encode(wav).decode(),
                    sample_rate=result.sample_rate,
                    duration_s=round(result.duration_s, 3),
                ).model_dump()
            )
        return Response(wav, media_type="audio/wav", headers={"Content-Disposition": 'inline; filename="speech.wav"'})

    @app.post(
        "/tts/stream",
        responses={200: {"content": {"audio/wav": {}}}, **_ERRORS},
        dependencies=[Depends(auth), Depends(json_body)],
    )
    async def tts_stream(req: TTSRequest) -> StreamingResponse:
        """Chunked WAV sent as it is synthesised, from the first words on (length fields set to 0xFFFFFFFF)."""
        options = options_for(req)
        check_voice(req.voice)
        header = audio_io.streaming_wav_header(info["sample_rate"])
        return SynthesisStream(await stream_body(req.text, options, header), media_type="audio/wav")

    @app.get("/v1/models", dependencies=[Depends(auth)])
    async def models() -> dict[str, Any]:
        """OpenAI-style model list."""
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "owned_by": "openspeedy"}
                for name in ("speedy", "tts-1", "tts-1-hd", info["family"])
            ],
        }

    @app.post(
        "/v1/audio/speech",
        responses={200: {"content": {"audio/wav": {}}}, **_ERRORS},
        dependencies=[Depends(auth), Depends(json_body)],
    )
    async def speech(req: SpeechRequest) -> Response:
        """OpenAI speech API: model, input, voice, response_format, speed, stream_format=audio."""
        fmt = req.response_format.lower()
        supported = audio_io.supported_formats()
        if fmt not in supported:
            raise ApiError(
                422,
                f"response_format {req.response_format!r} is not supported here; supported: " f"{', '.join(supported)}",
                "response_format",
            )
        voice, emotion = None, None
        if req.voice in voices:
            voice = req.voice
        elif req.voice.lower() not in (*OPENAI_VOICES, "default"):
            try:
                SynthesisOptions(emotion=req.voice)
                emotion = req.voice
            except InputError:
                raise ApiError(
                    422,
                    f"unknown voice {req.voice!r}; use one of {', '.join(voices)}, an emotion "
                    f"(中性 喜悦 悲伤 愤怒) or an OpenAI voice name",
                    "voice",
                ) from None
        options = SynthesisOptions(speed=req.speed, emotion=emotion, voice=voice)
        if req.stream_format == "sse":
            raise ApiError(422, "stream_format 'sse' is not supported; use 'audio'", "stream_format")
        if req.stream_format == "audio":
            if fmt not in ("wav", "pcm"):
                raise ApiError(422, "streaming supports response_format wav or pcm", "response_format")
            header = audio_io.streaming_wav_header(info["sample_rate"]) if fmt == "wav" else b""
            body = await stream_body(req.input, options, header)
            return SynthesisStream(body, media_type=audio_io.media_type(fmt))
        result = await synthesize(req.input, options)
        return Response(audio_io.encode(result.audio, result.sample_rate, fmt), media_type=audio_io.media_type(fmt))

    return app


def _bad_json_message(error: dict[str, Any], body: Any) -> str:
    """'request body is not valid JSON at byte offset N: <why>' (FastAPI gives a character index)."""
    pos = next((p for p in reversed(error.get("loc", ())) if isinstance(p, int)), None)
    why = (error.get("ctx") or {}).get("error")
    text = "request body is not valid JSON"
    if pos is not None:
        offset = len(body[:pos].encode("utf-8", "surrogatepass")) if isinstance(body, str) else pos
        text += f" at byte offset {offset}"
    return f"{text}: {why}" if why else text


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
