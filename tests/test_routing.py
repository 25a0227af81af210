"""The routing policy: precedence, determinism, and privacy against a recording cloud server."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aios import Orchestrator
from aios.config.loader import load_config
from aios.config.schema import RoutingMode
from aios.plugins.default_generate import Generate
from aios.routing.policy import RequestOptions, RouteState, decide
from aios.types import DataClass, Tier

from .cloud_support import llama_server, proxy
from .conftest import SCRIPTED_CONFIG
from .doubles import ScriptedBackend, ScriptedPlugin


def config(tmp_path: Path, base: str = "http://127.0.0.1:9/v1", routing: str = "") -> Any:
    weights = tmp_path / "weights.gguf"
    weights.write_bytes(b"GGUF" + b"\0" * 16)
    text = textwrap.dedent(SCRIPTED_CONFIG.format(weights=weights))
    text = text.replace("http://127.0.0.1:9/v1", base)
    path = tmp_path / "oem.toml"
    path.write_text(text + routing, encoding="utf-8")
    return load_config(path)


def route_of(cfg: Any, opts: RequestOptions, state: RouteState) -> list[Tier]:
    return decide(cfg, Generate, opts, state).tiers


def test_precedence(tmp_path: Path) -> None:
    cfg, _ = config(tmp_path, routing="[routing]\ndaily_cloud_budget_cny = 1.0\n")
    free = RouteState()
    assert route_of(cfg, RequestOptions(), free) == [Tier.device, Tier.cloud]
    cloud_first = RequestOptions(mode=RoutingMode.prefer_cloud)
    assert route_of(cfg, cloud_first, free) == [Tier.cloud, Tier.device]
    # privacy beats the user's choice
    private = RequestOptions(
        mode=RoutingMode.prefer_cloud, data_classes=frozenset({DataClass.photos})
    )
    assert route_of(cfg, private, free) == [Tier.device]
    assert route_of(cfg, RequestOptions(mode=RoutingMode.prefer_cloud, sensitive=True), free) == [
        Tier.device
    ]
    # the user's choice beats availability and cost
    assert route_of(cfg, RequestOptions(mode=RoutingMode.local_only), free) == [Tier.device]
    # availability: offline
    assert route_of(cfg, cloud_first, RouteState(offline=True)) == [Tier.device]
    # cost: budget spent
    assert route_of(cfg, cloud_first, RouteState(cloud_spent_today_cny=1.0)) == [Tier.device]
    # difficulty, with prefer-local
    assert route_of(cfg, RequestOptions(), RouteState(difficulty=0.9)) == [Tier.cloud, Tier.device]
    assert route_of(cfg, RequestOptions(), RouteState(difficulty=0.1)) == [Tier.device, Tier.cloud]


def test_per_skill_mode_override(tmp_path: Path) -> None:
    cfg, _ = config(tmp_path, routing='[skills.generate]\nmode = "local_only"\n')
    assert route_of(cfg, RequestOptions(), RouteState()) == [Tier.device]
    # the request's own choice (the user's) still wins over the OEM's per-skill default
    assert (
        route_of(cfg, RequestOptions(mode=RoutingMode.prefer_cloud), RouteState())[0] is Tier.cloud
    )


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(list(RoutingMode)),
    sensitive=st.booleans(),
    classes=st.frozensets(st.sampled_from(list(DataClass))),
    offline=st.booleans(),
    spent=st.floats(0, 2),
    difficulty=st.one_of(st.none(), st.floats(0, 1)),
)
def test_decisions_are_deterministic_and_private_data_stays(
    tmp_path: Path,
    mode: Any,
    sensitive: bool,
    classes: Any,
    offline: bool,
    spent: float,
    difficulty: Any,
) -> None:
    cfg, _ = config(tmp_path)
    opts = RequestOptions(mode=mode, sensitive=sensitive, data_classes=classes)
    state = RouteState(offline=offline, cloud_spent_today_cny=spent, difficulty=difficulty)
    first, second = decide(cfg, Generate, opts, state), decide(cfg, Generate, opts, state)
    assert first.tiers == second.tiers and first.notes == second.notes
    private = sensitive or bool(classes & set(cfg.routing.private_data_classes))
    if private or offline or mode is RoutingMode.local_only:
        assert first.tiers == [Tier.device]


@pytest.fixture(scope="module")
def recording_cloud() -> Iterator[tuple[str, Any]]:
    with llama_server() as (base, _proc), proxy(base) as (proxied, state):
        yield proxied, state


@pytest.mark.model
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    mode=st.sampled_from(list(RoutingMode)),
    sensitive=st.booleans(),
    classes=st.frozensets(st.sampled_from(list(DataClass)), max_size=3),
    device_up=st.booleans(),
)
def test_a_recording_cloud_never_receives_private_payloads(
    tmp_path_factory: pytest.TempPathFactory,
    recording_cloud: tuple[str, Any],
    mode: Any,
    sensitive: bool,
    classes: Any,
    device_up: bool,
) -> None:
    base, state = recording_cloud
    cfg, path = config(tmp_path_factory.mktemp("p"), base=base)
    orch = Orchestrator(
        cfg,
        config_path=path,
        strict=True,
        ledger=False,
        extra_plugins=(("scripted", ScriptedPlugin()),),
    )
    ScriptedBackend.available = device_up  # with no device model, only the cloud could answer
    secret = f"SECRET-{uuid.uuid4().hex}"
    opts = RequestOptions(mode=mode, sensitive=sensitive, data_classes=classes)
    try:
        orch.invoke("generate", {"prompt": f"Remember {secret}", "max_tokens": 1}, options=opts)
    except Exception:
        pass  # refusing is fine; leaking is not
    finally:
        ScriptedBackend.available = True
        orch.close()
    leaked = any(secret in str(body) for body in state.bodies)
    private = sensitive or bool(classes & set(cfg.routing.private_data_classes))
    if private or mode is RoutingMode.local_only:
        assert not leaked
    elif mode is RoutingMode.prefer_cloud or not device_up:
        assert leaked, "a public request that prefers the cloud should reach it"
