"""``l2tp-broker session kill ID`` and ``l2tp-broker drain on|off``."""

from __future__ import annotations

import argparse
from typing import Any

from broker.commands.common import add_control_args, run_remote


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("session", help="end a subscriber session")
    p.add_argument("action", choices=("kill",))
    p.add_argument("id", help="session id (show sessions) or Acct-Session-Id")
    add_control_args(p)
    p.set_defaults(handler=handle_session)
    d: argparse.ArgumentParser = sub.add_parser(
        "drain", help="refuse new calls (on) or accept them again (off)"
    )
    d.add_argument("state", choices=("on", "off"))
    add_control_args(d)
    d.set_defaults(handler=handle_drain)


def handle_session(args: argparse.Namespace) -> int:
    return run_remote(args, lambda c: c.post(f"/sessions/{args.id}/kill"), ("id", "killed"))


def handle_drain(args: argparse.Namespace) -> int:
    return run_remote(args, lambda c: c.post("/drain", {"on": args.state == "on"}), ("draining",))
