"""HTTP plumbing shared by the app and its routers: the JSON error shape, the body-size limit and the
streaming response that always closes its synthesis generator.

Bad requests are 4xx with `{"error": {"message", "field", "type"}}`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anyio
from fastapi.responses import JSONResponse, StreamingResponse

from speedy.serve.schemas import ErrorResponse

#: The error statuses the synthesis routes document, each answered with an ErrorResponse body.
ERRORS: dict[int | str, dict[str, Any]] = {
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


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    kind: str = "invalid_request",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"error": {"message", "field", "type"}}` with `status` (and `headers`)."""
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
            too_large = error_response(413, f"request body over {self.limit} bytes", kind="too_large")
            return await too_large(scope, receive, send)
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
            await error_response(e.status, e.message, kind=e.kind)(scope, receive, send)


def bad_json_message(error: dict[str, Any], body: Any) -> str:
    """'request body is not valid JSON at byte offset N: <why>' (FastAPI gives a character index)."""
    pos = next((p for p in reversed(error.get("loc", ())) if isinstance(p, int)), None)
    why = (error.get("ctx") or {}).get("error")
    text = "request body is not valid JSON"
    if pos is not None:
        offset = len(body[:pos].encode("utf-8", "surrogatepass")) if isinstance(body, str) else pos
        text += f" at byte offset {offset}"
    return f"{text}: {why}" if why else text
