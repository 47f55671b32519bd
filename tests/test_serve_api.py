"""The HTTP API on a fake synthesizer: every route and every bad request, against `speedy serve`'s app in
process (FastAPI's TestClient) and the same app deployed with Ray Serve on the session's local Ray
(`speedy serve --ray`, through Serve's HTTP proxy). Both answer every test alike."""

from __future__ import annotations

import base64
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from serve_fake import GATE_GUARD_S, FakeSynthesizer, FileFlag, gated_fake

from speedy.serve import ServeSettings, create_app

#: The apps the tests talk to (one deployment each under Ray, deployed together once per module):
#: "busy" and "slow" run a fake whose sentences wait for a gate the test opens.
APPS: dict[str, tuple[ServeSettings, bool]] = {
    "plain": (ServeSettings(workers=2, queue=4), False),
    "key": (ServeSettings(api_key="s3cret"), False),
    "busy": (ServeSettings(workers=1, queue=1), True),
    "slow": (ServeSettings(workers=1, queue=1, timeout_s=0.2), True),
}


class Served:
    """APPS served one way ("app": in process; "ray": Ray Serve deployments under /<name>)."""

    def __init__(self, kind: str, folder: Path, port: int | None = None) -> None:
        self.kind, self.folder, self.port = kind, folder, port
        self.fakes: dict[str, FakeSynthesizer] = {}
        self.clients: dict[str, httpx.Client] = {}

    def loader(self, name: str) -> Callable[[], FakeSynthesizer]:
        """What builds the app's fake (picklable: a Ray replica runs it)."""
        return partial(gated_fake, str(self.folder / name) if APPS[name][1] else None)

    def client(self, name: str) -> httpx.Client:
        if name not in self.clients:
            settings = APPS[name][0]
            if self.kind == "app":
                self.fakes[name] = self.loader(name)()
                self.clients[name] = TestClient(create_app(self.fakes[name], settings))
            else:
                self.clients[name] = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/{name}", timeout=60)
        return self.clients[name]

    def flags(self, name: str) -> tuple[FileFlag, FileFlag]:
        """(gate, started) of a gated app's fake, both cleared: call before sending its requests (so a test
        may run again, e.g. repeated in one session, on the module's deployments)."""
        gate, started = FileFlag(self.folder / name / "gate"), FileFlag(self.folder / name / "started")
        for flag in (gate, started):
            Path(flag.path).unlink(missing_ok=True)
        return gate, started

    def fake(self, name: str) -> FakeSynthesizer | None:
        """The app's fake when it runs in this process (None under Ray)."""
        return self.fakes.get(name)

    def in_flight(self, name: str) -> int:
        return self.client(name).get("/healthz").json()["in_flight"]

    def audio_seconds(self, name: str) -> float:
        """Audio the app has finished synthesising (its /metrics): 0 while every run waits on the gate."""
        m = re.search(r"^speedy_audio_seconds_total (\S+)$", self.client(name).get("/metrics").text, re.M)
        return float(m.group(1)) if m else 0.0


def _healthz(client: httpx.Client) -> int:
    try:
        return client.get("/healthz", timeout=5).status_code
    except httpx.HTTPError:
        return -1


def _gate_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gates")
    for name in APPS:
        (folder / name).mkdir()
    return folder


@pytest.fixture(scope="module")
def ray_served(tmp_path_factory: pytest.TempPathFactory, ray_serve_port: int) -> Iterator[Served]:
    """APPS as Ray Serve applications under /<name> (`speedy serve --ray`'s build_app with a fake as loader;
    each replica's app admits what `speedy serve`'s pool would: workers + queue), and the toy artifact
    through `speedy serve --ray`'s own start() at /, all deploying at once (replica starts are slow)."""
    from bench_fixture import make_toy_artifact
    from ray import serve

    from speedy.serve.ray_app import RayServeConfig, build_app, start

    served = Served("ray", _gate_folder(tmp_path_factory), ray_serve_port)
    targets = []
    for name, (settings, _) in APPS.items():
        config = RayServeConfig(max_ongoing_requests=settings.workers + settings.queue)
        app = build_app(None, settings, config, loader=served.loader(name))
        targets.append(serve.RunTarget(app, name=name, route_prefix=f"/{name}"))
    serve.run_many(targets, wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    toy = make_toy_artifact(tmp_path_factory.mktemp("toy") / "fp32")
    start(str(toy), ServeSettings(port=ray_serve_port, queue=4), RayServeConfig(max_ongoing_requests=2))
    deadline = time.monotonic() + 300
    while any(serve.status().applications[name].status != "RUNNING" for name in APPS):
        assert time.monotonic() < deadline, f"Serve applications not running: {serve.status().applications}"
        time.sleep(0.2)
    for name in APPS:  # and reachable through the proxy (its routes and replica list come asynchronously)
        while _healthz(served.client(name)) != 200:
            assert time.monotonic() < deadline, f"/{name}/healthz never answered through Serve's proxy"
            time.sleep(0.2)
    yield served
    for c in served.clients.values():
        c.close()
    for name in (*APPS, "speedy"):
        serve.delete(name, _blocking=False)


@pytest.fixture(scope="module", params=["app", pytest.param("ray", marks=pytest.mark.ray)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The apps in process, or on Ray Serve (ray_served)."""
    if request.param == "ray":
        pytest.importorskip("ray")
        return request.getfixturevalue("ray_served")
    return Served("app", _gate_folder(tmp_path_factory))


@pytest.mark.ray
def test_ray_replica_loads_the_artifact(ray_served: Served) -> None:
    """`speedy serve --ray`'s start() on the toy artifact: the replica loads it itself (Synthesizer.load, the
    plug-in family through $SPEEDY_BATCH_SETUP) behind Serve's proxy: /voices, a WAV from /tts, a 422."""
    with httpx.Client(base_url=f"http://127.0.0.1:{ray_served.port}", timeout=60) as http:
        voices = http.get("/voices").json()
        assert voices["family"] == "toy" and voices["sample_rate"] == 16000
        r = http.post("/tts", json={"text": "你好。"})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content[:4] == b"RIFF"
        bad = http.post("/tts", json={"text": "你好。", "speed": 9})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "speed"


@pytest.fixture()
def client(served: Served) -> httpx.Client:
    return served.client("plain")


def wav_seconds(data: bytes) -> float:
    info = sf.info(io.BytesIO(data))
    assert info.samplerate == 24000 and info.channels == 1
    return info.duration


def test_page_is_served(client: httpx.Client) -> None:
    """/ is the Chinese page with its controls; static files load without a CDN."""
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for needle in ('maxlength="500"', 'id="emotion"', 'id="speed"', 'id="pitch"', "<audio", "下载 WAV", "合成语音"):
        assert needle in r.text
    assert "http" not in r.text.split("<body>")[1].replace("/docs", "")  # no external resources
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_voices_health_models(client: httpx.Client) -> None:
    """/voices lists emotions and ranges; /healthz and /v1/models answer."""
    v = client.get("/voices").json()
    assert v["sample_rate"] == 24000 and v["max_chars"] == 500
    assert v["voices"][0]["emotions"] == ["中性", "喜悦", "悲伤", "愤怒"]
    assert v["controls"]["pitch"]["min"] == -12
    assert client.get("/healthz").json()["status"] == "ok"
    assert any(m["id"] == "tts-1" for m in client.get("/v1/models").json()["data"])


def test_tts_wav_and_base64(client: httpx.Client) -> None:
    """/tts returns a WAV, or JSON with the same WAV in base64."""
    r = client.post("/tts", json={"text": "你好。世界。", "emotion": "喜悦", "speed": 1.5})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    assert wav_seconds(r.content) > 0.1
    j = client.post("/tts", json={"text": "你好", "format": "base64"}).json()
    assert j["sample_rate"] == 24000 and wav_seconds(base64.b64decode(j["audio_base64"])) == pytest.approx(j["duration_s"], abs=1e-3)


def test_stream_sends_header_then_pcm(client: httpx.Client) -> None:
    """/tts/stream is a WAV header with open length followed by each sentence's PCM."""
    with client.stream("POST", "/tts/stream", json={"text": "第一句。第二句。第三句。"}) as r:
        assert r.status_code == 200
        body = b"".join(r.iter_bytes())
    assert body[:4] == b"RIFF" and body[8:12] == b"WAVE" and len(body) > 44 + 3 * 4800


@pytest.mark.parametrize("fmt", ["wav", "flac", "pcm"])
def test_openai_speech(client: httpx.Client, fmt: str) -> None:
    """/v1/audio/speech answers the OpenAI request shape in the asked format."""
    r = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "你好，世界", "voice": "alloy",
                                               "response_format": fmt, "speed": 1.0})
    assert r.status_code == 200, r.text
    if fmt == "pcm":
        assert len(r.content) % 2 == 0 and len(r.content) > 1000
    else:
        assert wav_seconds(r.content) > 0.1


def test_metrics_count_requests(client: httpx.Client) -> None:
    """/metrics exposes request counts by route and status, audio seconds and queue depth."""

    def count(status: int) -> float:
        line = f'speedy_requests_total{{route="/tts",status="{status}"}} '
        return sum(float(x[len(line):]) for x in client.get("/metrics").text.splitlines() if x.startswith(line))

    before = count(200), count(422)
    client.post("/tts", json={"text": "你好"})
    client.post("/tts", json={"text": ""})
    assert (count(200), count(422)) == (before[0] + 1, before[1] + 1)
    m = client.get("/metrics").text
    assert "speedy_audio_seconds_total" in m and "speedy_queue_depth" in m and "speedy_rtf_bucket" in m


BAD = [
    ("/tts", {"text": ""}, 422, "text"),
    ("/tts", {"text": "好" * 501}, 422, "text"),
    ("/tts", {"text": "。，！"}, 422, "text"),
    ("/tts", {"text": "😀😀"}, 422, "text"),
    ("/tts", {"text": 42}, 422, "text"),
    ("/tts", {}, 422, "text"),
    ("/tts", {"text": "你好", "speed": 3}, 422, "speed"),
    ("/tts", {"text": "你好", "speed": "fast"}, 422, "speed"),
    ("/tts", {"text": "你好", "pitch": -13}, 422, "pitch"),
    ("/tts", {"text": "你好", "energy": 0}, 422, "energy"),
    ("/tts", {"text": "你好", "emotion": "开心"}, 422, "emotion"),
    ("/tts", {"text": "你好", "voice": "nobody"}, 422, "voice"),
    ("/tts", {"text": "你好", "format": "ogg"}, 422, "format"),
    ("/tts", {"text": "你好", "colour": "red"}, 422, "colour"),
    ("/v1/audio/speech", {"input": "你好", "voice": "alloy", "response_format": "aiff"}, 422, "response_format"),
    ("/v1/audio/speech", {"input": "你好", "voice": "nobody"}, 422, "voice"),
    ("/v1/audio/speech", {"input": "", "voice": "alloy"}, 422, "input"),
    ("/v1/audio/speech", {"input": "你好", "voice": "alloy", "speed": 9}, 422, "speed"),
]


@pytest.mark.parametrize("route, body, status, field", BAD)
def test_bad_json_fields(client: httpx.Client, route: str, body: dict, status: int, field: str) -> None:
    """Each bad field is a 4xx whose JSON names it; never a 5xx or a traceback."""
    r = client.post(route, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["field"] == field and err["message"] and "Traceback" not in r.text


@pytest.mark.parametrize("raw", ['{"text": NaN}', '{"text": "你好", "speed": NaN}', '{"text": "你好", "pitch": Infinity}'])
def test_nan_and_inf_rejected(client: httpx.Client, raw: str) -> None:
    """NaN / Infinity (accepted by Python's JSON parser) are 422."""
    r = client.post("/tts", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_malformed_json_type_method_and_size(client: httpx.Client) -> None:
    """Malformed JSON 422, wrong content type 415, wrong method 405, unknown route 404, big body 413."""
    assert client.post("/tts", content="{not json", headers={"content-type": "application/json"}).status_code == 422
    # the number in the message is a byte offset and says so (character 12, after two 3-byte characters)
    r = client.post("/tts", content='{"text": "你好"， "x": 1}'.encode(), headers={"content-type": "application/json"})
    err = r.json()["error"]
    assert r.status_code == 422 and err["field"] is None
    assert err["message"].startswith("request body is not valid JSON at byte offset 17: "), err
    r = client.post("/tts", content="text=你好", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    assert client.get("/tts").status_code == 405
    assert client.get("/nope").status_code == 404
    r = client.post("/tts", content=b'{"text": "' + b"a" * (1 << 20) + b'"}', headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_api_key(served: Served) -> None:
    """With an API key, API routes need 'Bearer KEY' (401 otherwise); the page stays public."""
    c = served.client("key")
    assert c.post("/tts", json={"text": "你好"}).status_code == 401
    assert c.post("/tts", json={"text": "你好"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.post("/tts", json={"text": "你好"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert c.get("/").status_code == 200 and c.get("/healthz").status_code == 200
    # the README and `serve --help` name the guarded and the open routes: keep them true
    assert c.post("/tts/stream", json={"text": "你好"}).status_code == 401
    assert c.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "你好"}).status_code == 401
    assert c.get("/v1/models").status_code == 401
    for route in ("/voices", "/metrics", "/docs", "/openapi.json"):
        assert c.get(route).status_code == 200, route


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state change made by another thread (a hang guard, not a timed assertion)."""
    deadline = time.monotonic() + GATE_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_simultaneous_requests_reach_the_app(served: Served) -> None:
    """Requests arriving together at an idle app are all answered by it, however small its queue ("busy":
    one worker, queue 1): under Ray, Serve's router counts each request as queued until a replica is chosen,
    and a router bound of `--queue` alone made its proxy refuse them with Ray's plain-text 503."""
    c = served.client("busy")
    for _ in range(5):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: c.get("/healthz"), range(8)))
        refused = [(r.status_code, r.text) for r in answers if r.status_code != 200]
        assert not refused, f"{len(refused)} of 8 simultaneous requests refused: {refused[0]}"
        assert all(r.json()["status"] == "ok" for r in answers)


def test_full_queue_is_503_with_retry_after(served: Served) -> None:
    """With the one worker busy and the one queue slot taken, further requests get the app's 503 + Retry-After
    while the synthesis is still blocked (so they cannot have waited for it); the admitted two then finish."""
    c = served.client("busy")
    gate, started = served.flags("busy")
    audio_before = served.audio_seconds("busy")
    codes: list[int] = []
    admitted = [threading.Thread(target=lambda: codes.append(c.post("/tts", json={"text": "你好"}).status_code))
                for _ in range(2)]
    try:
        admitted[0].start()
        assert started.wait(GATE_GUARD_S)
        admitted[1].start()
        wait_until(lambda: bool(codes) or served.in_flight("busy") == 2, "the second request is queued")
        assert not codes, f"the second request was answered {codes} instead of waiting for the worker"
        for _ in range(4):  # answered from this thread while the worker is blocked on the gate
            r = c.post("/tts", json={"text": "你好"})
            assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
            assert r.json() == {"error": {"message": "the server is busy; retry shortly", "field": None,
                                          "type": "busy"}}
        assert served.audio_seconds("busy") == audio_before and served.in_flight("busy") == 2  # none finished
    finally:
        gate.set()
    for t in admitted:
        t.join(timeout=GATE_GUARD_S)
    assert codes == [200, 200]
    fake = served.fake("busy")
    assert fake is None or fake.max_running == 1  # the pool never ran more than `workers` at once


def test_timeout_is_504(served: Served) -> None:
    """A run still blocked past the per-request timeout answers 504; its slot is freed once it really ends."""
    c = served.client("slow")
    gate, _ = served.flags("slow")
    audio_before = served.audio_seconds("slow")
    try:
        r = c.post("/tts", json={"text": "你好"})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout", r.text
        assert served.audio_seconds("slow") == audio_before and served.in_flight("slow") == 1  # 504 before the end
    finally:
        gate.set()
    wait_until(lambda: served.in_flight("slow") == 0, "the timed-out run releases its slot")
    assert c.post("/tts", json={"text": "你好"}).status_code == 200


def test_openapi_documents_routes(client: httpx.Client) -> None:
    """/openapi.json documents the request models."""
    spec = client.get("/openapi.json").json()
    assert {"/tts", "/tts/stream", "/v1/audio/speech", "/voices", "/v1/models", "/healthz"} <= set(spec["paths"])
    assert "TTSRequest" in spec["components"]["schemas"]


def test_unsupported_format_lists_supported(client: httpx.Client) -> None:
    """An unknown response_format is a 422 (as every refused field value) whose message lists what this libsndfile can write."""
    r = client.post("/v1/audio/speech", json={"input": "你好", "voice": "alloy", "response_format": "aiff"})
    assert r.status_code == 422 and "wav" in r.json()["error"]["message"] and "flac" in r.json()["error"]["message"]


def test_pool_survives_app_restart() -> None:
    """Starting the app again after a shutdown (lifespan drain) still serves: no leaked worker slots.

    In process only: under Ray Serve the app's lifespan runs once per replica, which Serve starts and stops
    itself (a restarted replica is a fresh process with a fresh pool)."""
    app = create_app(FakeSynthesizer(), ServeSettings(workers=1, queue=0))
    for _ in range(3):
        with TestClient(app) as c:
            assert c.post("/tts", json={"text": "你好。"}).status_code == 200


def test_shutdown_drains_in_flight_requests() -> None:
    """Leaving the app (what SIGTERM does under uvicorn) waits for a running synthesis to finish.

    The synthesis is blocked on a gate that only the pool's drain opens, so the shutdown provably began
    while it was running; after the lifespan exit it must have completed and the pool must be idle.
    (The HTTP answer is not checked: TestClient stops its event-loop portal right after the lifespan
    shutdown, so the client thread may see the connection end instead of the 200.) In process only: under
    Ray Serve the same lifespan exit runs when Serve stops a replica, after its own graceful drain.
    """
    gate = threading.Event()
    fake = FakeSynthesizer(gate=gate)
    app = create_app(fake, ServeSettings(workers=1, queue=1))
    pool = app.state.pool
    real_drain = pool.drain
    seen: list[tuple[int, bool]] = []

    def drain(timeout: float) -> bool:
        busy = pool.in_flight
        gate.set()
        idle = real_drain(timeout)
        seen.append((busy, idle))
        return idle

    pool.drain = drain
    try:
        with TestClient(app) as c:
            t = threading.Thread(target=lambda: c.post("/tts", json={"text": "你好。"}), daemon=True)
            t.start()
            assert fake.started.wait(GATE_GUARD_S)
            assert fake.completed == 0
    finally:
        gate.set()
    assert seen == [(1, True)]  # drain began with the request running and returned only once idle
    assert pool.in_flight == 0 and fake.completed == 1 and fake.running == 0
    t.join(timeout=GATE_GUARD_S)
    assert not t.is_alive()


def test_openai_stream_format_audio(client: httpx.Client) -> None:
    """stream_format=audio on /v1/audio/speech streams WAV (header first) or raw PCM; sse is a 422."""
    body = {"model": "tts-1", "input": "你好。今天天气很好。", "voice": "alloy"}
    with client.stream("POST", "/v1/audio/speech", json={**body, "stream_format": "audio"}) as r:
        data = b"".join(r.iter_bytes())
    assert r.status_code == 200 and data[:4] == b"RIFF" and len(data) > 24000
    r = client.post("/v1/audio/speech", json={**body, "stream_format": "audio", "response_format": "pcm"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("audio/pcm") and len(r.content) % 2 == 0
    r = client.post("/v1/audio/speech", json={**body, "stream_format": "sse"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "stream_format"
