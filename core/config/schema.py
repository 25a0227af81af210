"""The OEM config: one pydantic root model, every field described and bounded.

The JSON Schema printed by ``aios config schema`` is generated from these classes, so the
descriptions here are the config author's documentation.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aios.types import Capability, DataClass, Priority, Tier

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="Lower-case identifier.")]
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]{0,127}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SocVendor(StrEnum):
    qualcomm = "qualcomm"
    mediatek = "mediatek"
    samsung = "samsung"
    google = "google"
    unisoc = "unisoc"
    hisilicon = "hisilicon"
    generic = "generic"


class NpuKind(StrEnum):
    none = "none"
    hexagon = "hexagon"  # Qualcomm Hexagon HTP, reached through QNN
    mediatek_apu = "mediatek-apu"  # MediaTek APU, reached through NeuroPilot / LiteRT
    other = "other"


class ModelFormat(StrEnum):
    gguf = "gguf"
    onnx = "onnx"
    tflite = "tflite"
    api = "api"  # served by a cloud endpoint; no file on the device


class OEMInfo(Strict):
    id: Name = Field(description="Short identifier of the phone maker, e.g. 'acme'.")
    name: str = Field(min_length=1, max_length=120, description="Display name of the OEM.")
    contact: str | None = Field(
        default=None, max_length=200, description="Where integrators report problems."
    )


class DeviceProfile(Strict):
    name: Name = Field(description="Profile name that models and `device.profile` refer to.")
    ram_mb: int = Field(ge=1024, le=262_144, description="Physical RAM of the device in MiB.")
    soc_vendor: SocVendor = Field(description="SoC vendor.")
    soc_model: str = Field(
        min_length=1, max_length=64, description="SoC model, e.g. 'SM8650' or 'Dimensity 7300'."
    )
    npu: NpuKind = Field(default=NpuKind.none, description="Kind of NPU on the SoC.")
    os_reserve_mb: int = Field(
        default=4096,
        ge=0,
        le=65_536,
        description="Memory the OS itself needs (Android ≈ 4 GB); never given to models.",
    )
    keepalive_reserve_mb: int = Field(
        default=6144,
        ge=0,
        le=65_536,
        description=(
            "Memory kept for keep-alive apps (≈ 6 GB on a 16 GB phone); never given to models."
        ),
    )
    min_free_mb: int = Field(
        default=256,
        ge=0,
        le=65_536,
        description=(
            "Free memory (MemAvailable) the system always keeps: below it, aios unloads idle "
            "models (least recently used first) to give memory back, as apps must on Android's "
            "onTrimMemory."
        ),
    )
    backends: list[Name] = Field(
        min_length=1,
        max_length=16,
        description=(
            "Backends enabled on this device, most preferred first. A model runs on the first "
            "backend of its own list that is also enabled here and available."
        ),
    )

    @property
    def model_budget_mb(self) -> int:
        return self.ram_mb - self.os_reserve_mb - self.keepalive_reserve_mb

    @model_validator(mode="after")
    def _budget_positive(self) -> DeviceProfile:
        if self.model_budget_mb <= 0:
            raise ValueError(
                f"ram_mb ({self.ram_mb}) minus os_reserve_mb ({self.os_reserve_mb}) minus "
                f"keepalive_reserve_mb ({self.keepalive_reserve_mb}) leaves no memory for models"
            )
        if len(set(self.backends)) != len(self.backends):
            raise ValueError("backends lists a backend twice")
        return self


class ModelSource(Strict):
    """Where the weights of a device model come from: exactly one way must be given."""

    path: str | None = Field(
        default=None,
        max_length=4096,
        description="A file path; relative paths are taken from the config file's folder.",
    )
    package: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="An installed Python package (top-level import name) that holds the file.",
    )
    file: str | None = Field(
        default=None,
        max_length=512,
        description=(
            "File name inside `package`, or the name the assembler or builder writes, or a "
            "download from `url` is stored under, in the model dir."
        ),
    )
    builder: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description=(
            "A registered model builder that writes `file` into the model dir, once, with "
            "`aios models build NAME` (e.g. a PyTorch checkpoint exported to ONNX)."
        ),
    )
    assembler: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description=(
            "Name of a function in `package` that writes the model file to a path it is given "
            "(for weights split across several packages). Runs once; the result is cached."
        ),
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Expected sha256 of the model file, checked once when it is first prepared.",
    )
    url: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^\S+$",
        description=(
            "Where the OEM model server serves the file (http or https; a relative URL is "
            "resolved against `delivery.base_url`). `aios models pull ID` downloads it into the "
            "model dir as `file`, resumably, and installs it only once `sha256` matches."
        ),
    )
    size_bytes: int | None = Field(
        default=None,
        gt=0,
        le=1 << 40,
        description=(
            "Size of the file at `url`, in bytes: shown before the download and used to check "
            "free disk space before asking the server (default: the server's Content-Length)."
        ),
    )

    @model_validator(mode="after")
    def _one_way(self) -> ModelSource:
        ways = [w for w in ("path", "package", "builder", "url") if getattr(self, w)]
        if len(ways) != 1:
            raise ValueError(
                "give exactly one of `path`, `package` with `file`, `builder` with `file`, or "
                "`url` with `file` and `sha256`" + (f" (got {', '.join(ways)})" if ways else "")
            )
        if self.path and (self.file or self.assembler):
            raise ValueError("`path` takes no `file` or `assembler`")
        if self.url:
            if not self.file or not self.sha256:
                raise ValueError(
                    "`url` needs `file` (the name it is stored under in the model dir) and "
                    "`sha256` (a download is installed only once it matches)"
                )
            if "/" in self.file or "\\" in self.file or self.file in (".", ".."):
                raise ValueError(f"`file` must be a plain file name with `url`, not {self.file!r}")
            if self.assembler:
                raise ValueError("`assembler` goes with `package`, not `url`")
            scheme = self.url.split(":", 1)[0].lower() if "://" in self.url else None
            if scheme is not None and scheme not in ("http", "https"):
                raise ValueError(f"`url` must be http or https, not {scheme}")
        elif self.size_bytes is not None:
            raise ValueError("`size_bytes` goes with `url`")
        if self.package and not self.file:
            raise ValueError("`package` needs `file` (the file name inside the package)")
        if self.builder:
            if not self.file:
                raise ValueError("`builder` needs `file` (the file it writes into the model dir)")
            if self.assembler:
                raise ValueError("`assembler` goes with `package`, not `builder`")
        return self


class ModelSpec(Strict):
    id: Name = Field(description="Model id used in routing, records and the API.")
    family: str = Field(
        default="generic",
        pattern=NAME_PATTERN,
        description="Model family, e.g. 'gemma3' or 'smollm2' (informational, used in logs).",
    )
    capabilities: list[Capability] = Field(
        min_length=1, max_length=8, description="What the model can do."
    )
    parameters_b: float = Field(
        gt=0, le=2000, description="Parameter count in billions (0.27 for a 270M model)."
    )
    quantization: str = Field(
        pattern=r"^[a-z0-9_]{1,16}$",
        description="Weight quantization, e.g. 'q4_k_m', 'q4_1', 'int8', 'fp16'.",
    )
    format: ModelFormat = Field(description="Weight format; `api` for cloud models.")
    tier: Tier = Field(description="`device` runs on the phone; `cloud` on an endpoint.")
    source: ModelSource | None = Field(
        default=None, description="Where the weights come from (device models only)."
    )
    endpoint: Name | None = Field(
        default=None, description="Name of a `[[cloud.endpoints]]` entry (cloud models only)."
    )
    remote_model: str | None = Field(
        default=None,
        max_length=200,
        description="Model name the cloud endpoint expects (defaults to `id`).",
    )
    memory_mb: int = Field(
        ge=0,
        le=262_144,
        description=(
            "Estimated resident memory when loaded: weights + KV cache for `context_length` + "
            "runtime overhead, in MiB. 0 for cloud models."
        ),
    )
    context_length: int = Field(
        ge=128, le=1_048_576, description="Context window the model is loaded with, in tokens."
    )
    backends: list[Name] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "Backends that may run this model, most preferred first "
            "(cloud models default to the OpenAI-compatible 'openai' backend)."
        ),
    )
    profiles: list[Name] = Field(
        default_factory=list,
        max_length=64,
        description="Device profiles allowed to run it; empty means every profile.",
    )
    prompt_format: Name | None = Field(
        default=None,
        description="Name of a `[prompt_formats.*]` entry; required for text generation.",
    )
    threads: int | None = Field(
        default=None, ge=1, le=64, description="CPU threads for inference (default: all cores)."
    )
    keep_alive_s: float | None = Field(
        default=None,
        gt=0,
        le=86_400 * 7,
        description="Unload after this many idle seconds (default: stay until evicted).",
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description=(
            "Calls that may run on the loaded model at once (default and ceiling: what its "
            "backend supports; llama.cpp runs one call per loaded model)."
        ),
    )
    max_queue: int = Field(
        default=32,
        ge=0,
        le=4096,
        description=(
            "Calls that may wait for the model; beyond it a call is refused (queue_full) and "
            "goes to the other tier when policy allows."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _cloud_backend_default(cls, data: Any) -> Any:
        # Cloud models are served by the OpenAI-compatible backend unless the OEM names another.
        if isinstance(data, dict) and data.get("tier") == "cloud" and not data.get("backends"):
            return {**data, "backends": ["openai"]}
        return data

    @model_validator(mode="after")
    def _tier_consistent(self) -> ModelSpec:
        if self.tier is Tier.device:
            if self.format is ModelFormat.api:
                raise ValueError("a device model cannot have format 'api'")
            if self.source is None:
                raise ValueError("a device model needs a `source`")
            if not self.backends:
                raise ValueError("a device model needs at least one backend")
            if self.memory_mb <= 0:
                raise ValueError("a device model needs memory_mb > 0")
            if self.endpoint:
                raise ValueError("`endpoint` is only for cloud models")
        else:
            if self.format is not ModelFormat.api:
                raise ValueError("a cloud model must have format 'api'")
            if not self.endpoint:
                raise ValueError("a cloud model needs an `endpoint`")
            if self.source is not None:
                raise ValueError("a cloud model has no `source`")
        if Capability.text_generation in self.capabilities and self.prompt_format is None:
            raise ValueError("a text-generation model needs a `prompt_format`")
        return self


class CloudEndpoint(Strict):
    name: Name = Field(description="Endpoint name that cloud models refer to.")
    base_url: str = Field(
        pattern=r"^https?://[^\s]+$",
        max_length=500,
        description="Base URL of an OpenAI-compatible API, e.g. 'https://llm.example.com/v1'.",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="Environment variable that holds the API key; keys never live in the config.",
    )
    connect_timeout_s: float = Field(default=3.0, gt=0, le=60, description="Connect deadline.")
    read_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Longest wait for the next bytes of a response."
    )
    deadline_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Whole-request deadline, retries included; past it the call fails typed.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of idempotent failures, with backoff."
    )
    backoff_s: float = Field(
        default=0.25, ge=0, le=30, description="First retry delay; doubles per retry, plus jitter."
    )
    breaker_failures: int = Field(
        default=5, ge=1, le=1000, description="Consecutive failures that open the circuit breaker."
    )
    breaker_cooldown_s: float = Field(
        default=30.0, gt=0, le=3600, description="How long an open breaker refuses calls."
    )
    cost_per_call_cny: float = Field(
        default=0.012, ge=0, le=100, description="Accounted cost of one call, in CNY."
    )
    price_per_1k_input_cny: float = Field(
        default=0.0, ge=0, le=100, description="Accounted cost per 1,000 prompt tokens, in CNY."
    )
    price_per_1k_output_cny: float = Field(
        default=0.0, ge=0, le=100, description="Accounted cost per 1,000 generated tokens, in CNY."
    )
    structured_output: Literal["json_schema", "json_object", "grammar", "none"] = Field(
        default="json_schema",
        description="How this endpoint takes a JSON schema to constrain its output: "
        "'json_schema' = OpenAI/vLLM standard response_format "
        '{"type": "json_schema", "json_schema": {"name", "schema", "strict": true}}; '
        "'json_object' = llama.cpp server / Anyscale style response_format "
        '{"type": "json_object", "schema": ...} (chat only; completions send a grammar '
        "when llama-cpp-python is installed here, else nothing); "
        "'grammar' = a GBNF grammar in a `grammar` field (llama.cpp server), converted on "
        "this device by llama-cpp-python; "
        "'none' = the endpoint cannot constrain: nothing is sent and the caller validates.",
    )

    def call_cost(self, tokens_in: int, tokens_out: int) -> float:
        return (
            self.cost_per_call_cny
            + tokens_in / 1000 * self.price_per_1k_input_cny
            + tokens_out / 1000 * self.price_per_1k_output_cny
        )


class CloudConfig(Strict):
    endpoints: list[CloudEndpoint] = Field(
        default_factory=list, max_length=32, description="OpenAI-compatible cloud endpoints."
    )


class RoutingMode(StrEnum):
    local_only = "local_only"
    prefer_local = "prefer_local"
    prefer_cloud = "prefer_cloud"


class RoutingPolicy(Strict):
    mode: RoutingMode = Field(
        default=RoutingMode.prefer_local,
        description="Default user choice: local only, prefer local, or prefer cloud.",
    )
    private_data_classes: list[DataClass] = Field(
        default_factory=lambda: [
            DataClass.photos,
            DataClass.contacts,
            DataClass.messages,
            DataClass.health,
            DataClass.location,
        ],
        description="Data classes that never leave the device.",
    )
    daily_cloud_budget_cny: float = Field(
        default=0.5, ge=0, le=10_000, description="Cloud spend allowed per device per day."
    )
    cascade: bool = Field(
        default=False, description="Answer on device first; escalate when confidence is low."
    )
    cascade_min_logprob: float = Field(
        default=-1.5,
        ge=-20,
        le=0,
        description="Mean token log-probability below which a cascade escalates to the cloud.",
    )
    difficulty_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Difficulty score above which the cloud is preferred."
    )
    difficulty_router: str | None = Field(
        default=None, max_length=4096, description="Path to a fitted difficulty-router artifact."
    )


class PromptStyle(StrEnum):
    completion = "completion"  # base models: one text, continued by the model
    chat = "chat"  # instruct models: messages rendered by the model's own chat template


class PromptFormat(Strict):
    style: PromptStyle = Field(description="`completion` for base models, `chat` for instruct.")
    template: str = Field(
        min_length=1,
        max_length=4000,
        description=(
            "For `completion`: the whole prompt. For `chat`: the user message. Placeholders: "
            "{instruction}, {input_label}, {input}, {answer_label}."
        ),
    )
    system: str | None = Field(
        default=None, max_length=4000, description="System message (`chat` only)."
    )
    stop: list[str] = Field(default_factory=list, max_length=8, description="Extra stop sequences.")

    @model_validator(mode="after")
    def _placeholders(self) -> PromptFormat:
        allowed = {"instruction", "input_label", "input", "answer_label"}
        used = set(re.findall(r"{(\w*)}", self.template))
        unknown = used - allowed
        if unknown:
            raise ValueError(f"template uses unknown placeholder(s) {sorted(unknown)}")
        if "input" not in used:
            raise ValueError("template must contain {input}")
        if self.system and self.style is PromptStyle.completion:
            raise ValueError("`system` is only for chat prompt formats")
        return self


class SkillSettings(Strict):
    enabled: bool = Field(default=True, description="Whether the skill is offered at all.")
    models: list[Name] = Field(
        default_factory=list,
        max_length=16,
        description="Models to try for this skill, most preferred first (default: matrix order).",
    )
    mode: RoutingMode | None = Field(
        default=None, description="Overrides routing.mode for this skill."
    )
    # Agents only: the OEM may tighten (never widen) what an agent plugin declares.
    max_steps: int | None = Field(
        default=None, ge=1, le=16, description="Agents: most steps a plan may have."
    )
    timeout_s: float | None = Field(
        default=None, gt=0, le=3600, description="Agents: the whole plan's deadline, in seconds."
    )
    allowed_skills: list[Name] | None = Field(
        default=None,
        max_length=64,
        description="Agents: the skills it may call are narrowed to this list.",
    )


class PluginSettings(Strict):
    allow: list[str] | None = Field(
        default=None,
        max_length=256,
        description="If set, only these third-party plugins (entry-point names) are loaded.",
    )
    block: list[str] = Field(
        default_factory=list, max_length=256, description="Third-party plugins never loaded."
    )
    autoload: bool = Field(
        default=True, description="Discover third-party plugins through the `aios` entry points."
    )


class DeviceSettings(Strict):
    profile: Name = Field(description="The device profile this device runs as.")


ZonePattern = Annotated[str, Field(min_length=1, max_length=64)]


class DevicePolicy(Strict):
    """How live device state (temperature, battery, network) steers routing and power mode.

    Temperatures are the hottest of the thermal zones read (all zones unless `thermal_zones`
    picks some), so the defaults are on the SoC scale; a config that reads a skin sensor
    should lower them (about 41 and 45 °C).
    """

    enabled: bool = Field(
        default=True,
        description=(
            "Let temperature, battery and network steer routing and power mode. Memory is "
            "read for the memory governor either way."
        ),
    )
    hot_c: float = Field(
        default=80.0,
        ge=20,
        le=150,
        description="At or above this temperature (°C): smaller device models first, power saver.",
    )
    critical_c: float = Field(
        default=95.0,
        ge=20,
        le=150,
        description=(
            "At or above this temperature (°C): the cloud first when privacy and the user's "
            "choice allow, else the smallest device model; power saver."
        ),
    )
    low_battery_pct: float = Field(
        default=20.0,
        ge=0,
        le=100,
        description="Below this charge (%) and not plugged in: smaller models first, power saver.",
    )
    critical_battery_pct: float = Field(
        default=10.0,
        ge=0,
        le=100,
        description=(
            "Below this charge (%) and not plugged in: the cloud first when privacy and the "
            "user's choice allow, else smaller models; power saver."
        ),
    )
    thermal_zones: list[ZonePattern] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Thermal zone types to read, as shell patterns (e.g. ['cpu*', 'skin-therm']); "
            "empty reads every zone."
        ),
    )
    cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="How long one device-state snapshot is reused before sensors are read again.",
    )
    probe_network: bool = Field(
        default=True,
        description=(
            "Check that the cloud endpoints' hosts are reachable (a TCP connect, in the "
            "background); when none is, requests stay on the device as if offline."
        ),
    )
    network_timeout_s: float = Field(
        default=0.5, gt=0, le=10, description="Connect deadline of one reachability check."
    )
    network_cache_s: float = Field(
        default=5.0, ge=0.5, le=300, description="How long a reachability result is reused."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DevicePolicy:
        if self.critical_c <= self.hot_c:
            raise ValueError(f"critical_c ({self.critical_c}) must be above hot_c ({self.hot_c})")
        if self.critical_battery_pct > self.low_battery_pct:
            raise ValueError(
                f"critical_battery_pct ({self.critical_battery_pct}) must not be above "
                f"low_battery_pct ({self.low_battery_pct})"
            )
        return self


class SchedulingSettings(Strict):
    queue_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest a call waits in a model's queue before failing (queue_timeout).",
    )
    background_aging_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "A background call that has waited this long is served as if it were foreground, "
            "so background work is never starved."
        ),
    )


TOKEN_SHA256_PATTERN = r"^[0-9a-f]{64}$"
SKILL_PATTERN = r"^(\*|[a-z][a-z0-9_-]{0,63})$"


class AppSpec(Strict):
    """An app allowed to call the service (`aios serve`), and what it may do."""

    id: Name = Field(description="App id, shown in records, audit logs and metrics.")
    token_sha256: str = Field(
        pattern=TOKEN_SHA256_PATTERN,
        description=(
            "sha256 (hex) of the app's bearer token; the token itself never lives in a config. "
            "`aios apps add NAME` makes one, or: "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"` then '
            "`printf %s TOKEN | sha256sum`."
        ),
    )
    skills: list[Annotated[str, Field(pattern=SKILL_PATTERN)]] = Field(
        min_length=1,
        max_length=256,
        description='Skills the app may call; `["*"]` allows every skill.',
    )
    data_classes: list[DataClass] = Field(
        default_factory=lambda: [DataClass.text],
        max_length=16,
        description="Data classes the app may send: a skill's data classes must all be here.",
    )
    priority: Priority = Field(
        default=Priority.foreground,
        description=(
            "The app's default priority and the highest it may ask for; a request may lower it "
            "with the header `X-AIOS-Priority: background`."
        ),
    )
    requests_per_minute: int = Field(
        default=120,
        ge=1,
        le=100_000,
        description="Token-bucket quota (burst of the same size); over it a call gets 429.",
    )
    max_concurrent: int = Field(
        default=4, ge=1, le=1024, description="Calls the app may have running at once."
    )


class ServiceSettings(Strict):
    """The system service `aios serve`: where it listens and how it protects itself."""

    host: str = Field(
        default="127.0.0.1",
        pattern=r"^[0-9a-zA-Z.:\[\]-]{1,255}$",
        description="TCP address to listen on (loopback by default; apps on the device only).",
    )
    port: int = Field(default=8765, ge=0, le=65_535, description="TCP port; 0 picks a free one.")
    socket: str | None = Field(
        default=None,
        max_length=4096,
        description="Unix domain socket path (default: $AIOS_HOME/aios.sock).",
    )
    socket_mode: str = Field(
        default="0660",
        pattern=r"^0?[0-7]{3}$",
        description="File mode of the socket, set before it listens: who may connect.",
    )
    apps_file: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "Apps file written by `aios apps add` (default: $AIOS_HOME/apps.toml); merged with "
            "`[[apps]]`, the config winning on a clash of ids."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=1_073_741_824,
        description="Largest request body; a bigger one gets 413 before it is read whole.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "Longest wait for the next piece of a request body; a client that stalls mid-body "
            "(slowloris) gets 408 and frees its slot."
        ),
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        le=65_536,
        description=(
            "Most connections open at once; one more gets 503 and is closed, so apps that "
            "hoard idle connections cannot use up the service's file descriptors."
        ),
    )
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "Longest wait for a whole request head after a connection opens (or after its "
            "first byte following a keep-alive pause); a slower client gets 408."
        ),
    )
    keep_alive_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How long an idle keep-alive connection stays open between requests.",
    )
    shutdown_grace_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description=(
            "On SIGTERM/SIGINT, how long in-flight requests may run before they are cancelled."
        ),
    )


class StorageSettings(Strict):
    model_dir: str | None = Field(
        default=None,
        max_length=4096,
        description="Where prepared model files are cached (default: $AIOS_HOME/models).",
    )


class DeliverySettings(Strict):
    """Downloading models that are not in the system image from the OEM model server."""

    base_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="The OEM model server; relative model `source.url`s are resolved against it.",
    )
    connect_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Longest wait to connect to the model server."
    )
    read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Longest wait for the next bytes of a download before it counts as cut.",
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        le=100,
        description=(
            "Attempts in a row that may fail (connection cut, timeout, server error) before a "
            "download gives up; each resumes from the bytes already on disk, and an attempt "
            "that made progress resets the count."
        ),
    )
    retry_backoff_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="Wait before the first retry; it doubles on each failure in a row.",
    )
    min_free_disk_mb: int = Field(
        default=512,
        ge=0,
        le=1 << 30,
        description=(
            "Free space that must remain in the model dir after a download, in MiB; a download "
            "that would leave less is refused before any byte is written."
        ),
    )
    auto_download: bool = Field(
        default=False,
        description=(
            "Download a model on its first request (the request waits). Off: the request fails "
            "saying `aios models pull ID` (or the service) must download it first."
        ),
    )


class IndexSettings(Strict):
    """The on-device index that the search skill reads and `aios index add` fills."""

    dir: str | None = Field(
        default=None,
        max_length=4096,
        description="Folder of the per-user index databases (default: $AIOS_HOME/index).",
    )
    max_document_mb: float = Field(
        default=20, gt=0, le=1024, description="Larger documents are skipped, with the reason."
    )
    max_photo_mb: float = Field(
        default=50, gt=0, le=1024, description="Larger photos are skipped, with the reason."
    )
    photo_tags: int = Field(
        default=5, ge=0, le=20, description="Image-model labels kept per photo (0: no tagging)."
    )
    min_tag_score: float = Field(
        default=0.05, ge=0, le=1, description="Labels scoring below this are not kept."
    )
    app_roots: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        default_factory=list,
        max_length=64,
        description="Folders (with their subfolders) that apps may index through the service; "
        "relative ones are relative to this file. Empty: only the device itself (`aios index "
        "add`) indexes, and apps' index requests are refused.",
    )


class HtpPerformanceMode(StrEnum):
    """QNN HTP power/performance votes, as onnxruntime's QNN execution provider names them."""

    burst = "burst"
    sustained_high_performance = "sustained_high_performance"
    high_performance = "high_performance"
    balanced = "balanced"
    low_balanced = "low_balanced"
    high_power_saver = "high_power_saver"
    power_saver = "power_saver"
    low_power_saver = "low_power_saver"
    extreme_power_saver = "extreme_power_saver"
    default = "default"


DimName = Annotated[str, Field(min_length=1, max_length=128)]
DimValue = Annotated[int, Field(ge=1, le=65_536)]


class QnnSettings(Strict):
    """Session options of the `qnn` backend (onnxruntime-qnn)."""

    backend: Literal["htp", "gpu", "cpu"] = Field(
        default="htp",
        description=(
            "QNN backend library: `htp` (Hexagon NPU; the x86_64 wheel runs it as a simulator), "
            "`gpu` (Adreno), `cpu` (QNN's reference CPU backend, not in the PyPI wheel)."
        ),
    )
    htp_performance_mode: HtpPerformanceMode = Field(
        default=HtpPerformanceMode.balanced,
        description=(
            "HTP performance mode of a session; a call runs with the mode mapped from the "
            "model's power_mode (performance: burst, balanced, power_saver) when one is set."
        ),
    )
    soc_model: int | None = Field(
        default=None,
        ge=0,
        le=9999,
        description=(
            "SoC id from QNN's SoC table (e.g. 57 for SM8650, 43 for SM8550), not the marketing "
            "name; required by `fp16`. An id QNN does not know fails every load."
        ),
    )
    fp16: bool = Field(
        default=False,
        description="Run float32 models at fp16 precision on the HTP; needs `soc_model`.",
    )
    graph_optimization: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description=(
            "HTP graph finalization optimization mode, 0-3: higher compiles longer for a faster "
            "graph (default: QNN's own)."
        ),
    )
    context_cache: bool = Field(
        default=True,
        description=(
            "Keep each compiled QNN context (an EP context model) on disk so later loads skip "
            "compilation."
        ),
    )
    cache_dir: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^[~/]",
        description="Folder for compiled contexts (default: $AIOS_HOME/qnn); absolute or ~/...",
    )
    static_shapes: dict[DimName, DimValue] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Values for named dynamic input dimensions, e.g. {batch = 1, sequence = 128}: the "
            "HTP needs static shapes, so QNN leaves nodes with dynamic shapes to the CPU."
        ),
    )
    dynamic_dim_default: DimValue | None = Field(
        default=1,
        description=(
            "Value for any named dynamic dimension not in `static_shapes` (batch-like dims); "
            "null leaves them dynamic."
        ),
    )
    cpu_fallback: bool = Field(
        default=True,
        description=(
            "Run nodes QNN cannot take on the CPU; false fails such a load instead. A load where "
            "QNN takes no node at all always fails."
        ),
    )

    @model_validator(mode="after")
    def _fp16_needs_soc(self) -> QnnSettings:
        if self.fp16 and self.soc_model is None:
            raise ValueError("`fp16` needs `soc_model` (QNN refuses fp16 precision without it)")
        return self


class BackendOptions(Strict):
    qnn: QnnSettings = Field(
        default_factory=QnnSettings, description="Qualcomm NPU backend `qnn` (onnxruntime-qnn)."
    )


class OEMConfig(Strict):
    """Root of an OEM config file."""

    schema_version: Literal[1] = Field(description="Config format version; currently 1.")
    oem: OEMInfo = Field(description="Who ships this config.")
    device: DeviceSettings = Field(description="Which profile this device runs as.")
    profiles: list[DeviceProfile] = Field(
        min_length=1, max_length=64, description="Device profiles this config covers."
    )
    models: list[ModelSpec] = Field(min_length=1, max_length=256, description="The model matrix.")
    prompt_formats: dict[Name, PromptFormat] = Field(
        default_factory=dict,
        max_length=64,
        description="Prompt formats by name, per model family.",
    )
    cloud: CloudConfig = Field(default_factory=CloudConfig, description="Cloud tier endpoints.")
    routing: RoutingPolicy = Field(
        default_factory=RoutingPolicy, description="Device/cloud routing and privacy policy."
    )
    skills: dict[Name, SkillSettings] = Field(
        default_factory=dict,
        max_length=256,
        description="Per-skill settings and overrides, by skill name.",
    )
    plugins: PluginSettings = Field(
        default_factory=PluginSettings, description="Which third-party plugins load."
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Where aios keeps files."
    )
    index: IndexSettings = Field(
        default_factory=IndexSettings, description="The on-device search index."
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings,
        description="Downloading models from the OEM model server (`source.url`).",
    )
    scheduling: SchedulingSettings = Field(
        default_factory=SchedulingSettings,
        description="How calls queue for loaded models (foreground before background).",
    )
    backend_options: BackendOptions = Field(
        default_factory=BackendOptions, description="Runtime options per backend, by name."
    )
    device_policy: DevicePolicy = Field(
        default_factory=DevicePolicy,
        description="How temperature, battery and network steer routing and power mode.",
    )
    service: ServiceSettings = Field(
        default_factory=ServiceSettings, description="The system service `aios serve`."
    )
    apps: list[AppSpec] = Field(
        default_factory=list,
        max_length=1024,
        description="Apps allowed to call the service, with their permissions and quotas.",
    )

    def profile(self, name: str | None = None) -> DeviceProfile:
        wanted = name or self.device.profile
        for p in self.profiles:
            if p.name == wanted:
                return p
        raise KeyError(wanted)

    def model(self, model_id: str) -> ModelSpec:
        for m in self.models:
            if m.id == model_id:
                return m
        raise KeyError(model_id)
