"""``l2tp-broker lns drain|undrain|lock|unlock NAME`` (shared across nodes via the state store)."""

from __future__ import annotations

import argparse
from typing import Any

from broker.commands.common import add_control_args, run_remote


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("lns", help="drain, lock or unlock an LNS")
    p.add_argument("action", choices=("drain", "undrain", "lock", "unlock"))
    p.add_argument("name", help="LNS name (static pool name) or address[:port]")
    add_control_args(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return run_remote(
        args,
        lambda c: c.post(f"/lns/{args.name}/{args.action}"),
        ("name", "action", "ok"),
    )
