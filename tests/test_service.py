"""The system service `aios serve`, run for real in a subprocess on the shipped models.

One server per module (most tests), on 127.0.0.1 with a free port and a Unix socket; the
reload and shutdown tests run last on it. The OpenAI-compatible API is exercised with the
official `openai` client.
"""

from __future__ import annotations

import json
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from .service_support import TOKENS, Service, _sha, sse_events, start_service

pytestmark = [pytest.mark.model, pytest.mark.slow]

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = start_service(tmp_path_factory.mktemp("service"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def full(svc: Service) -> Iterator[httpx.Client]:
    with svc.client("full") as c:
        yield c


def _error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["message"] and "Traceback" not in r.text
    if code:
        assert err["code"] == code, err
    return err


# -- service basics -----------------------------------------------------------------------
def test_health_needs_no_auth(svc: Service) -> None:
    r = httpx.get(f"{svc.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"] and body["uptime_s"] >= 0
    assert isinstance(body["loaded_models"], list) and body["config_generation"] == 1
    head = httpx.head(f"{svc.url}/health")
    assert head.status_code == 200 and head.content == b""


def test_every_other_endpoint_needs_a_token(svc: Service) -> None:
    for method, path in [
        ("GET", "/v1/skills"),
        ("POST", "/v1/skills/summarize"),
        ("GET", "/metrics"),
        ("GET", "/v1/models"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/models/gemma3-270m/load"),
    ]:
        _error(httpx.request(method, f"{svc.url}{path}"), 401, "unauthorized")
    bad = {"Authorization": "Bearer not-a-token"}
    _error(httpx.get(f"{svc.url}/v1/skills", headers=bad), 401, "unauthorized")
    basic = {"Authorization": f"Basic {TOKENS['full']}"}
    _error(httpx.get(f"{svc.url}/v1/skills", headers=basic), 401, "unauthorized")


def test_openapi_spec_documents_endpoints(full: httpx.Client) -> None:
    spec = full.get("/openapi.json").json()
    for path in [
        "/health",
        "/metrics",
        "/v1/skills",
        "/v1/skills/{name}",
        "/v1/skills/{name}/stream",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/models/status",
        "/v1/models/{model_id}/load",
        "/v1/models/{model_id}/unload",
        "/v1/models/{model_id}/pin",
    ]:
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert schemas["SkillRequest"]["additionalProperties"] is False
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_limited_app_permissions_and_quota(svc: Service) -> None:
    with svc.client("limited") as c:
        names = [s["name"] for s in c.get("/v1/skills").json()["skills"]]
        assert names == ["summarize"]
        err = _error(c.post("/v1/skills/generate", json={"input": {"prompt": "hi"}}), 403)
        assert "may not call skill 'generate'" in err["message"]
        _error(c.post("/v1/models/gemma3-270m/load", json={}), 403, "forbidden")
        _error(c.get("/metrics"), 403, "forbidden")  # other apps' counts and cloud spend
        for _ in range(10):  # a quota of 4 per minute: the bucket runs dry at once
            r = c.get("/v1/skills")
            if r.status_code == 429:
                break
        _error(r, 429, "rate_limited")
        assert int(r.headers["Retry-After"]) >= 1


def test_data_classes_bound_skills(svc: Service) -> None:
    with svc.client("textonly") as c:
        r = c.post("/v1/skills/summarize", json={"input": {"text": "A short text."}})
        err = _error(r, 403, "forbidden")
        assert "documents" in err["message"]


def test_body_size_limit(full: httpx.Client) -> None:
    big = json.dumps({"input": {"prompt": "x" * 70_000}})
    r = full.post("/v1/skills/generate", content=big, headers={"content-type": "application/json"})
    _error(r, 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"input": {"prompt": "'
        for _ in range(20):
            yield b"y" * 8192
        yield b'"}}'

    r = full.post(
        "/v1/skills/generate", content=chunks(), headers={"content-type": "application/json"}
    )
    _error(r, 413, "payload_too_large")


def test_bad_requests_get_json_errors_and_service_keeps_serving(
    svc: Service, full: httpx.Client
) -> None:
    err = _error(full.post("/v1/skills/generate", json={"input": {"prompt": 5}}), 422)
    assert err["code"] == "invalid_input" and "prompt" in err["problems"][0]
    _error(full.post("/v1/skills/generate", json={"input": {}, "bogus": 1}), 422, "invalid_request")
    _error(full.post("/v1/skills/generate", json=[1, 2]), 422, "invalid_request")
    r = full.post(
        "/v1/skills/generate", content=b'{"input": ', headers={"content-type": "application/json"}
    )
    _error(r, 400, "bad_request")
    err = _error(full.post("/v1/skills/sumarize", json={"input": {}}), 404, "unknown_skill")
    assert "summarize" in err["hint"]
    _error(full.get("/v1/nothing-here"), 404, "not_found")
    _error(full.delete("/v1/skills"), 405, "method_not_allowed")
    r = full.post("/v1/skills/generate", json={"input": {"prompt": "x"}, "model": "nope"})
    _error(r, 404, "not_found")
    r = full.post(
        "/v1/skills/generate",
        json={"input": {"prompt": "x", "max_tokens": 1}},
        headers={"X-AIOS-Priority": "urgent"},
    )
    _error(r, 400, "bad_request")
    assert httpx.get(f"{svc.url}/health").json()["status"] == "ok"


def test_client_mistakes_are_4xx_not_500(svc: Service, full: httpx.Client) -> None:
    """Found by a probe of the running service: each of these used to answer 500."""
    # A lone surrogate passes JSON parsing; echoed in an error it broke the JSON renderer.
    surrogate = b'{"model": "\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    r = full.post(
        "/v1/chat/completions", content=surrogate, headers={"content-type": "application/json"}
    )
    assert r.status_code in (400, 404, 422) and "\\ud800" in r.text, r.text
    body = b'{"input": {"texts": ["fine", "\\ud800"]}}'
    r = full.post("/v1/skills/embed", content=body, headers={"content-type": "application/json"})
    err = _error(r, 422, "invalid_input")
    assert "texts[1]: lone surrogate at character 0" in err["problems"][0]
    # A prompt over the context window is the caller's to shorten.
    long_prompt = "hello " * 5_000  # 5,000 tokens against a 2,048-token window
    r = full.post("/v1/skills/generate", json={"input": {"prompt": long_prompt, "max_tokens": 1}})
    err = _error(r, 400, "context_length_exceeded")
    assert "does not fit the context window" in err["message"]
    assert httpx.get(f"{svc.url}/health").json()["status"] == "ok"


def test_json_values_are_taken_as_their_json_types(svc: Service, full: httpx.Client) -> None:
    """A string is not a number and "no" is not false: the kind of client bug that must not
    pass silently (read as false, "sensitive": "no" would have let text go to the cloud)."""
    cases = [
        ("/v1/skills/generate", {"input": {"prompt": "x", "max_tokens": "2"}}, "max_tokens"),
        ("/v1/skills/generate", {"input": {"prompt": "x"}, "sensitive": "no"}, "sensitive"),
        ("/v1/skills/generate", {"input": {"prompt": "x"}, "sensitive": 0}, "sensitive"),
        ("/v1/chat/completions", {**_CHAT, "max_tokens": "2"}, "max_tokens"),
        ("/v1/chat/completions", {**_CHAT, "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {**_CHAT, "temperature": "0.5"}, "temperature"),
        ("/v1/completions", {"model": "auto", "prompt": "x", "echo": 1}, "echo"),
        ("/v1/models/gemma3-270m/load", {"pin": "true"}, "pin"),
    ]
    for path, body, field in cases:
        r = full.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert field in r.text, (path, body, r.text)
    # JSON's own types still pass, an integer for a float included.
    r = full.post("/v1/chat/completions", json={**_CHAT, "max_tokens": 1, "temperature": 0})
    assert r.status_code == 200, r.text
    r = full.post("/v1/skills/generate", json={"input": {"prompt": "x", "max_tokens": 1}})
    assert r.status_code == 200, r.text
    # Two token limits that disagree are a mistake; equal ones are fine.
    r = full.post(
        "/v1/chat/completions", json={**_CHAT, "max_tokens": 1, "max_completion_tokens": 5}
    )
    assert r.status_code == 422 and "disagree" in r.text, r.text
    r = full.post(
        "/v1/chat/completions", json={**_CHAT, "max_tokens": 1, "max_completion_tokens": 1}
    )
    assert r.status_code == 200, r.text
    assert httpx.get(f"{svc.url}/health").json()["status"] == "ok"


_CHAT = {"model": "auto", "messages": [{"role": "user", "content": "Say hi."}]}


# -- skills -------------------------------------------------------------------------------
def test_skills_list_has_contracts(full: httpx.Client) -> None:
    skills = {s["name"]: s for s in full.get("/v1/skills").json()["skills"]}
    assert {"summarize", "generate", "chat", "embed"} <= set(skills)
    s = skills["summarize"]
    assert s["kind"] == "skill" and s["description"]
    assert s["sensitivity"] in ("public", "personal", "private")
    assert "text" in s["input_schema"]["properties"]
    assert "summary" in s["output_schema"]["properties"]
    assert skills["embed"]["sensitivity"] == "private"


TEXT = (
    "The city council approved a new bicycle lane network on Tuesday. The plan adds 40 km of "
    "protected lanes over three years, funded by the transport budget. Supporters say it will "
    "cut traffic deaths; some shop owners worry about losing parking."
)


def test_invoke_summarize(full: httpx.Client) -> None:
    r = full.post("/v1/skills/summarize", json={"input": {"text": TEXT, "length": "short"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["output"]["summary"].strip()
    rec = body["record"]
    assert rec["status"] == "ok" and rec["app"] == "full" and rec["tier"] == "device"
    assert rec["priority"] == "foreground"


def test_stream_summarizesse_events(full: httpx.Client) -> None:
    r = full.post(
        "/v1/skills/summarize/stream",
        json={"input": {"text": TEXT, "length": "short"}},
        headers={"X-AIOS-Priority": "background"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1][0] == "result", events[-1]
    assert any(name == "delta" for name, _ in events)
    result = events[-1][1]
    assert result["output"]["summary"].strip()
    assert result["record"]["priority"] == "background"
    # Where it runs is told first, under the id the final record has.
    name, start = events[0]
    rec = result["record"]
    assert name == "start", events[0]
    assert start == {k: rec[k] for k in ("request_id", "model", "backend", "tier")}


def test_stream_error_before_output_is_an_http_error(full: httpx.Client) -> None:
    r = full.post("/v1/skills/summarize/stream", json={"input": {"text": ""}})
    _error(r, 422, "invalid_input")


def test_client_disconnect_cancels_generation(svc: Service, full: httpx.Client) -> None:
    body = {"input": {"prompt": "Write a very long story about a dragon.", "max_tokens": 2000}}
    with svc.client("full") as c, c.stream("POST", "/v1/skills/generate/stream", json=body) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                break  # the first delta: generation is running
    # The connection is closed: the model's slot must be free again quickly.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        models = {m["id"]: m for m in full.get("/v1/models/status").json()["models"]}
        if models["gemma3-270m"]["active_calls"] == 0:
            break
        time.sleep(0.1)
    assert models["gemma3-270m"]["active_calls"] == 0
    deadline = time.monotonic() + 5
    while '"status": "cancelled"' not in svc.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    cancelled = [
        e
        for e in svc.log_events()
        if e.get("event") == "aios.request" and e.get("status") == "cancelled"
    ]
    assert any(e["skill"] == "generate" and e["app"] == "full" for e in cancelled)
    # The audit says how the stream ended, though its HTTP status (sent first) was 200.
    ids = {e["request_id"] for e in cancelled if e["skill"] == "generate"}

    def audited() -> list[dict[str, Any]]:
        return [
            e
            for e in svc.log_events()
            if e.get("event") == "aios.audit" and e.get("request_id") in ids
        ]

    deadline = time.monotonic() + 5
    while not audited() and time.monotonic() < deadline:
        time.sleep(0.1)
    [audit] = audited()
    assert audit["endpoint"] == "POST /v1/skills/{name}/stream"
    assert audit["status"] == 200 and audit["outcome"] == "cancelled"
    assert audit["model"] == "gemma3-270m"


# -- OpenAI-compatible API -------------------------------------------------------------------
@pytest.fixture(scope="module")
def oai(svc: Service) -> Any:
    return openai.OpenAI(base_url=f"{svc.url}/v1", api_key=TOKENS["full"], max_retries=0)


def test_openai_models(oai: Any) -> None:
    models = {m.id: m for m in oai.models.list().data}
    assert {"gemma3-270m", "smollm2-135m-instruct", "use-v3-multilingual"} <= set(models)
    assert models["gemma3-270m"].owned_by == "aios-device"


def test_openai_chat(oai: Any) -> None:
    r = oai.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8,
    )
    assert r.object == "chat.completion" and r.id and r.created
    assert r.model == "smollm2-135m-instruct"
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0
    assert r.model_extra["aios_record"]["skill"] == "chat"


def test_openai_chat_stream(oai: Any) -> None:
    stream = oai.chat.completions.create(
        model="auto",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."},
        ],
        max_tokens=8,
        stream=True,
    )
    parts, last, chunks = [], None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        last = chunk
        chunks.append(chunk)
    assert "".join(parts).strip()
    assert last is not None and last.choices[0].finish_reason in ("stop", "length")
    record = last.model_extra["aios_record"]
    assert record["status"] == "ok"
    assert chunks[0].choices[0].delta.role == "assistant"
    # Every chunk names the model that ran, not "auto", under the record's id, as the
    # non-streamed reply does.
    assert {c.model for c in chunks} == {record["model"]}
    assert {c.id for c in chunks} == {f"chatcmpl-{record['request_id']}"}


def test_openai_completions(oai: Any) -> None:
    r = oai.completions.create(model="gemma3-270m", prompt="One, two, three,", max_tokens=4)
    assert r.object == "text_completion" and r.choices[0].text
    assert r.usage.completion_tokens > 0
    parts = [
        c.choices[0].text
        for c in oai.completions.create(
            model="gemma3-270m", prompt="Monday, Tuesday,", max_tokens=4, stream=True
        )
        if c.choices
    ]
    assert "".join(parts).strip()
    chunks = list(
        oai.completions.create(
            model="auto", prompt="Red, green,", max_tokens=3, stream=True, echo=True
        )
    )
    record = chunks[-1].model_extra["aios_record"]
    assert chunks[0].choices[0].text == "Red, green,"  # the echo comes first
    assert {c.id for c in chunks} == {f"cmpl-{record['request_id']}"}
    assert {c.model for c in chunks} == {record["model"]} != {"auto"}


def test_openai_embeddings(oai: Any) -> None:
    r = oai.embeddings.create(model="use-v3-multilingual", input=["a cat", "一只猫", "tax law"])
    vecs = np.array([d.embedding for d in r.data])
    assert vecs.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]  # multilingual: the cat is closer
    r = oai.embeddings.create(model="auto", input="hello", encoding_format="float")
    assert len(r.data[0].embedding) == 512


def test_openai_errors_are_typed(oai: Any) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    bad = openai.OpenAI(base_url=str(oai.base_url), api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


# -- models and metrics -------------------------------------------------------------------
def test_model_control(full: httpx.Client) -> None:
    def status(mid: str) -> dict[str, Any]:
        return next(m for m in full.get("/v1/models/status").json()["models"] if m["id"] == mid)

    r = full.post("/v1/models/smollm2-135m-instruct/load", json={"pin": True})
    assert r.status_code == 200, r.text
    assert r.json()["resident"] and r.json()["pinned"]
    s = status("smollm2-135m-instruct")
    assert s["resident"] and s["pinned"] and s["memory_mb"] > 0
    assert (
        full.post("/v1/models/smollm2-135m-instruct/pin", json={"pinned": False}).json()["pinned"]
        is False
    )
    r = full.post("/v1/models/smollm2-135m-instruct/unload")
    assert r.status_code == 200 and r.json()["changed"] and not r.json()["resident"]
    assert full.post("/v1/models/smollm2-135m-instruct/unload").json()["changed"] is False
    _error(full.post("/v1/models/smollm2-135m-instruct/pin", json={"pinned": True}), 409)
    _error(full.post("/v1/models/no-such/load", json={}), 404, "not_found")
    _error(full.post("/v1/models/gemma3-270m/pin", json={"pinned": "maybe"}), 422)


def test_metrics_after_calls(full: httpx.Client) -> None:
    full.post("/v1/skills/generate", json={"input": {"prompt": "Hi", "max_tokens": 2}})
    r = full.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert (
        'aios_skill_requests_total{app="full",skill="generate",status="ok",tier="device"}' in text
    )
    assert 'aios_skill_latency_seconds_bucket{le="+Inf",skill="generate",tier="device"}' in text
    assert 'aios_tokens_total{direction="out",skill="generate"}' in text
    assert "aios_cloud_cost_cny_total{" not in text  # all on device: no app has spent
    assert 'aios_model_memory_mb{model="gemma3-270m"}' in text
    assert 'aios_http_requests_total{app="full",code="401"' not in text  # no app on a 401
    assert 'aios_http_requests_total{app="-",code="401"' in text


def test_cli_model_residency_verbs_talk_to_the_service(svc: Service) -> None:
    """`aios models load|pin|resident|unload` act on the running service over its socket."""
    from .conftest import run_cli
    from .service_support import TOKENS

    common = ["--config", str(svc.config), "--socket", str(svc.socket)]
    env = {"AIOS_TOKEN": TOKENS["full"]}
    proc = run_cli("models", "load", "smollm2-135m-instruct", "--pin", *common, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "id": "smollm2-135m-instruct",
        "resident": True,
        "pinned": True,
        "changed": True,
    }
    proc = run_cli("models", "resident", *common, "--json", env=env)
    status = {m["id"]: m for m in json.loads(proc.stdout)["models"]}
    assert status["smollm2-135m-instruct"]["pinned"] is True
    proc = run_cli("models", "resident", *common, env=env)
    assert "smollm2-135m-instruct" in proc.stdout and "pinned" in proc.stdout
    proc = run_cli("models", "pin", "smollm2-135m-instruct", "--off", *common, env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["pinned"] is False
    proc = run_cli("models", "unload", "smollm2-135m-instruct", *common, env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["resident"] is False
    # No token, a limited app's token, an unknown model: clean errors, no traceback.
    proc = run_cli("models", "load", "gemma3-270m", *common, env={"AIOS_TOKEN": ""})
    assert proc.returncode != 0 and "needs an app token" in proc.stderr
    proc = run_cli("models", "load", "gemma3-270m", *common, env={"AIOS_TOKEN": TOKENS["limited"]})
    # Refused: 403 (model control needs every skill), or 429 once earlier tests spent its quota.
    assert proc.returncode != 0 and ("(403)" in proc.stderr or "(429)" in proc.stderr)
    proc = run_cli("models", "unload", "nope", *common, env=env)
    assert proc.returncode != 0 and "(404)" in proc.stderr and "Traceback" not in proc.stderr


def test_feature_status_and_pull(full: httpx.Client, svc: Service) -> None:
    """AICore-style feature status for every app; pulling a model is for operators."""
    r = full.get("/v1/models/features")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["models"]["gemma3-270m"]["state"] == "available"
    assert body["skills"]["summarize"]["state"] == "available"
    assert body["models"]["efficientnet-lite0"]["state"] in ("available", "unavailable")
    r = full.post("/v1/models/gemma3-270m/pull")
    _error(r, 409)  # shipped in the image: nothing to download
    with svc.client("textonly") as other:
        assert other.get("/v1/models/features").status_code == 200


def test_agents_are_served_like_skills_and_stream_their_steps(full: httpx.Client) -> None:
    listed = {s["name"]: s for s in full.get("/v1/skills").json()["skills"]}
    assert listed["notes-digest"]["kind"] == "agent" and listed["photo-recipe"]["kind"] == "agent"
    body = {
        "input": {
            "request": "find my notes about the moon landing and summarise them",
            "user": "agent-stream-test",  # no index: the search finds nothing
        }
    }
    r = full.post("/v1/skills/notes-digest/stream", json=body)
    assert r.status_code == 200, r.text
    events = sse_events(r.text)
    steps = [(d["step"], d["skill"], d["status"]) for name, d in events if name == "step"]
    assert steps == [(1, "search", "running"), (1, "search", "ok"), (2, "summarize", "skipped")]
    name, result = events[-1]
    assert name == "result" and result["output"]["status"] == "partial"
    assert "returned nothing to work on" in result["output"]["error"]
    assert result["record"]["kind"] == "agent"
    assert [s["skill"] for s in result["record"]["steps"]] == ["search"]


def test_unix_socket(svc: Service) -> None:
    mode = stat.S_IMODE(svc.socket.stat().st_mode)
    assert stat.S_ISSOCK(svc.socket.stat().st_mode) and mode == 0o600
    transport = httpx.HTTPTransport(uds=str(svc.socket))
    with httpx.Client(transport=transport, base_url="http://aios") as c:
        assert c.get("/health").json()["status"] == "ok"
        _error(c.get("/v1/skills"), 401)
        r = c.get("/v1/skills", headers={"Authorization": f"Bearer {TOKENS['full']}"})
        assert r.status_code == 200


def test_audit_log(svc: Service) -> None:
    events = [e for e in svc.log_events() if e.get("event") == "aios.audit"]
    ok = [e for e in events if e["endpoint"] == "POST /v1/skills/{name}" and e["status"] == 200]
    assert ok and ok[0]["app"] == "full" and ok[0]["model"] and ok[0]["tier"] == "device"
    assert all(e["outcome"] == "ok" for e in ok)
    assert any(e["status"] == 401 and e["error"] == "unauthorized" for e in events)


# -- reload and shutdown (last: they change the shared server) ----------------------------
def _wait(predicate: Any, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_sighup_reload(svc: Service, full: httpx.Client, tmp_path: Path) -> None:
    good = svc.config.read_text()
    svc.config.write_text(good.replace("max_body_bytes = 65536", "max_body_bytes = -1"))
    svc.signal(signal.SIGHUP)
    assert _wait(lambda: "service.reload_refused" in svc.log_text())
    assert "max_body_bytes" in svc.log_text().split("service.reload_refused")[0].split("\n")[-1]
    assert httpx.get(f"{svc.url}/health").json()["config_generation"] == 1
    assert full.get("/v1/skills").status_code == 200  # the old config keeps serving

    extra = f'\n[[apps]]\nid = "newapp"\ntoken_sha256 = "{_sha("tok-new-0123456789")}"\nskills = ["*"]\n'
    svc.config.write_text(good + extra)
    svc.signal(signal.SIGHUP)
    assert _wait(lambda: httpx.get(f"{svc.url}/health").json()["config_generation"] == 2)
    r = httpx.get(f"{svc.url}/v1/skills", headers={"Authorization": "Bearer tok-new-0123456789"})
    assert r.status_code == 200
    assert full.get("/v1/skills").status_code == 200


def test_sighup_during_a_request_lets_it_finish_on_the_old_config(svc: Service) -> None:
    out: dict[str, httpx.Response] = {}
    gen = httpx.get(f"{svc.url}/health").json()["config_generation"]

    def call() -> None:
        with svc.client("full") as c:
            body = {"input": {"prompt": "Count: one, two,", "max_tokens": 48}}
            out["r"] = c.post("/v1/skills/generate", json=body)

    with svc.client("full") as c:  # loaded first, so the request is generating when HUP lands
        assert c.post("/v1/models/gemma3-270m/load", json={}).status_code == 200
    t = threading.Thread(target=call)
    t.start()
    assert _wait(lambda: httpx.get(f"{svc.url}/health").json()["inflight"] == 1)
    svc.config.write_text(svc.config.read_text() + "\n")
    svc.signal(signal.SIGHUP)
    assert _wait(lambda: httpx.get(f"{svc.url}/health").json()["config_generation"] == gen + 1, 60)
    t.join(60)
    assert out["r"].status_code == 200, out["r"].text
    assert out["r"].json()["output"]["tokens_out"] > 0

    # The old generation closed once its last request ended, after the reload.
    def events() -> list[tuple[str, Any]]:
        return [(e.get("event", ""), e.get("generation")) for e in svc.log_events()]

    closed, reloaded = ("service.generation_closed", gen), ("service.reloaded", gen + 1)
    assert _wait(lambda: closed in events())
    assert events().index(reloaded) < events().index(closed)
    with svc.client("full") as c:  # and the new generation serves
        assert c.get("/v1/skills").status_code == 200


def test_sigterm_finishes_in_flight_request(svc: Service) -> None:
    out: dict[str, httpx.Response] = {}

    def call() -> None:
        with svc.client("full") as c:
            body = {"input": {"prompt": "Count: one, two,", "max_tokens": 32}}
            out["r"] = c.post("/v1/skills/generate", json=body)

    # Loaded first: llama.cpp silences stderr while it loads a model, which would hide the
    # service's own log lines written meanwhile.
    with svc.client("full") as c:
        assert c.post("/v1/models/gemma3-270m/load", json={}).status_code == 200
    t = threading.Thread(target=call)
    t.start()
    assert _wait(lambda: httpx.get(f"{svc.url}/health").json()["inflight"] == 1)
    time.sleep(0.3)
    svc.signal(signal.SIGTERM)
    t.join(60)
    assert out["r"].status_code == 200, out["r"].text
    assert out["r"].json()["output"]["tokens_out"] > 0
    assert svc.proc.wait(30) == 0
    assert "service.draining" in svc.log_text()
    assert not svc.socket.exists()


def test_grace_period_cancels_the_rest_with_a_clear_error(tmp_path: Path) -> None:
    svc = start_service(tmp_path, grace_s=1.0)
    try:
        with svc.client("full") as c:
            assert c.post("/v1/models/gemma3-270m/load", json={}).status_code == 200
        out: dict[str, Any] = {}
        long = {"prompt": "Write a very long story about a dragon.", "max_tokens": 3000}

        def plain() -> None:
            with svc.client("full") as c:
                out["plain"] = c.post("/v1/skills/generate", json={"input": long})

        def streamed() -> None:
            body = {"input": long, "model": "smollm2-135m-instruct"}
            with svc.client("full") as c:
                out["stream"] = c.post("/v1/skills/generate/stream", json=body)

        threads = [threading.Thread(target=plain), threading.Thread(target=streamed)]
        for t in threads:
            t.start()
        assert _wait(lambda: httpx.get(f"{svc.url}/health").json()["inflight"] == 2)
        time.sleep(1.0)
        svc.signal(signal.SIGTERM)
        for t in threads:
            t.join(30)
        err = _error(out["plain"], 503, "shutting_down")
        assert "grace" in err["message"]
        assert out["stream"].status_code == 200  # it had started: the error is its last event
        name, data = sse_events(out["stream"].text)[-1]
        assert name == "error" and data["error"]["code"] == "shutting_down"
        assert svc.proc.wait(30) == 0
        assert "service.grace_expired" in svc.log_text()
    finally:
        svc.stop()


def test_demo_runs_the_main_job_through_the_service() -> None:
    """The README's main-job command: serve, one HTTP call as an app, graceful stop."""
    from .conftest import run_cli

    proc = run_cli("demo", "--service", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["health"]["status"] == "ok"
    assert out["output"]["method"] in ("abstractive", "extractive")
    assert "wind farm" in out["output"]["summary"].lower()
    assert out["record"]["skill"] == "summarize" and out["record"]["tier"] == "device"
