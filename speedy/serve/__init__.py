"""`speedy serve`: the HTTP API and web page over one Synthesizer (nothing loads at import time)."""

from __future__ import annotations

from speedy.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run"]


def create_app(synthesizer, settings: ServeSettings | None = None):  # -> fastapi.FastAPI
    """Build the FastAPI app around a loaded Synthesizer (see speedy.serve.app)."""
    from speedy.serve import app

    return app.create_app(synthesizer, settings or ServeSettings())


def run(artifact: str | None, settings: ServeSettings) -> None:
    """Load the artifact with the settings' thread split and serve it with uvicorn until SIGTERM/SIGINT."""
    import importlib.util

    from speedy.errors import MissingExtraError

    for package in ("fastapi", "uvicorn", "prometheus_client"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError(package.replace("_", "-"), "serve", "speedy serve")
    from speedy.serve import app

    app.run(artifact, settings)
