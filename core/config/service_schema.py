"""Config sections of the system service: skills, plugins, apps and their grants, the
service itself, storage, result delivery and the file index."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from aios.config.fields import (
    Name,
    Strict,
)
from aios.config.routing_schema import RoutingMode
from aios.types import DataClass, Priority


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
