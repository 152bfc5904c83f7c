"""Options shared by the CLI verbs that talk to a running daemon."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from broker.control.client import ControlClient, ControlError
from broker.control.table import render_table

DEFAULT_CONTROL = "127.0.0.1:8081"


def add_control_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--control",
        default=os.environ.get("L2TP_BROKER_CONTROL", DEFAULT_CONTROL),
        help="control API address: HOST:PORT or unix:/path "
        f"(default $L2TP_BROKER_CONTROL or {DEFAULT_CONTROL})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_remote(
    args: argparse.Namespace,
    call: Callable[[ControlClient], Any],
    columns: Sequence[str] | None = None,
) -> int:
    try:
        result = call(ControlClient(args.control))
    except ControlError as exc:
        print(f"l2tp-broker: {exc}", file=sys.stderr)
        return 1
    if args.json or columns is None:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    elif isinstance(result, list):
        sys.stdout.write(render_table(result, columns))
    else:
        sys.stdout.write(render_table([result], columns))
    return 0
