"""``l2tp-broker show sessions|tunnels|lns|realms|status``."""

from __future__ import annotations

import argparse
from typing import Any

from broker.commands.common import add_control_args, run_remote

COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": ("id", "username", "state", "mac", "lns", "tunnel_id", "session_id", "uptime"),
    "tunnels": ("tunnel_id", "lns", "peer", "peer_tunnel_id", "state", "sessions"),
    "lns": ("name", "address", "sessions", "locked_out", "drained", "locked_until"),
    "realms": ("realm", "match", "tunnel_source", "strategy", "sessions", "max_sessions"),
    "status": (
        "node",
        "uptime",
        "calls",
        "sessions",
        "tunnels",
        "dataplane",
        "state",
        "draining",
        "spool_depth",
        "alarms",
    ),
}


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("show", help="show sessions, tunnels, LNSs, realms")
    p.add_argument("what", choices=sorted(COLUMNS))
    add_control_args(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return run_remote(args, lambda c: c.get(f"/{args.what}"), COLUMNS[args.what])
