"""`aios serve` (the system service) and `aios apps add|ls` (who may call it).

Imported to build the parser, so nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aios.cli.options import file_mode, port_number


def add_parser(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the system service apps call (HTTP on loopback and a Unix socket)",
        description="Prints one line with the URL and socket when ready. SIGTERM/SIGINT shut "
        "down gracefully; SIGHUP reloads the config (a bad one is refused, the old one serves).",
    )
    common(p)
    p.add_argument("--host", metavar="ADDR", help="TCP address (default: [service] host)")
    p.add_argument(
        "--port", type=port_number, metavar="N", help="TCP port, 0 = any free (default 8765)"
    )
    p.add_argument("--socket", metavar="PATH", help="Unix socket (default $AIOS_HOME/aios.sock)")
    p.add_argument(
        "--socket-mode", type=file_mode, metavar="MODE", help="socket file mode (default 0660)"
    )
    p.set_defaults(handler=serve)

    p = sub.add_parser("apps", help="apps allowed to call the service")
    asub = p.add_subparsers(dest="apps_command", required=True, metavar="ACTION")
    q = asub.add_parser(
        "add",
        help="register an app: prints its token once, stores only its hash",
        description="Appends the app to the apps file ($AIOS_HOME/apps.toml unless the config's "
        "[service] apps_file says otherwise). The token is printed once and never stored.",
    )
    q.add_argument("name", metavar="NAME", help="app id (lower-case)")
    q.add_argument(
        "--skills", nargs="+", default=["*"], metavar="SKILL", help="skills it may call (default *)"
    )
    q.add_argument(
        "--data-classes", nargs="+", default=["text"], metavar="CLASS", help="default: text"
    )
    q.add_argument("--priority", choices=["foreground", "background"], default="foreground")
    q.add_argument("--requests-per-minute", type=int, default=120, metavar="N")
    q.add_argument("--max-concurrent", type=int, default=4, metavar="N")
    _target_args(q)
    q.set_defaults(handler=apps_add)
    q = asub.add_parser("ls", help="list registered apps (never their tokens)")
    _target_args(q)
    q.set_defaults(handler=apps_ls)


def _target_args(q: argparse.ArgumentParser) -> None:
    q.add_argument("--config", metavar="FILE", help="OEM config whose [service] apps_file to use")
    q.add_argument("--apps-file", metavar="FILE", help="apps file (overrides the config's)")
    q.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")
    q.add_argument("--log-level", metavar="LEVEL", default=argparse.SUPPRESS)


def serve(args: argparse.Namespace) -> int:
    from aios.service.server import serve as run

    return run(
        args.config,
        host=args.host,
        port=args.port,
        socket_path=args.socket,
        socket_mode=args.socket_mode,
        profile=args.profile,
    )


def _apps_file(args: argparse.Namespace) -> tuple[Path, Any]:
    from aios.config.loader import load_config
    from aios.service.auth import apps_file_path

    config, path = load_config(args.config)
    target = Path(args.apps_file).expanduser() if args.apps_file else None
    target = target or apps_file_path(config, path.parent)
    return target, config


def _unknown_skills(config: Any, wanted: list[str]) -> list[str]:
    """Problems for skills an app is granted that no plugin of this config registers."""
    import difflib

    from aios.plugin_manager import build_plugin_manager

    plugins = build_plugin_manager(
        allow=config.plugins.allow, block=config.plugins.block, autoload=config.plugins.autoload
    )
    known = sorted(plugins.skills)
    problems = []
    for name in wanted:
        if name != "*" and name not in plugins.skills:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"skills: {', '.join(known)}"
            problems.append(f"skills: no plugin registers skill '{name}' ({hint})")
    return problems


def apps_add(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from aios.config.loader import validation_problems
    from aios.config.schema import AppSpec
    from aios.errors import ConfigError
    from aios.service.auth import append_app, hash_token, new_token

    target, config = _apps_file(args)
    if any(a.id == args.name for a in config.apps):
        raise ConfigError("config", [f"apps: '{args.name}' is already in the config's [[apps]]"])
    unknown = _unknown_skills(config, args.skills)
    if unknown:
        raise ConfigError(f"app '{args.name}'", unknown)
    token = new_token()
    try:
        app = AppSpec(
            id=args.name,
            token_sha256=hash_token(token),
            skills=args.skills,
            data_classes=args.data_classes,
            priority=args.priority,
            requests_per_minute=args.requests_per_minute,
            max_concurrent=args.max_concurrent,
        )
    except ValidationError as exc:
        raise ConfigError(f"app '{args.name}'", validation_problems(exc)) from None
    append_app(target, app)
    if args.json:
        print(json.dumps({"id": app.id, "token": token, "apps_file": str(target)}))
    else:
        print(f"app '{app.id}' added to {target}")
        print(f"token (shown once, keep it secret): {token}")
    return 0


def apps_ls(args: argparse.Namespace) -> int:
    from aios.service.auth import read_apps_file

    target, config = _apps_file(args)
    rows = [(a, "config") for a in config.apps] + [(a, str(target)) for a in read_apps_file(target)]
    if args.json:
        data = [{**a.model_dump(mode="json", exclude={"token_sha256"}), "from": w} for a, w in rows]
        print(json.dumps({"apps": data}, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no apps registered (apps file: {target}); add one with `aios apps add`")
    for a, where in rows:
        print(
            f"{a.id:<24} skills={','.join(a.skills)} data={','.join(a.data_classes)} "
            f"priority={a.priority.value} rpm={a.requests_per_minute} "
            f"concurrent={a.max_concurrent}  ({where})"
        )
    return 0
