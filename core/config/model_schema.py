"""Config sections of the model matrix: where a model's file comes from, what each model
is and does, and how prompts are formatted for it."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from aios.config.fields import (
    NAME_PATTERN,
    ModelFormat,
    Name,
    Strict,
)
from aios.types import Capability, Tier


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
