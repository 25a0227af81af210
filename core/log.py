"""structlog setup: a pretty console in a terminal, JSON lines otherwise.

Only entry points (the CLI, later the service) call ``configure``; the library itself never
touches global logging configuration.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def configure(
    level: str | None = None, *, stream: TextIO | None = None, json: bool | None = None
) -> None:
    out = stream or sys.stderr
    # In a terminal the CLI prints the execution record itself; JSON consumers get every event.
    default = "warning" if out.isatty() else "info"
    name = (level or os.environ.get("AIOS_LOG_LEVEL") or default).lower()
    if name not in LEVELS:
        raise ValueError(f"unknown log level '{name}' (use one of {', '.join(LEVELS)})")
    as_json = (not out.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if as_json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[name]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
