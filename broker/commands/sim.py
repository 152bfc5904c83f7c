"""``l2tp-broker sim subscribers ...`` (PPPoE load generator) and ``l2tp-broker sim lns ...``.

``sim subscribers`` brings N emulated subscribers up on one raw interface (random locally
administered MACs), optionally pings a target through each session, holds, hangs up, and
prints a report (text, and JSON with ``--json-out``). Exit status 0 only when every subscriber
came up (and every ping target answered, when asked).

``sim lns`` runs the LNS emulator on a UDP socket until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

from broker.sim.discovery_client import DiscoveryClientConfig
from broker.sim.loadgen import CHURN_ACTIONS, LoadGenerator, LoadPlan, LoadReport, percentile
from broker.sim.ppp_client import ClientConfig
from broker.sim.subscriber import (
    PingsCompleted,
    Subscriber,
    SubscriberConfig,
    SubscriberDown,
    SubscriberEvent,
    SubscriberFailed,
    SubscriberUp,
)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("sim", help="subscriber and LNS emulators")
    verbs = p.add_subparsers(dest="sim_verb", metavar="WHAT")

    s: argparse.ArgumentParser = verbs.add_parser(
        "subscribers", help="bring up N emulated PPPoE subscribers on one interface"
    )
    s.add_argument("--interface", "-i", required=True, help="raw Ethernet interface")
    s.add_argument("--count", "-n", type=int, default=1)
    s.add_argument("--rate", "-r", type=float, default=100.0, help="setups started per second")
    s.add_argument("--outstanding", "-k", type=int, default=100, help="max setups in progress")
    s.add_argument(
        "--user-template",
        action="append",
        dest="user_templates",
        help="user name template, {i} = index; repeat for a realm mix (round robin)",
    )
    s.add_argument(
        "--first-index", type=int, default=0, help="{i} of the first subscriber (several runs)"
    )
    s.add_argument("--password", default=os.environ.get("SIM_PASSWORD", "secret"))
    s.add_argument("--auth", choices=("chap", "pap", "mixed"), default="chap")
    s.add_argument("--service-name", default="")
    s.add_argument("--ping", metavar="TARGET", help="IPv4 address or 'peer' to ping when up")
    s.add_argument("--ping-count", type=int, default=1)
    s.add_argument("--ping-interval", type=float, default=1.0)
    s.add_argument("--ping-size", type=int, default=56, help="ICMP payload octets (traffic)")
    s.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="seconds to hold sessions after all settled; < 0: until SIGTERM/SIGINT",
    )
    s.add_argument(
        "--hangup",
        choices=("padt", "lcp-terminate", "power-off"),
        default="lcp-terminate",
        help="how sessions end after --hold",
    )
    s.add_argument("--churn-mean", type=float, default=0.0, help="mean lifetime before churn")
    s.add_argument(
        "--churn",
        default="padt",
        help=f"comma list of churn actions among {','.join(CHURN_ACTIONS)}",
    )
    s.add_argument("--redial", action="store_true", help="churned subscribers dial again")
    s.add_argument(
        "--redial-lost",
        action="store_true",
        help="subscribers whose session was lost (LNS failure, PADT from the AC) dial again",
    )
    s.add_argument(
        "--redial-failed",
        action="store_true",
        help="subscribers whose set-up failed dial again (a real CPE keeps trying)",
    )
    s.add_argument("--setup-timeout", type=float, default=30.0)
    s.add_argument(
        "--timeout", type=float, default=600.0, help="hang up and end the run after this"
    )
    s.add_argument("--echo-interval", type=float, default=0.0, help="CPE LCP echo interval")
    s.add_argument("--json-out", type=Path, help="write the final report as JSON here")
    s.add_argument("--ready-file", type=Path, help="write the report here once every setup settled")
    s.add_argument("--progress", type=float, default=1.0, help="progress line interval (0: off)")
    s.add_argument("--seed", type=int, help="random seed (MACs, churn)")
    s.set_defaults(handler=handle_subscribers)

    lns: argparse.ArgumentParser = verbs.add_parser("lns", help="run the LNS emulator")
    lns.add_argument("--listen", default="0.0.0.0")
    lns.add_argument("--port", type=int, default=1701)
    lns.add_argument("--secret", default=os.environ.get("SIM_LNS_SECRET"))
    lns.add_argument("--hostname", default="sim-lns")
    lns.add_argument("--pool", default="198.51.100.0/24", help="IPCP address pool (CIDR)")
    lns.add_argument("--address", help="the LNS's own PPP address (default: pool's first)")
    lns.add_argument(
        "--reuse-addresses",
        action="store_true",
        help="hand out pool addresses round robin even when in use (more sessions than the pool)",
    )
    lns.add_argument("--receive-window", type=int, default=8)
    lns.add_argument("--hello-interval", type=float, default=60.0, help="HELLO after S idle")
    lns.add_argument(
        "--hello-probe", type=float, default=0.0, help="HELLO every S even under traffic (0: off)"
    )
    lns.add_argument("--hide", action="store_true", help="hide AVPs (needs --secret)")
    lns.add_argument("--reject-result", type=int, help="refuse every call with this CDN result")
    lns.add_argument("--reject-every", type=int, default=1, help="refuse one call in N")
    lns.add_argument("--drop-sccrq", action="store_true", help="never answer an SCCRQ")
    lns.add_argument(
        "--reply-delay", type=float, default=0.0, help="hold every control message S seconds"
    )
    lns.add_argument("--max-sessions", type=int, default=0, help="refuse beyond this (0: no cap)")
    lns.add_argument("--echo-interval", type=float, default=0.0, help="LCP echo to the CPE")
    lns.add_argument("--echo-failures", type=int, default=3)
    lns.add_argument("--no-proxy-lcp", action="store_true", help="ignore proxy LCP, renegotiate")
    lns.add_argument("--die-after", type=float, help="stop answering anything after S seconds")
    lns.add_argument("--status-file", type=Path, help="write JSON status here every second")
    lns.set_defaults(handler=handle_lns)

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)


# -- subscribers ----------------------------------------------------------------------------

#: SubscriberDown reasons of sessions we ended ourselves (churn commands, hang-up).
_LOCAL_ENDS = frozenset({"local-padt", "power-off", "lcp-terminate"})


class SubscriberRun:
    """Glue between the reactor, the subscriber pool and the pure load generator."""

    def __init__(self, args: argparse.Namespace, reactor: Any) -> None:
        from broker.adapters.subscriber_pool import SubscriberPool, random_local_mac

        self.args = args
        self.reactor = reactor
        self.rng = random.Random(args.seed)
        self._mac = random_local_mac
        templates = tuple(args.user_templates or ["user{i}@example.net"])
        self.plan = LoadPlan(
            count=args.count,
            rate=args.rate,
            outstanding=args.outstanding,
            user_templates=templates,
            password=args.password,
            auth=args.auth,
            churn_mean=args.churn_mean,
            churn_actions=tuple(a.strip() for a in args.churn.split(",") if a.strip()),
            redial=args.redial,
            first_index=args.first_index,
            redial_lost=args.redial_lost,
            redial_failed=args.redial_failed,
        )
        if args.ping and args.ping != "peer":
            ipaddress.IPv4Address(args.ping)
        self.gen = LoadGenerator(self.plan, rng=self.rng, ping=bool(args.ping))
        self.pool = SubscriberPool(args.interface, reactor, on_event=self._on_event)
        self.index_of: dict[bytes, int] = {}
        self.engine_counters: dict[str, int] = {}
        self.subs: dict[int, Subscriber] = {}
        self.hanging_up = False
        self.t0 = reactor.seconds()
        self.ready_at: float | None = None
        self.hold_until: float | None = None
        self.done = False
        self._call: Any = None
        self._next_progress = self.t0
        self._rand_bytes = self.rng.randbytes if args.seed is not None else os.urandom
        #: LCP echo round trips of every subscriber (seconds), with --echo-interval.
        self.echo_rtts: list[float] = []

    # -- subscribers -----------------------------------------------------------------------
    def _config(self, i: int) -> SubscriberConfig:
        a = self.args
        return SubscriberConfig(
            username=self.plan.username(i),
            password=self.plan.password,
            auth=self.plan.auth_methods(i),
            discovery=DiscoveryClientConfig(service_name=a.service_name),
            ppp=ClientConfig(echo_interval=a.echo_interval),
            setup_timeout=a.setup_timeout,
            ping_target=a.ping,
            ping_count=a.ping_count,
            ping_interval=a.ping_interval,
            ping_size=a.ping_size,
        )

    def _start(self, i: int) -> None:
        while True:
            mac = self._mac(self._rand_bytes)
            if mac not in self.pool.subscribers:
                break
        sub = Subscriber(mac, self._config(i), rand_bytes=self._rand_bytes)
        self.index_of[mac] = i
        self.subs[i] = sub
        self.pool.add(sub)
        self.pool.start(sub)

    def _on_event(self, sub: Subscriber, event: SubscriberEvent) -> None:
        i = self.index_of.get(sub.mac)
        if i is None:
            return
        now = self.reactor.seconds()
        if isinstance(event, SubscriberUp):
            self.gen.subscriber_up(i, now, event.latency)
            if sub.ppp is not None and self.args.echo_interval > 0:
                sub.ppp.lcp.echo_rtts = self.echo_rtts
        elif isinstance(event, SubscriberFailed):
            self.gen.subscriber_failed(i, now, event.reason)
            self._forget(sub)
        elif isinstance(event, SubscriberDown):
            # Ended by us (churn or hang-up): "local-padt", "power-off", "lcp-terminate".
            # A PADT from the AC ("padt") is a lost session, not churn.
            churn = self.hanging_up or event.reason in _LOCAL_ENDS
            self.gen.subscriber_down(i, now, event.reason, churn=churn)
            self._forget(sub)
        elif isinstance(event, PingsCompleted):
            self.gen.subscriber_pinged(i, event.sent, event.received)

    def _forget(self, sub: Subscriber) -> None:
        self._collect(sub)
        self.pool.remove(sub)
        self.index_of.pop(sub.mac, None)

    def _collect(self, sub: Subscriber) -> None:
        """Add the subscriber's engine counters to the run totals (diagnosis)."""
        tables = [sub.counters, sub.discovery.counters]
        if sub.ppp is not None:
            tables.append(sub.ppp.counters)
        for table in tables:
            for key, n in table.items():
                self.engine_counters[key] = self.engine_counters.get(key, 0) + n

    # -- driving ---------------------------------------------------------------------------
    def begin(self) -> None:
        self.pool.open()
        self._tick()

    def _tick(self) -> None:
        self._call = None
        if self.done:
            return
        now = self.reactor.seconds()
        if not self.hanging_up:
            for i in self.gen.due_starts(now):
                self._start(i)
            for i, action in self.gen.due_churn(now):
                sub = self.subs.get(i)
                if sub is not None:
                    self._command(sub, action)
        if self.args.progress > 0 and now >= self._next_progress:
            self._next_progress = now + self.args.progress
            self._print_progress(now)
        churning = self.plan.churn_mean > 0
        settled = self.gen.first_round_settled if churning else self.gen.settled
        if self.ready_at is None and settled:
            self._ready(now)
        if self.hold_until is not None and now >= self.hold_until and not self.hanging_up:
            self.hang_up()
        if self.hanging_up and not self.pool.subscribers:
            self.finish()
            return
        if now - self.t0 > self.args.timeout and not self.hanging_up:
            print("sim: run timeout reached, hanging up", file=sys.stderr)
            self.hang_up()
        nxt = self.gen.get_timer()
        delay = 0.1 if nxt is None else min(max(nxt - now, 0.001), 0.1)
        self._call = self.reactor.callLater(delay, self._tick)

    def _command(self, sub: Subscriber, action: str) -> None:
        command = {
            "padt": sub.padt,
            "power-off": sub.power_off,
            "lcp-terminate": sub.lcp_terminate,
        }[action]
        self.pool.apply(sub, command)

    def _ready(self, now: float) -> None:
        self.ready_at = now
        report = self._with_echo(self.gen.report(now))
        # From here on the echo figures are those of the held sessions (the set-up phase's
        # are in the ready file).
        self.echo_rtts.clear()
        self._print_progress(now)
        print(
            f"sim: all {self.plan.count} setups settled after {now - self.t0:.2f} s "
            f"({report.up} up, {report.failed} failed)",
            flush=True,
        )
        if self.args.ready_file is not None:
            tmp = self.args.ready_file.with_suffix(".tmp")
            tmp.write_text(report.to_json())
            tmp.replace(self.args.ready_file)
        if self.args.hold >= 0:
            self.hold_until = now + self.args.hold

    def hang_up(self) -> None:
        if self.hanging_up:
            return
        self.hanging_up = True
        self.final_report = self._with_echo(self.gen.report(self.reactor.seconds()))
        for sub in list(self.pool.subscribers.values()):
            self._command(sub, self.args.hangup)
        # Subscribers that never answer (LCP terminate lost) are given a few seconds.
        self.reactor.callLater(5.0, self._force_finish)

    def _force_finish(self) -> None:
        if not self.done:
            for sub in list(self.pool.subscribers.values()):
                self.pool.apply(sub, sub.padt)
            self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self.pool.close()
        if self.reactor.running:
            self.reactor.stop()

    def _print_progress(self, now: float) -> None:
        g = self.gen
        print(
            f"[{now - self.t0:7.2f}s] started={g.started} up={len(g.ever_up)} "
            f"in-setup={len(g.in_setup)} failed={sum(g.failures.values())} "
            f"now-up={len(g.up)}",
            flush=True,
        )

    def report(self) -> LoadReport:
        final: LoadReport | None = getattr(self, "final_report", None)
        if final is not None:
            return final
        return self._with_echo(self.gen.report(self.reactor.seconds()))

    def _with_echo(self, report: LoadReport) -> LoadReport:
        rtts = self.echo_rtts
        if not rtts:
            return report
        ms = [x * 1000.0 for x in rtts]
        stats: dict[str, float | int | None] = {
            "count": len(ms),
            "p50": percentile(ms, 50),
            "p99": percentile(ms, 99),
            "max": max(ms),
        }
        return dataclasses.replace(report, echo_rtt_ms=stats)


def handle_subscribers(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as _reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    reactor: Any = _reactor
    text: Any = textFileLogObserver(sys.stderr)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer: Any = FilteringLogObserver(text, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    run = SubscriberRun(args, reactor)

    def on_signal(signum: int, _frame: Any) -> None:
        reactor.callFromThread(run.hang_up)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run.begin()
    except OSError as exc:
        print(f"sim: cannot open {args.interface}: {exc}", file=sys.stderr)
        return 1
    reactor.run(installSignalHandlers=False)
    report = run.report()
    sys.stdout.write(report.to_text())
    for sub in run.pool.subscribers.values():
        run._collect(sub)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"sim: cpu {usage.ru_utime + usage.ru_stime:.2f} s", file=sys.stderr)
    print(f"sim: pool counters {json.dumps(run.pool.counters, sort_keys=True)}", file=sys.stderr)
    print(
        f"sim: engine counters {json.dumps(run.engine_counters, sort_keys=True)}", file=sys.stderr
    )
    if args.json_out is not None:
        args.json_out.write_text(report.to_json())
    return 0 if report.success else 1


# -- LNS ------------------------------------------------------------------------------------


def handle_lns(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as _reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from broker.adapters.lns_emulator import LnsEmulatorService
    from broker.l2tp.config import TunnelConfig
    from broker.sim.lns import LnsConfig, LnsEmulator

    reactor: Any = _reactor
    secret = args.secret.encode() if args.secret else None
    config = LnsConfig(
        tunnel=TunnelConfig(
            host_name=args.hostname,
            secret=secret,
            hide_avps=bool(args.hide and secret),
            receive_window=args.receive_window,
            hello_interval=args.hello_interval,
            vendor_name="l2tp-broker sim lns",
        ),
        pool=args.pool,
        address=args.address,
        reject_result=args.reject_result,
        reject_every=args.reject_every,
        max_sessions=args.max_sessions,
        drop_sccrq=args.drop_sccrq,
        reply_delay=args.reply_delay,
        accept_proxy_lcp=not args.no_proxy_lcp,
        reuse_addresses=args.reuse_addresses,
        echo_interval=args.echo_interval,
        echo_failures=args.echo_failures,
        hello_probe=args.hello_probe,
    )
    engine = LnsEmulator(config)
    service = LnsEmulatorService(engine, reactor, args.listen, args.port)
    # Per-session events are logged at debug: filter before formatting (formatting every
    # event was ~15 % of the emulator's CPU at load).
    text: Any = textFileLogObserver(sys.stderr)
    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    observer: Any = FilteringLogObserver(text, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    try:
        service.start()
    except Exception as exc:  # CannotListenError and friends
        print(f"sim lns: cannot listen on {args.listen}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(
        f"sim lns: listening on {args.listen}:{service.port}, PPP address "
        f"{engine.own_address}, pool {args.pool}",
        flush=True,
    )

    def write_status() -> None:
        if args.status_file is not None:
            tmp = args.status_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(engine.status(), sort_keys=True))
            tmp.replace(args.status_file)
        reactor.callLater(1.0, write_status)

    write_status()
    if args.die_after is not None:
        reactor.callLater(args.die_after, service.die)

    def on_signal(signum: int, _frame: Any) -> None:
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reactor.run(installSignalHandlers=False)
    print(f"sim lns: {json.dumps(engine.status(), sort_keys=True)}", flush=True)
    return 0
