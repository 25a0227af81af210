"""The per-request routing flags, shared by `aios run`, `aios explain` and `aios simulate`.

Imported to build the parser, so nothing heavy at the top.
"""

from __future__ import annotations

import argparse
from typing import Any

from aios.errors import AIOSError


def add_routing_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode", choices=["local_only", "prefer_local", "prefer_cloud"], help="the user's choice"
    )
    p.add_argument("--sensitive", action="store_true", help="never send this request to the cloud")
    p.add_argument(
        "--data-class",
        action="append",
        default=[],
        metavar="CLASS",
        help="kind of user data in the request (photos, contacts, messages, ...); repeatable",
    )
    p.add_argument(
        "--priority",
        choices=["foreground", "background"],
        default="foreground",
        help="queue priority when the model is busy (default foreground)",
    )
    p.add_argument("--app", metavar="NAME", help="the calling app (apps take turns in queues)")


def request_options(args: argparse.Namespace) -> Any:
    """``RequestOptions`` from the flags; a bad value is an ``AIOSError`` naming it."""
    from pydantic import ValidationError

    from aios.config.loader import validation_problems
    from aios.routing.policy import RequestOptions

    try:
        return RequestOptions(
            model=getattr(args, "model", None),
            mode=args.mode,
            sensitive=args.sensitive,
            data_classes=frozenset(args.data_class),
            priority=args.priority,
            app=args.app,
        )
    except ValidationError as exc:
        raise AIOSError("invalid request options: " + "; ".join(validation_problems(exc))) from None


# argparse ``type=`` checks: a bad value is a usage error naming the flag, not a traceback later.
def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is outside 0-65535")
    return value


def file_mode(text: str) -> str:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an octal file mode (e.g. 0660)"
        ) from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"{text!r} is not a file mode (e.g. 0660)")
    return text


def positive_hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of hours")
    return value
