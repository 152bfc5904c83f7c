"""Accounting lab driver: a subprocess that pushes sessions through the real
:class:`broker.accounting.service.AccountingService`, and a Disconnect/CoA listener with a fake
session table. The lab FreeRADIUS is :class:`ops.lab.freeradius.FreeRadius`.

Used by tests/accounting/test_accounting_durability.py and tests/adapters/test_dynauth_udp.py.

  python -m ops.lab.acct_driver run --spool S.db --server 127.0.0.1:1813 --secret X \\
      --sessions 1000 [--from K] [--batch 10] [--backoff 0.2,0.5] [--exit-when-drained]
  python -m ops.lab.acct_driver dynauth --port 0 --secret X --client 127.0.0.1 \\
      --session alice@example.net=n1-1=203.0.113.5

``run`` prints ``SUBMITTED k`` once sessions < k have their Start and Stop committed to the
spool, ``ALL-SUBMITTED``, ``DEPTH d`` lines and ``DRAINED`` (then exits) when the spool is
empty. Record ids are deterministic (session i -> the same Acct-Session-Id), and the spool's
append is idempotent per record id, so a restarted driver can safely resubmit from the last
``SUBMITTED`` it printed. ``dynauth`` prints ``READY port`` and ``DISCONNECTED <sid>``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def session_id(node: str, i: int) -> str:
    return f"{node}-5f000000-{i:08x}"


def _run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as _reactor
    from twisted.internet import task

    from broker.accounting.service import AccountingService
    from broker.accounting.spool import Spool
    from broker.radius.accounting import (
        AcctTerminateCause,
        Counters,
        NasInfo,
        SessionInfo,
        start_record,
        stop_record,
    )
    from broker.radius.acct_client import AccountingClient, AcctServer

    reactor: Any = _reactor
    host, port = args.server.rsplit(":", 1)
    backoff = tuple(float(x) for x in args.backoff.split(","))
    engine = AccountingClient(
        [AcctServer("acct", (host, int(port)), args.secret.encode())],
        backoff=backoff,
        window=args.window,
        dead_after=3,
        dead_time=args.dead_time,
    )
    spool = Spool(args.spool, sync=args.sync)
    service = AccountingService(spool, engine, reactor=reactor)
    nas = NasInfo("192.0.2.1", args.node)

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def sessions() -> Any:
        i = args.start_from
        while i < args.sessions:
            j = min(i + args.batch, args.sessions)
            now = reactor.seconds()
            infos = [
                SessionInfo(
                    acct_session_id=session_id(args.node, k),
                    user_name=f"user{k}@realm.example",
                    nas=nas,
                    nas_port_id=f"eth1:{k}",
                    calling_station_id=f"02:00:00:00:{k >> 8 & 0xFF:02x}:{k & 0xFF:02x}",
                )
                for k in range(i, j)
            ]
            service.submit_many([start_record(s, now) for s in infos])
            yield None
            stops = [
                stop_record(
                    s,
                    Counters(input_octets=5 * 2**32 + k, output_octets=k, input_packets=k),
                    60,
                    AcctTerminateCause.USER_REQUEST,
                    now,
                )
                for k, s in zip(range(i, j), infos, strict=True)
            ]
            service.submit_many(stops)
            i = j
            emit(f"SUBMITTED {i}")
            yield task.deferLater(reactor, args.pause, lambda: None)
        emit("ALL-SUBMITTED")

    def report() -> None:
        depth = spool.depth()
        emit(f"DEPTH {depth} acked {service.acked} forged {engine.counters['forged']}")
        if depth == 0 and args.exit_when_drained and submitted.called:
            emit("DRAINED")
            reactor.stop()

    service.startService()
    submitted = task.cooperate(sessions()).whenDone()
    poll = task.LoopingCall(report)
    poll.start(0.2)
    reactor.run()
    return 0


# -- the dynauth subprocess ------------------------------------------------------------------


def _dynauth(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as _reactor

    from broker.adapters.dynauth_udp import DynAuthListener
    from broker.radius.dynauth import (
        DisconnectOutcome,
        DynAuthClient,
        DynAuthServer,
        SessionCriteria,
    )

    reactor: Any = _reactor
    table: dict[str, tuple[str, str]] = {}
    for item in args.session:
        user, sid, ip = item.split("=")
        table[sid] = (user, ip)

    def find_and_disconnect(c: SessionCriteria) -> DisconnectOutcome:
        hits = [
            sid
            for sid, (user, ip) in table.items()
            if (c.user_name is None or c.user_name == user)
            and (c.acct_session_id is None or c.acct_session_id == sid)
            and (c.framed_ip_address is None or c.framed_ip_address == ip)
        ]
        if not hits:
            return DisconnectOutcome.NOT_FOUND
        if len(hits) > 1:
            return DisconnectOutcome.MULTIPLE
        del table[hits[0]]
        sys.stdout.write(f"DISCONNECTED {hits[0]}\n")
        sys.stdout.flush()
        return DisconnectOutcome.DISCONNECTED

    engine = DynAuthServer(
        [DynAuthClient("lab", args.client, args.secret.encode())],
        nas_ip="192.0.2.1",
        nas_identifier="lac-lab",
        find_and_disconnect=find_and_disconnect,
    )
    listener = DynAuthListener(engine, reactor=reactor, address=args.address, port=args.port)
    listener.startService()
    sys.stdout.write(f"READY {listener.port}\n")
    sys.stdout.flush()
    reactor.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="acct_driver")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--spool", required=True)
    r.add_argument("--server", required=True)
    r.add_argument("--secret", required=True)
    r.add_argument("--sessions", type=int, default=1000)
    r.add_argument("--from", dest="start_from", type=int, default=0)
    r.add_argument("--batch", type=int, default=10)
    r.add_argument("--pause", type=float, default=0.002)
    r.add_argument("--backoff", default="0.2,0.5")
    r.add_argument("--dead-time", type=float, default=1.0)
    r.add_argument("--window", type=int, default=32)
    r.add_argument("--sync", choices=["full", "interval"], default="full")
    r.add_argument("--node", default="n1")
    r.add_argument("--exit-when-drained", action="store_true")
    d = sub.add_parser("dynauth")
    d.add_argument("--address", default="127.0.0.1")
    d.add_argument("--port", type=int, default=0)
    d.add_argument("--secret", required=True)
    d.add_argument("--client", default="127.0.0.1")
    d.add_argument("--session", action="append", default=[])
    args = p.parse_args(argv)
    return _run(args) if args.cmd == "run" else _dynauth(args)


if __name__ == "__main__":
    sys.exit(main())
