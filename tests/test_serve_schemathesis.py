"""schemathesis generates requests from /openapi.json: no route may answer with a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from serve_fake import FakeSynthesizer
from speedy.serve import ServeSettings, create_app

schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(FakeSynthesizer(), ServeSettings(workers=2, queue=8)))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:  # case: schemathesis.Case
    """Generated valid and invalid bodies get 2xx or 4xx, never 5xx."""
    response = case.call()
    assert response.status_code < 500, (case.path, case.body, response.text[:300])
