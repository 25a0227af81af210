"""JSON-schema-constrained generation on the real models: llama.cpp on the device, and a real
llama_cpp.server as the cloud, behind the recording proxy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aios import (
    Capability,
    GenerationError,
    GenerationRequest,
    Orchestrator,
    Skill,
    SkillContext,
    TextGenerator,
    Token,
    hookimpl,
)
from aios.config.loader import default_config_path, load_config
from aios.config.schema import RoutingMode
from aios.errors import CloudResponseError
from aios.prompt import Prompt
from aios.routing.policy import RequestOptions
from aios.selection import Choice
from aios.structured import SchemaCache, gbnf, request_fields, schema_key

from .cloud_support import llama_server, proxy

pytestmark = pytest.mark.model

# -- schemas and the models that validate against them (jsonschema is not installed) -------
ROUTE_SCHEMA: dict[str, Any] = {
    "title": "Route",
    "type": "object",
    "properties": {
        "skill": {"type": "string", "enum": ["search", "summarize"]},
        "input": {
            "type": "object",
            "properties": {"query": {"type": "string", "maxLength": 60}},
            "required": ["query"],
            "additionalProperties": False,
        },
    },
    "required": ["skill", "input"],
    "additionalProperties": False,
}


class RouteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(max_length=60)


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skill: Literal["search", "summarize"]
    input: RouteInput


class SearchStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["search"]
    query: str = Field(max_length=40)


class SummarizeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["summarize"]
    # An enum, not ge/le: llama.cpp's converter ignores numeric bounds (the grammar would let
    # 1000000000000000 through, as it did here once), so bounds are for the caller to check.
    sentences: Literal[1, 2, 3]


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    goal: str = Field(max_length=40)
    steps: list[SearchStep | SummarizeStep] = Field(min_length=1, max_length=2)


ASK = "Find my photos of the beach from last summer."
COMPLETION_PROMPT = (
    f"Request: {ASK}\n"
    'Skills: "search" finds things, "summarize" shortens text.\n'
    "The JSON that routes the request:\n"
)
CHAT = (
    {"role": "system", "content": "You route requests to skills. Answer with JSON only."},
    {"role": "user", "content": f"{ASK} Skills: search, summarize."},
)


def joined(model: TextGenerator, request: GenerationRequest) -> tuple[str, str]:
    events = list(model.stream(request))
    text = "".join(e.text for e in events if isinstance(e, Token))
    return text, events[-1].finish_reason  # type: ignore[union-attr]


# -- the device: llama.cpp -------------------------------------------------------------------
@pytest.fixture(scope="module")
def device(reference: Orchestrator) -> dict[str, TextGenerator]:
    handles = {}
    for model_id in ("gemma3-270m", "smollm2-135m-instruct"):
        spec = reference.config.model(model_id)
        handle = reference.loaded_model(Choice(model=spec, backend="llama_cpp")).handle
        assert isinstance(handle, TextGenerator)
        handles[model_id] = handle
    return handles


@pytest.mark.parametrize(
    ("model_id", "request_input"),
    [
        ("gemma3-270m", {"prompt": COMPLETION_PROMPT}),  # create_completion
        ("smollm2-135m-instruct", {"messages": CHAT}),  # create_chat_completion
    ],
)
def test_device_output_matches_the_schema(
    device: dict[str, TextGenerator], model_id: str, request_input: dict[str, Any]
) -> None:
    request = GenerationRequest(
        **request_input, json_schema=ROUTE_SCHEMA, temperature=0.0, max_tokens=64
    )
    text, finish = joined(device[model_id], request)
    route = Route.model_validate(json.loads(text))
    assert finish == "stop" and route.input.query  # the grammar closed the value itself


def test_pydantic_schema_with_defs_and_anyof_converts_and_holds(
    device: dict[str, TextGenerator],
) -> None:
    schema = Plan.model_json_schema()
    assert "$defs" in schema and "anyOf" in schema["properties"]["steps"]["items"]
    assert schema["additionalProperties"] is False and "title" in schema  # both are fine
    # SmolLM2: a grammar costs llama.cpp a pass over the vocabulary per token, and gemma3's is
    # five times larger (~100 ms/token constrained on two cores, against ~30 for SmolLM2).
    request = GenerationRequest(
        messages=({"role": "user", "content": f"{ASK} Plan one or two steps, as JSON."},),
        json_schema=schema,
        max_tokens=120,
    )
    text, finish = joined(device["smollm2-135m-instruct"], request)
    plan = Plan.model_validate_json(text)
    assert finish == "stop" and 1 <= len(plan.steps) <= 2


def test_unconvertible_schema_is_a_typed_error(device: dict[str, TextGenerator]) -> None:
    for schema, problem in [
        ({"type": "decimal"}, "Unrecognized schema"),
        ({"properties": {"day": {"$ref": "https://example.com/day.json"}}}, "remote schemas"),
        ({"$ref": "#/$defs/Missing"}, "Missing"),
        ({"type": "string", "pattern": "^(?=a)b$"}, "pattern"),
    ]:
        request = GenerationRequest(prompt="x", json_schema=schema, max_tokens=8)
        with pytest.raises(GenerationError, match="cannot be turned into a llama.cpp grammar") as e:
            joined(device["gemma3-270m"], request)
        assert problem in str(e.value) and e.value.hint and "subset of JSON Schema" in e.value.hint


def test_grammar_llama_cpp_cannot_parse_is_refused_not_a_crash(
    device: dict[str, TextGenerator],
) -> None:
    # llama.cpp leaves a null sampler for a grammar it cannot parse, which would kill the
    # process mid-call; the backend parses it first.
    from aios.backends.default_llama_cpp import _import_llama_cpp, check_grammar

    llm = device["gemma3-270m"]._llm  # type: ignore[attr-defined]
    check_grammar(_import_llama_cpp(), llm, 'root ::= "{" space "}"\nspace ::= " "?')
    with pytest.raises(GenerationError, match="cannot parse the grammar"):
        check_grammar(_import_llama_cpp(), llm, "root ::= (")


def test_grammars_are_cached_per_schema_and_bounded() -> None:
    built: list[str] = []
    cache: SchemaCache[str] = SchemaCache(lambda key: built.append(key) or key, size=3)
    same = json.loads(json.dumps(ROUTE_SCHEMA))  # an equal schema, built again
    assert cache.get(ROUTE_SCHEMA) == cache.get(same) == schema_key(ROUTE_SCHEMA)
    assert len(built) == 1
    for n in range(5):
        cache.get({"const": n})
    assert len(cache) == 3 and len(built) == 6


def test_properties_are_generated_in_schema_order() -> None:
    # Property order is generation order ("reasoning" before "answer"): never sorted away.
    forward = {"type": "object", "properties": {"b": {"const": 1}, "a": {"const": 2}}}
    backward = {"type": "object", "properties": {"a": {"const": 2}, "b": {"const": 1}}}
    assert gbnf(forward) != gbnf(backward)
    root = gbnf(forward).split("root ::= ")[1].splitlines()[0]
    assert root.index("b-kv") < root.index("a-kv")


def test_schema_must_be_plain_json() -> None:
    with pytest.raises(ValidationError, match="json_schema is not plain JSON"):
        GenerationRequest(prompt="x", json_schema={"enum": {1, 2}})
    with pytest.raises(ValidationError, match="json_schema is not plain JSON"):
        GenerationRequest(prompt="x", json_schema={"maximum": float("nan")})


class RouteSkill(Skill):
    """What an agent does for its plan: ``ctx.generate(..., json_schema=...)``, then parse."""

    name = "route_request"
    description = "Route a request to a skill, as constrained JSON."
    Input = RouteInput
    Output = Route
    capabilities = frozenset({Capability.text_generation})

    def run(self, inp: Any, ctx: SkillContext) -> BaseModel:
        done = ctx.generate(
            Prompt(input=f"{COMPLETION_PROMPT.replace(ASK, inp.query)}", raw=True),
            json_schema=ROUTE_SCHEMA,
            max_tokens=64,
        )
        return Route.model_validate_json(done.text)


class RoutePlugin:
    @hookimpl
    def register_skills(self, register: Any) -> None:
        register(RouteSkill)


# -- the cloud: a real llama_cpp.server behind the recording proxy ----------------------------
MODES = ("json_schema", "json_object", "grammar", "none")
CLOUD_MODEL = """
[[models]]
id = "cloud-{mode}"
capabilities = ["text-generation"]
parameters_b = 175
quantization = "fp16"
format = "api"
tier = "cloud"
endpoint = "ep-{mode}"
remote_model = "cloud-smol"
memory_mb = 0
context_length = 2048
prompt_format = "chat-instruct"

[[cloud.endpoints]]
name = "ep-{mode}"
base_url = "{base}"
max_retries = 0
deadline_s = 30.0
structured_output = "{mode}"
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Orchestrator, Any]]:
    """One server, one recording proxy and one orchestrator with an endpoint per mode."""
    with llama_server() as (server, _proc), proxy(server) as (base, state):
        section = "".join(CLOUD_MODEL.format(mode=m, base=base) for m in MODES)
        text = default_config_path().read_text(encoding="utf-8")
        path = tmp_path_factory.mktemp("structured") / "oem.toml"
        path.write_text(text.replace("[routing]", section + "\n[routing]"), encoding="utf-8")
        cfg, resolved = load_config(path)
        orch = Orchestrator(
            cfg, config_path=resolved, strict=True, extra_plugins=(("route", RoutePlugin()),)
        )
        try:
            yield orch, state
        finally:
            orch.close()


def test_skills_ask_through_ctx_generate(cloud: tuple[Orchestrator, Any]) -> None:
    # The same orchestrator as the cloud tests below, so device models load once; gemma3 runs
    # this skill too, as the cloud's fallback further down.
    orch, _ = cloud
    result = orch.invoke("route_request", {"query": ASK}, model="smollm2-135m-instruct")
    assert isinstance(result.output, Route) and result.record.tokens_out > 0
    assert result.record.model == "smollm2-135m-instruct"


def cloud_model(orch: Orchestrator, mode: str) -> TextGenerator:
    backend = orch.backend("openai")
    assert backend is not None
    model = backend.load(orch.config.model(f"cloud-{mode}"), None)
    assert isinstance(model, TextGenerator)
    return model


@pytest.mark.parametrize(
    ("mode", "chat", "sent"),
    [
        ("json_object", True, "response_format"),
        ("json_object", False, "grammar"),  # completions have no response_format: a grammar
        ("grammar", True, "grammar"),
        ("grammar", False, "grammar"),
    ],
)
def test_cloud_output_matches_the_schema(
    cloud: tuple[Orchestrator, Any], mode: str, chat: bool, sent: str
) -> None:
    orch, state = cloud
    request_input: dict[str, Any] = {"messages": CHAT} if chat else {"prompt": COMPLETION_PROMPT}
    request = GenerationRequest(
        **request_input, json_schema=ROUTE_SCHEMA, max_tokens=64, stop=("\n\n",)
    )
    text, finish = joined(cloud_model(orch, mode), request)
    Route.model_validate_json(text)
    body = state.bodies[-1]
    assert finish == "stop" and "stop" not in body  # the constrained value ends the call
    if sent == "response_format":
        assert body["response_format"] == {"type": "json_object", "schema": ROUTE_SCHEMA}
        assert "grammar" not in body
    else:
        assert body["grammar"] == gbnf(ROUTE_SCHEMA) and "root ::=" in body["grammar"]
        assert "response_format" not in body


def test_cloud_default_mode_sends_the_openai_standard_body(
    cloud: tuple[Orchestrator, Any],
) -> None:
    # llama_cpp.server's response_format takes "text" and "json_object" only; it refuses the
    # OpenAI-standard body, answering HTTP 500 with its request-validation message. That is a
    # typed error at once: 500 is not retried, nothing hangs.
    orch, state = cloud
    before = len(state.bodies)
    request = GenerationRequest(messages=CHAT, json_schema=ROUTE_SCHEMA, max_tokens=64)
    t0 = time.monotonic()
    with pytest.raises(CloudResponseError, match="answered HTTP 500") as e:
        joined(cloud_model(orch, "json_schema"), request)
    assert time.monotonic() - t0 < 10 and "'text' or 'json_object'" in str(e.value)
    assert len(state.bodies) == before + 1
    assert state.bodies[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": ROUTE_SCHEMA, "strict": True},
    }


def test_refused_cloud_request_falls_back_to_the_device_still_constrained(
    cloud: tuple[Orchestrator, Any],
) -> None:
    orch, state = cloud
    before = len(state.bodies)
    result = orch.invoke(
        "route_request",
        {"query": ASK},
        model="cloud-json_schema",
        options=RequestOptions(mode=RoutingMode.prefer_cloud),
    )
    assert isinstance(result.output, Route)
    assert len(state.bodies) == before + 1 and "response_format" in state.bodies[-1]
    assert result.record.tier.value == "device"


def test_cloud_none_mode_sends_nothing_extra(cloud: tuple[Orchestrator, Any]) -> None:
    orch, state = cloud
    request = GenerationRequest(
        messages=CHAT, json_schema=ROUTE_SCHEMA, max_tokens=16, stop=("\n\n",)
    )
    text, _ = joined(cloud_model(orch, "none"), request)
    body = state.bodies[-1]
    assert text and "response_format" not in body and "grammar" not in body
    assert body["stop"] == ["\n\n"]  # unconstrained: the caller's stops still apply


def test_grammar_mode_without_llama_cpp_is_a_typed_cloud_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A device without llama-cpp-python cannot write the grammar; as a cloud error the request
    # can still fall back to the device tier. (None in sys.modules makes the import fail.)
    import sys

    from aios.errors import CloudUnavailableError

    for name in [m for m in sys.modules if m == "llama_cpp" or m.startswith("llama_cpp.")]:
        monkeypatch.setitem(sys.modules, name, None)
    fresh = {"type": "object", "properties": {"never_cached": {"type": "boolean"}}}
    with pytest.raises(CloudUnavailableError, match="llama-cpp-python is not installed"):
        request_fields("grammar", fresh, chat=True, endpoint="ep")
