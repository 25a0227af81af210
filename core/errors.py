"""One error hierarchy for aios: every failure a user can see is an ``AIOSError``.

Each error carries a short ``code`` so the CLI and (later) the service can map it to an exit
status or HTTP status without string matching.
"""

from __future__ import annotations


class AIOSError(Exception):
    """Root of every error aios raises on purpose."""

    code = "aios_error"
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(AIOSError):
    """An OEM config file is unreadable or invalid; ``problems`` lists every finding."""

    code = "config_invalid"
    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"{source}: {p}" for p in problems)
        super().__init__(lines)


class PluginError(AIOSError):
    """A plugin failed to import or handed the core something invalid."""

    code = "plugin_error"


class UnknownSkillError(AIOSError):
    code = "unknown_skill"
    exit_code = 2


class InvalidInputError(AIOSError):
    """A request did not validate against the skill's input model."""

    code = "invalid_input"
    exit_code = 2

    def __init__(self, skill: str, problems: list[str]) -> None:
        self.skill = skill
        self.problems = problems
        super().__init__(f"invalid input for skill '{skill}': " + "; ".join(problems))


class ModelError(AIOSError):
    """A model file is missing, corrupt or cannot be loaded."""

    code = "model_error"


class NoModelAvailableError(AIOSError):
    """No model in the matrix can serve the request on this device."""

    code = "no_model_available"


class BackendUnavailableError(AIOSError):
    """A backend cannot run here; the message says exactly why."""

    code = "backend_unavailable"


class GenerationError(AIOSError):
    """Inference started but failed."""

    code = "generation_error"


class ContextLengthError(GenerationError):
    """The prompt does not fit the model's context window: the caller must send less."""

    code = "context_length_exceeded"


class CancelledError(AIOSError):
    """The caller cancelled the request."""

    code = "cancelled"


class CloudError(AIOSError):
    """A cloud endpoint could not serve the request; the subclass says how it failed."""

    code = "cloud_error"


class CloudUnavailableError(CloudError):
    """Unreachable, refused, offline, missing credentials, or its circuit breaker is open."""

    code = "cloud_unavailable"


class CloudTimeoutError(CloudError):
    """The endpoint did not answer within the configured deadline."""

    code = "cloud_timeout"


class CloudResponseError(CloudError):
    """The endpoint answered with an error status or a body that is not valid."""

    code = "cloud_bad_response"


class CloudStreamCutError(CloudError):
    """The stream ended before the endpoint said it was complete."""

    code = "cloud_stream_cut"


class PolicyError(AIOSError):
    """Routing policy forbids every way to serve the request (e.g. private data, cloud only)."""

    code = "policy_refused"


class PermissionRefusedError(AIOSError):
    """The calling app may not do this (e.g. index a folder outside the OEM's allowed roots)."""

    code = "permission_denied"


class IndexStoreError(AIOSError):
    """The on-device search index cannot be opened or written as asked (version, model mix)."""

    code = "index_store_error"


class DeliveryError(AIOSError):
    """A model download failed: server error, cut beyond retries, sha256 mismatch, no disk."""

    code = "delivery_error"


class PlanError(AIOSError):
    """An agent could not make a valid plan: the planner's output broke the skills' schemas,
    named a skill the agent may not call, or no planner understood the request."""

    code = "plan_invalid"

    def __init__(self, agent: str, problems: list[str]) -> None:
        self.agent = agent
        self.problems = problems
        super().__init__(f"agent '{agent}' has no valid plan: " + "; ".join(problems))
