"""``l2tp-broker check``: validate a configuration and its realm policies, print what is wrong.

For now it validates a policies directory (``--policies DIR``); the daemon configuration file
(``-c CONFIG``) is accepted and will be validated once its loader exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from broker.policy.loader import PolicyError, load_policies


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "check", help="validate a configuration and its realm policies"
    )
    parser.add_argument("-c", "--config", type=Path, help="daemon configuration file")
    parser.add_argument(
        "--policies", type=Path, help="policies directory (defaults.yaml and realms/*.yaml)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    policies: Path | None = args.policies
    config: Path | None = args.config
    if config is not None and not config.is_file():
        print(f"error: {config}: configuration file not found", file=sys.stderr)
        return 1
    if policies is None:
        if config is None:
            print(
                "error: nothing to check; give --policies DIR (and/or -c CONFIG)", file=sys.stderr
            )
            return 2
        policies = config.parent / "policies"
    try:
        result = load_policies(policies)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"ok: {policies}: defaults from {result.defaults.source_file}, "
        f"{len(result.realms)} realm(s): {', '.join(p.name for p in result.realms) or '-'}"
    )
    return 0
