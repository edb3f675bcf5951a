"""`omnihub phone check`: validate a phone flows file before the hub reloads it."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

from hub.calls.flows import load_phone_config
from hub.config import Settings
from hub.errors import ConfigError
from hub.routing.sourcelines import ConfigFileError


def _check(_settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        config = load_phone_config(text, str(path))
    except ConfigFileError as exc:
        print("\n".join(f"omnihub: {p}" for p in exc.problems), file=sys.stderr)
        return 1
    flows = ", ".join(f"{name} ({len(f.steps)} steps)" for name, f in config.flows.items())
    languages = ", ".join(config.languages)
    print(f"{path}: ok: {len(config.rules)} rules; flows {flows}; languages {languages}")
    if args.number is not None:
        at = args.at.timestamp() if args.at is not None else time.time()
        picked = config.choose(args.number, at)
        if picked is None:
            print(f"{args.number}: no rule takes this number")
        else:
            print(
                f"{args.number}: rule {picked.rule}, {picked.window}: flow {picked.flow}"
                f" (inbox {picked.inbox})"
            )
    return 0


def _when(text: str) -> datetime:
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date and time") from None
    if found.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset (e.g. +08:00 or Z)")
    return found


def add_phone_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    phone = sub.add_parser(
        "phone", help="the phone line's flows", description="Phone line commands."
    )
    phone_sub = phone.add_subparsers(dest="phone_command", required=True, metavar="COMMAND")
    check = phone_sub.add_parser(
        "check",
        help="validate a flows file",
        description="Validate inbound rules and call flows (YAML or JSON): every problem with "
        "its line; optionally which flow a call to --number takes at --at.",
    )
    check.add_argument("file", type=Path, help="flows file (YAML or JSON)")
    check.add_argument("--number", help="a dialled number to try the rules with")
    check.add_argument("--at", type=_when, help="when (ISO 8601 with offset; default now)")
    check.set_defaults(func=_check)
