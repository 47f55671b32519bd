"""What the routes share: the loaded Synthesizer, its worker pool, the metrics and the settings, kept on
`app.state.serve` as one ServeState and handed to a route by the `State` dependency; plus the `auth` and
`json_body` checks the synthesis routes depend on."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from speedy.controls import SynthesisOptions
from speedy.errors import InputError, SpeedyError
from speedy.serve.http import ApiError
from speedy.serve.metrics import Metrics
from speedy.serve.schemas import TTSRequest
from speedy.serve.settings import ServeSettings
from speedy.serve.workers import QueueFull, SynthesisPool

_LOGGER = logging.getLogger("speedy.serve.app")  # the logger name the server's log lines always had


@dataclass
class ServeState:
    """One app's Synthesizer, pool, metrics and settings; `info` is the Synthesizer's describe()."""

    synthesizer: Any
    pool: SynthesisPool
    metrics: Metrics
    settings: ServeSettings
    info: dict[str, Any] = field(init=False)
    voices: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.info = self.synthesizer.describe()
        self.voices = [v["name"] for v in self.info["voices"]]

    def options_for(self, req: TTSRequest) -> SynthesisOptions:
        """The request's controls as SynthesisOptions; a bad emotion or range is a 422."""
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

    def check_voice(self, name: str | None) -> None:
        """A 422 naming the valid voices unless `name` is empty or one of them."""
        if name not in (None, "", *self.voices):
            raise ApiError(422, f"unknown voice {name!r}; valid voices: {', '.join(self.voices)}", "voice")

    def check_length(self, text: str) -> None:
        """A 422 when `text` is over the settings' character limit."""
        limit = self.settings.max_chars
        if len(text) > limit:
            raise ApiError(422, f"text has {len(text)} characters; the limit is {limit}", "text")

    async def synthesize(self, text: str, options: SynthesisOptions) -> Any:
        """The whole SynthesisResult, made in the pool; busy is 503, too slow 504, bad text 422."""
        self.check_length(text)
        pool, metrics, timeout_s = self.pool, self.metrics, self.settings.timeout_s
        metrics.queue_depth.set(pool.in_flight + 1)
        try:
            result = await pool.run(lambda: self.synthesizer.synthesize(text, options), timeout_s)
        except QueueFull:
            raise ApiError(
                503, "the server is busy; retry shortly", kind="busy", headers={"Retry-After": "1"}
            ) from None
        except TimeoutError:
            raise ApiError(504, f"synthesis took longer than {timeout_s:g} s", kind="timeout") from None
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

    async def stream_body(self, text: str, options: SynthesisOptions, header: bytes) -> AsyncIterator[bytes]:
        """Admit the request, synthesise the first chunk (so bad text is still a 4xx), then stream.

        Each chunk is made on a worker thread and sent as soon as it is made. If the client goes away,
        the synthesis generator is closed where it stands: the stream stops, its worker slot is freed and
        one line is logged.
        """
        self.check_length(text)
        synthesizer, metrics = self.synthesizer, self.metrics

        def produce() -> Iterator[bytes]:
            for chunk in synthesizer.stream(text, options):
                metrics.audio_seconds.inc(chunk.duration_s)
                yield chunk.audio_int16_bytes

        try:
            gen = self.pool.stream(produce)
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


def serve_state(request: Request) -> ServeState:
    """The ServeState of the app answering `request`."""
    state: ServeState = request.app.state.serve
    return state


#: A route parameter annotated `State` receives the app's ServeState.
State = Annotated[ServeState, Depends(serve_state)]


def json_body(request: Request) -> None:
    """A 415 unless the request's Content-Type is application/json."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, got {ctype or 'none'}", kind="media_type")


def auth(request: Request) -> None:
    """A 401 unless the settings have no API key or the request carries it (Bearer or X-API-Key)."""
    api_key = serve_state(request).settings.api_key
    if api_key is None:
        return
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if not hmac.compare_digest(token.encode(), api_key.encode()):
        raise ApiError(
            401,
            "missing or incorrect API key (Authorization: Bearer KEY)",
            kind="auth",
            headers={"WWW-Authenticate": "Bearer"},
        )
