"""schemathesis generates requests from /openapi.json: no route may answer with a 5xx, on the fake
synthesizer (many examples, fast) and once on the real default voice (few examples)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


@pytest.mark.integration
def test_no_server_errors_on_the_real_voice(default_onnx: Path) -> None:
    """The same on the real default voice (2 workers × 1 thread, one shared Synthesizer), with a few valid
    and invalid cases across all routes: whatever the generator sends is a 2xx or a 4xx, never a 5xx.

    Built inside the test (schemathesis' fixture-based lazy schema does not run under this pytest), so
    collecting the module loads no model."""
    from hypothesis import given
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    from speedy.synth import Synthesizer

    app = create_app(Synthesizer.load(default_onnx, threads=1), ServeSettings(workers=2, threads_per_worker=1))
    live = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: list[int] = []

    @given(case=st.one_of(live.as_strategy(), live.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case) -> None:  # case: schemathesis.Case
        response = case.call()
        statuses.append(response.status_code)
        assert response.status_code < 500, (case.method, case.path, case.body, response.text[:300])

    check()
    assert any(200 <= s < 300 for s in statuses) and any(400 <= s < 500 for s in statuses), statuses
