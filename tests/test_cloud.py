"""The cloud tier against a real OpenAI-compatible server (llama_cpp.server on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aios import Orchestrator
from aios.config.loader import default_config_path, load_config
from aios.config.schema import RoutingMode
from aios.errors import (
    CloudResponseError,
    CloudStreamCutError,
    CloudTimeoutError,
    CloudUnavailableError,
)
from aios.routing.policy import RequestOptions

from .cloud_support import free_port, llama_server, proxy

pytestmark = pytest.mark.model

CLOUD = RequestOptions(mode=RoutingMode.prefer_cloud)

CLOUD_SECTION = """
[[models]]
id = "cloud-smol"
capabilities = ["text-generation", "embedding"]
parameters_b = 175
quantization = "fp16"
format = "api"
tier = "cloud"
endpoint = "test-cloud"
remote_model = "cloud-smol"
memory_mb = 0
context_length = 2048
prompt_format = "chat-instruct"

[[cloud.endpoints]]
name = "test-cloud"
base_url = "{base}"
connect_timeout_s = 1.0
read_timeout_s = {read_timeout}
deadline_s = {deadline}
max_retries = {retries}
backoff_s = 0.05
breaker_failures = {breaker}
breaker_cooldown_s = {cooldown}
cost_per_call_cny = 0.012
price_per_1k_output_cny = 0.01
{extra}
"""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with llama_server() as (base, _proc):
        yield base


@pytest.fixture
def cloud_proxy(server: str) -> Iterator[tuple[str, Any]]:
    with proxy(server) as (base, state):
        yield base, state


@pytest.fixture(autouse=True)
def _ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOS_LEDGER", str(tmp_path / "ledger.sqlite"))


def make(tmp_path: Path, base: str, gemma_extra: str = "", **kw: Any) -> Orchestrator:
    params = dict(
        base=base, read_timeout=10.0, deadline=20.0, retries=2, breaker=5, cooldown=30.0, extra=""
    )
    params.update(kw)
    text = default_config_path().read_text(encoding="utf-8")
    text = text.replace("[routing]", CLOUD_SECTION.format(**params) + "\n[routing]")
    text = text.replace('[skills.summarize]\nmodels = ["gemma3-270m", "smollm2-135m-instruct"]', "")
    text = text.replace('id = "gemma3-270m"\n', 'id = "gemma3-270m"\n' + gemma_extra)
    path = tmp_path / "oem.toml"
    path.write_text(text, encoding="utf-8")
    cfg, resolved = load_config(path)
    return Orchestrator(cfg, config_path=resolved, strict=True)


def test_generate_in_the_cloud_streams_and_is_accounted(tmp_path: Path, cloud_proxy: Any) -> None:
    base, state = cloud_proxy
    orch = make(tmp_path, base)
    try:
        events = list(
            orch.stream("generate", {"prompt": "Say hello.", "max_tokens": 8}, options=CLOUD)
        )
    finally:
        orch.close()
    result = events[-1].result
    assert result is not None and len(events) >= 2
    rec = result.record
    assert rec.tier.value == "cloud" and rec.model == "cloud-smol" and rec.backend == "openai"
    assert rec.tokens_out > 0 and rec.cost_cny >= 0.012
    assert "".join(e.delta for e in events if e.delta) == result.output.text
    assert state.bodies[-1]["stream"] is True and state.bodies[-1]["model"] == "cloud-smol"
    assert any("user choice: prefer cloud" in d.reason for d in rec.reasons)


def test_embeddings_from_the_cloud(tmp_path: Path, cloud_proxy: Any) -> None:
    base, _ = cloud_proxy
    orch = make(tmp_path, base)
    try:
        backend = orch.backend("openai")
        model = backend.load(orch.config.model("cloud-smol"), None)
        vectors = model.embed(["hello world", "bonjour"])
    finally:
        orch.close()
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 100


def test_api_key_comes_from_the_environment(
    tmp_path: Path, cloud_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = cloud_proxy
    orch = make(tmp_path, base, extra='api_key_env = "AIOS_TEST_CLOUD_KEY"', retries=0)
    try:
        monkeypatch.delenv("AIOS_TEST_CLOUD_KEY", raising=False)
        client = orch.backend("openai").client("test-cloud")
        with pytest.raises(CloudUnavailableError, match="AIOS_TEST_CLOUD_KEY is not set"):
            client.post_json("embeddings", {"input": "x"})
        monkeypatch.setenv("AIOS_TEST_CLOUD_KEY", "sk-test-123")
        client.post_json("embeddings", {"input": "x", "model": "cloud-smol"})
    finally:
        orch.close()
    assert state.headers[-1].get("Authorization") == "Bearer sk-test-123"
    assert "sk-test-123" not in (tmp_path / "oem.toml").read_text()


def test_closed_port_answers_on_device_and_says_so(tmp_path: Path) -> None:
    orch = make(tmp_path, f"http://127.0.0.1:{free_port()}/v1", retries=1)
    try:
        result = orch.invoke("generate", {"prompt": "Hello", "max_tokens": 4}, options=CLOUD)
    finally:
        orch.close()
    rec = result.record
    assert rec.tier.value == "device" and rec.model == "gemma3-270m"
    assert any("cloud failed (cloud_unavailable)" in d.reason for d in rec.reasons)


def test_503_is_retried_with_backoff(tmp_path: Path, cloud_proxy: Any) -> None:
    base, state = cloud_proxy
    state.mode, state.fail_times = "503", 2
    orch = make(tmp_path, base, retries=2)
    try:
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 4}, options=CLOUD)
    finally:
        orch.close()
    assert result.record.tier.value == "cloud"
    assert len(state.bodies) == 3  # two 503s, then success


@pytest.mark.parametrize(
    "mode, error", [("500", CloudResponseError), ("malformed", CloudResponseError)]
)
def test_server_errors_are_typed_not_retried_and_fall_back(
    tmp_path: Path, cloud_proxy: Any, mode: str, error: type
) -> None:
    base, state = cloud_proxy
    state.mode = mode
    orch = make(tmp_path, base, retries=2)
    try:
        client = orch.backend("openai").client("test-cloud")
        with pytest.raises(error):
            client.post_json("completions", {"prompt": "x", "model": "cloud-smol"})
        assert len(state.bodies) == 1, "non-retryable failures are not repeated"
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 4}, options=CLOUD)
    finally:
        orch.close()
    assert result.record.tier.value == "device"
    assert any("cloud failed (cloud_bad_response)" in d.reason for d in result.record.reasons)


def test_stream_cut_midway(tmp_path: Path, cloud_proxy: Any) -> None:
    base, state = cloud_proxy
    state.mode, state.cut_after = "cut", 3
    orch = make(tmp_path, base)
    try:
        # Streaming: the consumer already saw text, so the request fails typed, never "complete".
        events = orch.stream(
            "generate", {"prompt": "Count to twenty.", "max_tokens": 40}, options=CLOUD
        )
        seen = []
        with pytest.raises(CloudStreamCutError, match="stream"):
            for event in events:
                assert event.result is None, "a cut stream must not end with a result"
                seen.append(event.delta)
        # Not streaming: nothing was shown yet, so the device answers instead.
        result = orch.invoke(
            "generate", {"prompt": "Count to twenty.", "max_tokens": 8}, options=CLOUD
        )
    finally:
        orch.close()
    assert result.record.tier.value == "device"
    assert any("cloud_stream_cut" in d.reason for d in result.record.reasons)


def test_stream_dropped_before_its_first_event_is_resent_once(
    tmp_path: Path, cloud_proxy: Any
) -> None:
    base, state = cloud_proxy
    state.mode, state.fail_times = "drop_head", 1
    orch = make(tmp_path, base, retries=0)
    try:
        client = orch.backend("openai").client("test-cloud")
        body = {"prompt": "Once upon a time", "model": "cloud-smol", "max_tokens": 4}
        events = list(client.stream_events("completions", body))
        assert events and len(state.bodies) == 2, "one resend on a fresh connection"
        assert client.last_retries == 0, "a dropped connection is not a server retry"
        # Dropped twice: typed, and the endpoint's own retry budget (0 here) is honoured.
        state.mode, state.fail_times = "drop_head", 2
        with pytest.raises(CloudUnavailableError, match="connection dropped"):
            list(client.stream_events("completions", body))
        assert len(state.bodies) == 4
    finally:
        orch.close()


def test_stalled_server_fails_within_the_deadline(tmp_path: Path, cloud_proxy: Any) -> None:
    base, state = cloud_proxy
    state.mode = "stall"
    orch = make(tmp_path, base, read_timeout=1.0, deadline=2.0, retries=0)
    try:
        client = orch.backend("openai").client("test-cloud")
        t0 = time.monotonic()
        with pytest.raises(CloudTimeoutError):
            client.post_json("completions", {"prompt": "x", "model": "cloud-smol"})
        assert time.monotonic() - t0 < 2.5
        t0 = time.monotonic()
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 4}, options=CLOUD)
        assert result.record.tier.value == "device"
    finally:
        orch.close()


def test_circuit_breaker_opens_and_skips_the_cloud(tmp_path: Path) -> None:
    orch = make(tmp_path, f"http://127.0.0.1:{free_port()}/v1", retries=0, breaker=2, cooldown=60.0)
    try:
        for _ in range(2):
            orch.invoke("generate", {"prompt": "Hi", "max_tokens": 2}, options=CLOUD)
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 2}, options=CLOUD)
        explained = orch.explain("generate", {"prompt": "Hi"}, CLOUD)
    finally:
        orch.close()
    reasons = [d.reason for d in result.record.reasons if d.choice == "cloud-smol"]
    assert any("circuit breaker open" in r for r in reasons), result.record.reasons
    assert result.record.tier.value == "device"
    assert explained.tier.value == "device"


def test_server_killed_mid_stream(tmp_path: Path) -> None:
    with llama_server() as (base, proc):
        orch = make(tmp_path, base, retries=0)
        try:
            events = orch.stream(
                "generate", {"prompt": "Write a long story.", "max_tokens": 400}, options=CLOUD
            )
            first = next(events)
            assert first.delta
            proc.kill()
            with pytest.raises((CloudStreamCutError, CloudTimeoutError)):
                for event in events:
                    assert event.result is None
        finally:
            orch.close()


def test_offline_mode_keeps_everything_on_device(
    tmp_path: Path, cloud_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = cloud_proxy
    monkeypatch.setenv("AIOS_OFFLINE", "1")
    orch = make(tmp_path, base)
    try:
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 4}, options=CLOUD)
    finally:
        orch.close()
    assert result.record.tier.value == "device" and state.bodies == []
    assert any(d.reason.startswith("offline") for d in result.record.reasons)


def test_cancel_stops_a_cloud_stream(tmp_path: Path, cloud_proxy: Any) -> None:
    from aios import CancelledError

    base, _ = cloud_proxy
    orch = make(tmp_path, base)
    cancel = threading.Event()
    try:
        events = orch.stream(
            "generate",
            {"prompt": "Write a long story.", "max_tokens": 200},
            options=CLOUD,
            cancel=cancel,
        )
        next(events)
        cancel.set()
        with pytest.raises(CancelledError):
            list(events)
    finally:
        orch.close()


@pytest.mark.parametrize("threshold, escalated", [(-0.001, True), (-19.0, False)])
def test_cascade_escalates_only_when_the_device_is_unsure(
    tmp_path: Path, cloud_proxy: Any, threshold: float, escalated: bool
) -> None:
    base, state = cloud_proxy
    orch = make(tmp_path, base)
    orch.config = orch.config.model_copy(
        update={
            "routing": orch.config.routing.model_copy(
                update={"cascade": True, "cascade_min_logprob": threshold}
            )
        }
    )
    try:
        result = orch.invoke("generate", {"prompt": "The capital of France is", "max_tokens": 6})
    finally:
        orch.close()
    cascade = result.record.cascade
    assert cascade is not None and cascade["device_model"] == "gemma3-270m"
    assert cascade["device_mean_logprob"] is not None and cascade["device_mean_logprob"] < 0
    assert cascade["escalated"] is escalated and cascade["device_output"]["text"]
    assert result.record.tier.value == ("cloud" if escalated else "device")
    assert bool(state.bodies) is escalated


def test_cost_report_over_ledger_and_log(tmp_path: Path, cloud_proxy: Any) -> None:
    import json
    import os
    import subprocess
    import sys

    base, _ = cloud_proxy
    orch = make(tmp_path, base)
    try:
        orch.invoke("generate", {"prompt": "Hi", "max_tokens": 3}, options=CLOUD)
        orch.invoke("generate", {"prompt": "Hi", "max_tokens": 3})
        orch.invoke("generate", {"prompt": "Hi", "max_tokens": 3})
    finally:
        orch.close()
    env = {**os.environ, "AIOS_LOG_LEVEL": "warning"}
    proc = subprocess.run(
        [sys.executable, "-m", "aios.cli.main", "report", "cost", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["requests"] == 3 and rep["on_device"] == 2 and rep["in_cloud"] == 1
    assert rep["spent_cny"] >= 0.012 and rep["all_cloud_cny"] >= 3 * 0.012
    assert abs(rep["device_share"] - 2 / 3) < 1e-3


def test_device_out_of_memory_moves_the_request_to_the_cloud(
    tmp_path: Path, cloud_proxy: Any
) -> None:
    base, state = cloud_proxy
    orch = make(tmp_path, base)
    orch.governor._available = lambda: 50.0  # the phone is under memory pressure right now
    try:
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 3})
    finally:
        orch.close()
    rec = result.record
    assert rec.tier.value == "cloud" and state.bodies
    assert any("device memory (memory_budget)" in d.reason for d in rec.reasons)
    assert orch.governor.used_mb() == 0, "nothing half-loaded on the device"


def test_busy_device_model_moves_the_request_to_the_cloud(tmp_path: Path, cloud_proxy: Any) -> None:
    base, state = cloud_proxy
    orch = make(tmp_path, base, gemma_extra="max_queue = 0\n")
    try:
        holder = orch.stream("generate", {"prompt": "Once upon a time", "max_tokens": 8})
        next(holder)  # gemma is mid-answer, holding its only slot; its queue takes nobody
        result = orch.invoke("generate", {"prompt": "Hi", "max_tokens": 3})
        list(holder)
    finally:
        orch.close()
    rec = result.record
    assert rec.tier.value == "cloud" and rec.model == "cloud-smol" and state.bodies
    assert any("device busy (queue_full)" in d.reason for d in rec.reasons)
