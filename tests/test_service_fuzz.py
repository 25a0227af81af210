"""Schemathesis against `aios serve`'s own OpenAPI spec, and bad input beside a live stream.

The fuzzer generates requests for every operation of the spec (valid and invalid bodies,
path parameters, headers) and sends them to the real service with an app token. Nothing may
answer 5xx, and every error must be the documented JSON ``{"error": {"code", "message"}}``.

Bounds, so the run stays near a minute on 2 cores: a fixed number of examples per operation
(``EXAMPLES``), no shrinking, and every ``max_tokens`` the fuzzer picks above ``MAX_TOKENS``
is lowered to it before sending, chats keep their first ``MAX_MESSAGES`` messages and texts
their first ``MAX_CHARS`` characters (the model-running operations are still called with
valid and invalid bodies; they just never read or write long texts). Random skill names are
nearly always unknown, so the skill endpoints are also fuzzed with real skill names. The
fuzzing app may send text and documents only, so `index` and `search` (which read the user's
files) answer 403 to it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .service_support import Service, _sha, start_service

pytestmark = [pytest.mark.model, pytest.mark.slow]

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
from schemathesis import GenerationMode  # noqa: E402

FUZZ_TOKEN = "tok-fuzz-0123456789"
AUTH = {"Authorization": f"Bearer {FUZZ_TOKEN}"}
EXAMPLES = 15
MAX_TOKENS = 4
MAX_MESSAGES = 4
MAX_CHARS = 400
SEEN: Counter[tuple[str, int]] = Counter()
TIMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    extra = f"""
[[apps]]
id = "fuzz"
token_sha256 = "{_sha(FUZZ_TOKEN)}"
skills = ["*"]
data_classes = ["text", "documents"]
requests_per_minute = 100000
max_concurrent = 64
"""
    service = start_service(tmp_path_factory.mktemp("service-fuzz"), extra_config=extra)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def api_schema(svc: Service) -> Any:
    return schemathesis.openapi.from_url(f"{svc.url}/openapi.json", headers=AUTH, timeout=30)


def _bounded(body: Any) -> Any:
    """The body with every integer ``max_tokens`` above the bound lowered to it, and the
    bound given where an OpenAI request leaves it out (the default is 256 tokens)."""
    if isinstance(body, dict):
        out = {k: _bounded(v) for k, v in body.items()}
        for key in ("max_tokens", "max_completion_tokens"):
            v = out.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > MAX_TOKENS:
                out[key] = MAX_TOKENS
        if ("messages" in out or "prompt" in out) and "max_tokens" not in out:
            out["max_tokens"] = MAX_TOKENS
        if isinstance(out.get("messages"), list):  # a long chat is a long prompt to read
            out["messages"] = out["messages"][:MAX_MESSAGES]
        for key in ("content", "prompt", "text"):
            if isinstance(out.get(key), str):
                out[key] = out[key][:MAX_CHARS]
        return out
    if isinstance(body, list):
        return [_bounded(v) for v in body]
    return body


def _check_shape(response: httpx.Response | Any, label: str) -> None:
    status = response.status_code
    ctype = response.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype  # schemathesis: lists of values
    assert status < 500, f"{label}: {status} {response.text[:500]}"
    if status >= 400:
        assert ctype.startswith("application/json"), f"{label}: {status} as {ctype}"
        err = json.loads(response.text)["error"]
        assert isinstance(err["code"], str) and err["code"], (label, err)
        assert isinstance(err["message"], str) and err["message"], (label, err)
        assert set(err) <= {"code", "message", "hint", "problems"}, (label, err)
        assert "Traceback" not in response.text
    elif not (ctype.startswith("text/event-stream") or ctype.startswith("text/plain")):
        assert ctype.startswith("application/json"), f"{label}: {status} as {ctype}"
        json.loads(response.text)


def _send(case: Any, findings: list[str]) -> None:
    if isinstance(case.body, dict | list):
        case.body = _bounded(case.body)
    label = f"{case.method} {case.formatted_path} {str(case.body)[:200]}"
    response = case.call(headers=AUTH, timeout=120)
    SEEN[(f"{case.method} {case.operation.path}", response.status_code)] += 1
    try:
        _check_shape(response, label)
        case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])
    except AssertionError as exc:
        findings.append(f"{label}: {exc}"[:800])
    except Exception as exc:  # schemathesis reports its own failures as exception groups
        findings.append(f"{label}: {type(exc).__name__}: {exc}"[:800])


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, Any] | None,
    settings: Any,
    findings: list[str],
) -> None:
    @settings
    @hypothesis.given(
        case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
    )
    def run(case: Any) -> None:
        _send(case, findings)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:  # nothing to break (GET /health takes no input)
        assert mode is GenerationMode.NEGATIVE


def test_openapi_fuzz_finds_no_server_errors(api_schema: Any) -> None:
    """Every operation, valid and invalid inputs; all findings are collected, then reported.

    Schemathesis' own pytest integration (``from_fixture``) does not run under pytest 9, so
    this drives its Python API: one hypothesis run per operation and generation mode.
    """
    findings: list[str] = []
    settings = hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 13
    runs: list[tuple[Any, GenerationMode, dict[str, Any] | None]] = [
        (op, mode, None)
        for op in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    # A random skill name is almost always unknown (404): fuzz real skills' inputs as well.
    runs += [
        (op, GenerationMode.POSITIVE, {"name": name})
        for op in operations
        if op.path.startswith("/v1/skills/{name}")
        for name in ("generate", "chat", "summarize", "embed")
    ]
    for operation, mode, path_parameters in runs:
        t0 = time.perf_counter()
        _fuzz(operation, mode, path_parameters, settings, findings)
        TIMES[f"{operation.method.upper()} {operation.path}"] += time.perf_counter() - t0
    ops: dict[str, Counter[int]] = {}
    for (op, status), n in SEEN.items():
        ops.setdefault(op, Counter())[status] += n
    print(f"\nfuzz: {sum(SEEN.values())} requests over {len(ops)} operations")
    for op, statuses in sorted(ops.items()):
        print(f"  {op:34s} {TIMES[op]:5.1f} s {dict(sorted(statuses.items()))}")
    assert not findings, "\n".join(findings[:20])


# -- bad input beside a live stream -------------------------------------------------------------
def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and "Traceback" not in r.text, err
    return err


def test_bad_input_gets_json_errors_while_another_stream_completes(svc: Service) -> None:
    out: dict[str, Any] = {}
    streaming = threading.Event()

    def stream() -> None:
        body = {"input": {"prompt": "Write about the sea.", "max_tokens": 48}}
        with (
            httpx.Client(base_url=svc.url, headers=AUTH, timeout=120) as c,
            c.stream("POST", "/v1/skills/generate/stream", json=body) as r,
        ):
            out["status"] = r.status_code
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith("data: "):
                    streaming.set()
            out["text"] = "\n".join(lines)
        streaming.set()

    t = threading.Thread(target=stream)
    t.start()
    assert streaming.wait(60)
    json_ct = {"content-type": "application/json"}
    with httpx.Client(base_url=svc.url, headers=AUTH, timeout=60) as c:
        # malformed JSON, a body that is not an object, wrong types, unknown fields
        _error(
            c.post("/v1/skills/generate", content=b'{"input": {', headers=json_ct),
            400,
            "bad_request",
        )
        _error(
            c.post("/v1/chat/completions", content=b"{'a': 1}", headers=json_ct), 400, "bad_request"
        )
        _error(c.post("/v1/skills/generate", json=[1]), 422, "invalid_request")
        _error(c.post("/v1/skills/generate", json={"input": {"prompt": 5}}), 422, "invalid_input")
        _error(c.post("/v1/skills/generate", json={"input": "x"}), 422, "invalid_request")
        bad_chat = {"model": "auto", "messages": [{"role": "robot", "content": 1}]}
        _error(c.post("/v1/chat/completions", json=bad_chat), 422, "invalid_request")
        # oversized, announced by Content-Length and streamed without one
        big = b'{"input": {"prompt": "' + b"x" * 70_000 + b'"}}'
        _error(
            c.post("/v1/skills/generate", content=big, headers=json_ct), 413, "payload_too_large"
        )
        chunks = iter([b'{"input": {"prompt": "', *[b"y" * 8192] * 10, b'"}}'])
        r = c.post("/v1/skills/generate", content=chunks, headers=json_ct)
        _error(r, 413, "payload_too_large")
        # unknown skill, unknown model (skill API and OpenAI API)
        _error(c.post("/v1/skills/nope", json={"input": {}}), 404, "unknown_skill")
        r = c.post("/v1/skills/generate", json={"input": {"prompt": "x"}, "model": "nope"})
        _error(r, 404, "not_found")
        r = c.post("/v1/skills/generate/stream", json={"input": {"prompt": "x"}, "model": "nope"})
        _error(r, 404, "not_found")
        chat = {"model": "nope", "messages": [{"role": "user", "content": "hi"}]}
        _error(c.post("/v1/chat/completions", json=chat), 404, "not_found")
        _error(c.post("/v1/models/nope/load", json={}), 404, "not_found")
    # bad tokens
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token x"}):
        r = httpx.post(f"{svc.url}/v1/skills/generate", json={"input": {}}, headers=headers)
        _error(r, 401, "unauthorized")
    assert t.is_alive(), "the stream should still be running: make it longer"
    t.join(120)
    assert out["status"] == 200
    events = [block for block in out["text"].split("\n\n") if block.strip()]
    assert events[-1].startswith("event: result"), events[-1]
    result = json.loads(events[-1].split("data: ", 1)[1])
    assert result["record"]["status"] == "ok" and result["output"]["tokens_out"] > 0
