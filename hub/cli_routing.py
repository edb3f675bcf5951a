"""`omnihub simulate` and `omnihub erlang`: the supervisor's queueing tools on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hub.config import Settings
from hub.errors import ConfigError
from hub.routing.erlang import Staffing, agents_needed, staffing
from hub.routing.policy import load_policy
from hub.routing.simulate import format_report, load_traffic, simulate
from hub.routing.sourcelines import ConfigFileError


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _simulate(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        policy = load_policy(_read(args.policy), str(args.policy))
        traffic = load_traffic(_read(args.traffic), policy, str(args.traffic))
    except ConfigFileError as exc:
        print("\n".join(f"omnihub: {p}" for p in exc.problems), file=sys.stderr)
        return 1
    report = simulate(policy, traffic)
    if args.json:
        print(
            json.dumps(
                {
                    "intervals": [r.as_dict() for r in report.intervals],
                    "total": report.total.as_dict(),
                    "overflow": report.overflow_actions,
                }
            )
        )
    else:
        print(format_report(report, traffic.interval_s))
    return 0


def _erlang(_settings: Settings, args: argparse.Namespace) -> int:
    result: Staffing
    if args.agents is not None:
        result = staffing(args.rate, args.aht, args.target, args.agents)
    else:
        result = agents_needed(
            args.rate, args.aht, args.target, args.service_level, args.max_occupancy
        )
    if args.json:
        print(
            json.dumps(
                {
                    "agents": result.agents,
                    "traffic_erlangs": round(result.traffic_erlangs, 4),
                    "probability_wait": round(result.probability_wait, 4),
                    "service_level": round(result.service_level, 4),
                    "asa_s": round(result.asa_s, 2),
                    "occupancy": round(result.occupancy, 4),
                }
            )
        )
        return 0
    rows = [
        ("traffic", f"{result.traffic_erlangs:.2f} erlangs"),
        ("agents", str(result.agents)),
        ("service level", f"{100 * result.service_level:.1f}% answered within {args.target:g} s"),
        ("chance of waiting", f"{100 * result.probability_wait:.1f}%"),
        ("average speed of answer", f"{result.asa_s:.1f} s"),
        ("occupancy", f"{100 * result.occupancy:.1f}%"),
    ]
    for label, value in rows:
        print(f"{label + ':':<25}{value}")
    return 0


def add_routing_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sub.add_parser(
        "simulate",
        help="replay a traffic profile against a routing policy",
        description="Discrete-event simulation of a traffic profile (arrivals per interval, "
        "contact mix, handle times, patience, agent roster) under a routing policy: service "
        "level, average speed of answer, abandonment and occupancy per interval.",
    )
    sim.add_argument("--policy", type=Path, required=True, help="routing policy (YAML or JSON)")
    sim.add_argument(
        "--traffic",
        type=Path,
        required=True,
        help="traffic profile with its agent roster (YAML or JSON)",
    )
    sim.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sim.set_defaults(func=_simulate)

    erl = sub.add_parser(
        "erlang",
        help="Erlang C staffing calculator",
        description="Agents needed for a service-level target, or the service a given number "
        "of agents gives (Erlang C: Poisson arrivals, exponential handle times).",
    )
    erl.add_argument("--rate", type=float, required=True, help="arrivals per hour")
    erl.add_argument("--aht", type=float, required=True, help="average handle time, seconds")
    erl.add_argument(
        "--target", type=float, default=20.0, help="answer target in seconds (default: 20)"
    )
    how = erl.add_mutually_exclusive_group()
    how.add_argument("--agents", type=int, help="evaluate this many agents")
    how.add_argument(
        "--service-level",
        type=float,
        default=0.8,
        help="target share answered within --target (default: 0.8)",
    )
    erl.add_argument(
        "--max-occupancy",
        type=float,
        default=1.0,
        help="cap on occupancy when sizing (default: 1.0)",
    )
    erl.add_argument("--json", action="store_true", help="print JSON")
    erl.set_defaults(func=_erlang)
