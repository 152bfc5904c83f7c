"""``l2tp-broker run -c broker.yaml``: run one broker node until SIGTERM.

SIGTERM/SIGINT: graceful stop (CDN + PADT + Accounting-Stop for every call, StopCCN, then
Accounting-Off). SIGHUP: reload realm policies. SIGUSR2: start tracemalloc, then write a
snapshot to the state directory at each further SIGUSR2 (memory diagnostics). Exit codes: 0
clean, 2 configuration error (including a control API address that cannot be bound: in use,
not on this host), 3 missing privilege or facility (including a control address the daemon's
user may not bind).
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

from broker.config.loader import ConfigError, load_config
from broker.config.model import BrokerConfig, SecretError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("run", help="run the broker daemon")
    p.add_argument("-c", "--config", type=Path, required=True, help="broker.yaml")
    p.add_argument(
        "--interface",
        action="append",
        default=[],
        help="PPPoE access interface (repeatable; overrides 'interfaces:')",
    )
    p.set_defaults(handler=handle)


def setup_logging(fmt: str, level: str) -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        jsonFileLogObserver,
        textFileLogObserver,
    )

    observer: Any = (
        jsonFileLogObserver(sys.stdout) if fmt == "json" else textFileLogObserver(sys.stdout)
    )
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))
    filtered: Any = FilteringLogObserver(observer, [predicate])
    globalLogBeginner.beginLoggingTo([filtered], redirectStandardIO=False)


def inline_secret_warning(cfg: BrokerConfig, path: Path) -> str | None:
    """A warning when ``path`` holds secrets inline and others may read it, else None."""
    inline = [key for key, secret in cfg.secrets() if secret.kind == "value"]
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if not inline or not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (
        f"l2tp-broker: warning: {path} is readable by group/others (mode "
        f"{stat.S_IMODE(mode):o}) and holds secrets inline ({', '.join(inline)}); fix: chmod 600 "
        f"{path}, or move them to files (secret: file:/etc/l2tp-broker/NAME.secret, mode 0600)"
    )


def handle(args: argparse.Namespace) -> int:
    # Everything the daemon creates (state dir, accounting spool, control socket) is private.
    os.umask(0o077)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"l2tp-broker: configuration error: {exc}", file=sys.stderr)
        return 2
    warning = inline_secret_warning(cfg, Path(args.config))
    if warning is not None:
        print(warning, file=sys.stderr)
    from twisted.internet import reactor as default_reactor

    from broker.policy.loader import PolicyError
    from broker.service import (
        BrokerNode,
        ControlListenError,
        DataplaneUnavailable,
        state_dir_ready,
        write_memory_snapshot,
    )

    reactor: Any = default_reactor
    try:
        state_dir_ready(cfg)
        node = BrokerNode(cfg, reactor, interfaces=tuple(args.interface) or cfg.interfaces)
    except (PolicyError, SecretError, ValueError) as exc:
        print(f"l2tp-broker: configuration error: {exc}", file=sys.stderr)
        return 2
    except DataplaneUnavailable as exc:
        print(f"l2tp-broker: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(
            f"l2tp-broker: {exc}; the daemon needs CAP_NET_RAW and CAP_NET_ADMIN", file=sys.stderr
        )
        return 3
    setup_logging(cfg.log_format, cfg.log_level)
    failed: list[int] = []

    def start() -> None:
        try:
            node.startService()
        except ControlListenError as exc:
            failed.append(3 if exc.permission else 2)
            print(f"l2tp-broker: {exc}", file=sys.stderr)
            reactor.stop()
        except PermissionError as exc:
            failed.append(3)
            print(
                f"l2tp-broker: cannot open raw sockets: {exc}; the daemon needs "
                "CAP_NET_RAW (PPPoE) and CAP_NET_ADMIN",
                file=sys.stderr,
            )
            reactor.stop()
        except OSError as exc:
            failed.append(3)
            print(f"l2tp-broker: cannot start: {exc}", file=sys.stderr)
            reactor.stop()

    def stop() -> Any:
        return node.stopService() if node.running else None

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(node.reload_policies))
    signal.signal(
        signal.SIGUSR2,
        lambda *_: reactor.callFromThread(write_memory_snapshot, cfg.state_dir),
    )
    reactor.run()
    return failed[0] if failed else 0
