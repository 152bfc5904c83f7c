"""``l2tp-broker check``: validate a configuration and its realm policies, print what is wrong.

``-c CONFIG`` validates the daemon configuration (broker.yaml), resolves its secrets and then
the policies directory it names; ``--policies DIR`` validates a policies directory alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from broker.config.loader import load_config
from broker.config.model import SecretError
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
    if config is not None:
        try:
            cfg = load_config(config)
            for server in (*cfg.radius.servers, *cfg.radius.accounting_servers):
                server.secret.resolve()
            for client in cfg.radius.dynauth_clients:
                client.secret.resolve()
            if cfg.pppoe.cookie_secret is not None:
                cfg.pppoe.cookie_secret.resolve()
        except (PolicyError, SecretError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"ok: {config}: node {cfg.node_id}, {len(cfg.radius.servers)} RADIUS server(s), "
            f"state {cfg.state.split('://')[0]}, dataplane {cfg.dataplane}"
        )
        if policies is None:
            policies = cfg.policies
    if policies is None:
        print("error: nothing to check; give -c CONFIG and/or --policies DIR", file=sys.stderr)
        return 2
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
