"""aios: the on-device AI layer phone makers build on.

The public API is what this module exports; everything else is internal.
"""

from aios.agents.base import AgentOutput, PlanExample, PlannedAgent, Rule
from aios.backend import (
    Availability,
    Backend,
    Done,
    GenerationRequest,
    LoadedModel,
    TensorModel,
    TextGenerator,
    Token,
)
from aios.builders import ModelBuilder
from aios.context import Completion, SkillContext
from aios.errors import (
    AIOSError,
    BackendUnavailableError,
    CancelledError,
    ConfigError,
    GenerationError,
    InvalidInputError,
    ModelError,
    NoModelAvailableError,
    PluginError,
    UnknownSkillError,
)
from aios.hookspecs import hookimpl
from aios.orchestrator import Orchestrator, Result, StreamEvent
from aios.prompt import Prompt
from aios.record import Decision, ExecutionRecord
from aios.skill import Agent, Skill
from aios.types import Capability, DataClass, Sensitivity, Tier

__version__ = "0.1.0"

__all__ = [
    "AIOSError",
    "Agent",
    "AgentOutput",
    "Availability",
    "Backend",
    "BackendUnavailableError",
    "CancelledError",
    "Capability",
    "Completion",
    "ConfigError",
    "DataClass",
    "Decision",
    "Done",
    "ExecutionRecord",
    "GenerationError",
    "GenerationRequest",
    "InvalidInputError",
    "LoadedModel",
    "ModelBuilder",
    "ModelError",
    "NoModelAvailableError",
    "Orchestrator",
    "PlanExample",
    "PlannedAgent",
    "PluginError",
    "Prompt",
    "Result",
    "Rule",
    "Sensitivity",
    "Skill",
    "SkillContext",
    "StreamEvent",
    "TensorModel",
    "TextGenerator",
    "Tier",
    "Token",
    "UnknownSkillError",
    "hookimpl",
]
