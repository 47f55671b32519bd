"""The page and the read-only routes: `/` (the web page), `/healthz`, `/voices` and `/metrics`.

The page's static files are mounted by create_app (a router does not carry mounts).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse

from speedy.serve.schemas import VoicesResponse
from speedy.serve.state import State

#: The web page and its scripts, served under /static.
STATIC = resources.files("speedy.serve") / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(str(STATIC / "index.html"), media_type="text/html; charset=utf-8")


@router.get("/healthz")
async def healthz(state: State) -> dict[str, Any]:
    """Liveness and load: the model family and how many requests are admitted."""
    pool = state.pool
    return {"status": "ok", "family": state.info["family"], "in_flight": pool.in_flight, "workers": pool.workers}


@router.get("/voices", response_model=VoicesResponse)
async def get_voices(state: State) -> dict[str, Any]:
    """Voices with their emotions, control ranges and the sample rate."""
    info = state.info
    return {
        **{k: info[k] for k in ("family", "sample_rate", "voices", "controls")},
        "max_chars": state.settings.max_chars,
    }


@router.get("/metrics", include_in_schema=False)
async def get_metrics(state: State) -> PlainTextResponse:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    state.metrics.queue_depth.set(state.pool.in_flight)
    return PlainTextResponse(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
