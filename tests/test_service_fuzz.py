"""Schemathesis against `aios serve`'s own OpenAPI spec, and bad input beside a live stream.

The fuzzer generates requests for every operation of the spec (valid and invalid bodies,
path parameters, headers) and sends them to the real service with an app token. Nothing may
answer 5xx, and every error must be the documented JSON ``{"error": {"code", "message"}}``.

Bounds, so the run stays near a minute on 2 cores: a fixed number of examples per operation
(``EXAMPLES``), no shrinking, and every ``max_tokens`` the fuzzer picks above ``MAX_TOKENS``
is lowered to it before sending (the model-running operations are still called with valid
and invalid bodies; they just never generate long texts). The fuzzing app may send text and
documents only, so `index` and `search` (which read the user's files) answer 403 to it.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .service_support import Service, _sha, start_service

pytestmark = [pytest.mark.model, pytest.mark.slow]

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

FUZZ_TOKEN = "tok-fuzz-0123456789"
AUTH = {"Authorization": f"Bearer {FUZZ_TOKEN}"}
EXAMPLES = 12
MAX_TOKENS = 4
SEEN: Counter[tuple[str, int]] = Counter()


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
    """The body with every integer ``max_tokens`` above the bound lowered to it."""
    if isinstance(body, dict):
        out = {k: _bounded(v) for k, v in body.items()}
        for key in ("max_tokens", "max_completion_tokens"):
            v = out.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v > MAX_TOKENS:
                out[key] = MAX_TOKENS
        return out
    if isinstance(body, list):
        return [_bounded(v) for v in body]
    return body


def _check_shape(response: httpx.Response | Any, label: str) -> None:
    status = response.status_code
    ctype = response.headers.get("content-type", "")
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


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_openapi_fuzz_finds_no_server_errors(case: Any) -> None:
    if isinstance(case.body, dict | list):
        case.body = _bounded(case.body)
    response = case.call(headers=AUTH, timeout=120)
    label = f"{case.method} {case.formatted_path}"
    SEEN[(f"{case.method} {case.operation.path}", response.status_code)] += 1
    _check_shape(response, label)
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])


def test_fuzz_summary() -> None:
    """Prints what the fuzzer sent (runs after it in file order)."""
    if not SEEN:
        pytest.skip("the fuzz test did not run")
    ops: dict[str, Counter[int]] = {}
    for (op, status), n in SEEN.items():
        ops.setdefault(op, Counter())[status] += n
    print(f"\nfuzz: {sum(SEEN.values())} requests over {len(ops)} operations")
    for op, statuses in sorted(ops.items()):
        print(f"  {op:40s} {dict(sorted(statuses.items()))}")
