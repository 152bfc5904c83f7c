"""L2TP probe: our endpoint + UDP adapter in a Twisted reactor, driven from the command line.

LAC role (``--peer``): opens one tunnel to ``--peer`` and ``--sessions`` incoming calls in it.
LNS role (``--lns``): answers whatever LAC connects (tunnel settings from the same options).
Either way it prints every engine event as one JSON object per line on stdout, and exits when
every ``--until`` condition holds (then after ``--hold`` seconds), or after ``--timeout``
seconds. Integration tests run it inside a network namespace against real peers (xl2tpd,
l2tpns) and parse its output:

    python -m ops.lab.l2tp_probe --local 192.0.2.1 --peer 192.0.2.2 --secret s3cret --hide \
        --until session-closed --timeout 20

Conditions: ``tunnel-established``, ``session-established`` (all sessions), ``session-closed``
(all sessions), ``tunnel-closed``, ``data`` (a data message arrived, e.g. the LNS's first LCP
Configure-Request), ``ppp-up`` (with ``--ppp-user``: IPCP up on every session; the PPP client
is :class:`broker.sim.ppp_client.PppClient`, its events are printed as ``ppp-<Event>``).
Last lines: ``{"event": "counters", ...}`` and ``{"event": "exit", "reason": "done" |
"timeout" | "tunnel-closed"}``. Exit status 0 when done, 1 otherwise.
When ``--stop`` is given the probe ends with a StopCCN (result 1) before exiting.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

CONDITIONS = (
    "tunnel-established",
    "session-established",
    "session-closed",
    "tunnel-closed",
    "data",
    "ppp-up",
)


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="l2tp_probe", description=__doc__.split("\n")[0])
    p.add_argument("--local", required=True, help="local address to bind")
    p.add_argument("--local-port", type=int, default=1701)
    p.add_argument("--peer", default=None, help="LNS to open the tunnel to (LAC role)")
    p.add_argument(
        "--lns",
        action="store_true",
        help="LNS role: open nothing, answer incoming SCCRQ/ICRQ with the tunnel settings",
    )
    p.add_argument("--peer-port", type=int, default=1701)
    p.add_argument("--secret", default=None, help="tunnel secret (enables tunnel auth)")
    p.add_argument("--hide", action="store_true", help="hide AVPs (needs --secret)")
    p.add_argument("--host-name", default="l2tp-probe")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--calling-number", default="probe-calling")
    p.add_argument("--called-number", default="probe-called")
    p.add_argument("--authen-name", default=None, help="proxy authen name (PAP, type 3)")
    p.add_argument("--authen-password", default=None, help="proxy PAP password")
    p.add_argument(
        "--until",
        default="session-established",
        help="comma separated conditions: " + ", ".join(CONDITIONS),
    )
    p.add_argument("--hold", type=float, default=0.0, help="seconds to stay after --until")
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--stop", action="store_true", help="send StopCCN before exiting")
    p.add_argument("--max-data-events", type=int, default=5)
    p.add_argument(
        "--ppp-user",
        default=None,
        help="LAC role: run a subscriber PPP client (LCP, PAP/CHAP, IPCP) over each session",
    )
    p.add_argument("--ppp-password", default="")
    p.add_argument("--ppp-auth", default="pap,chap", help="auth protocols the client accepts")
    p.add_argument("--retransmit", default="1,2,4,8,8", help="retransmit schedule, seconds")
    p.add_argument("--hello-interval", type=float, default=60.0, help="idle time before HELLO")
    args = p.parse_args(argv)
    if (args.peer is None) == (not args.lns):
        p.error("give exactly one of --peer (LAC role) or --lns (LNS role)")
    args.until_set = {c.strip() for c in args.until.split(",") if c.strip()}
    unknown = args.until_set - set(CONDITIONS)
    if unknown:
        p.error(f"unknown --until conditions: {sorted(unknown)}")
    return args


@dataclasses.dataclass
class ProbeRun:
    """What one probe run printed (see :func:`run_in_netns`)."""

    returncode: int | None
    events: list[dict[str, Any]]
    stderr: str
    timed_out: bool = False

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of(kind)
        if len(found) != 1:
            raise AssertionError(f"expected one {kind}, got {found}; all: {self.events}")
        return found[0]

    @property
    def exit_reason(self) -> str | None:
        ends = self.of("exit")
        return ends[-1].get("reason") if ends else None


class ProbeProcess:
    """A probe started in the background (:func:`start_in_netns`); stdout goes to a file."""

    def __init__(self, proc: Any, out_path: str, err_path: str) -> None:
        self.proc = proc
        self.out_path = out_path
        self.err_path = err_path

    def events(self) -> list[dict[str, Any]]:
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return _parse(f.read())

    def seen(self, kind: str) -> bool:
        return any(e.get("event") == kind for e in self.events())

    def wait(self, timeout: float) -> ProbeRun:
        """Wait for the probe to exit (kill it after ``timeout``) and collect its output."""
        import os
        import subprocess

        from ops.lab.netns import stop_process

        timed_out = False
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_process(self.proc)
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            err = f.read()
        run = ProbeRun(self.proc.returncode, self.events(), err, timed_out)
        for path in (self.out_path, self.err_path):
            os.unlink(path)
        return run


def start_in_netns(ns: Any, args: list[str]) -> ProbeProcess:
    """Start the probe inside ``ns`` without waiting (stdout/stderr to temporary files)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from ops.lab.netns import venv_python

    root = Path(__file__).resolve().parents[2]
    with (
        tempfile.NamedTemporaryFile(prefix="l2tp-probe-", suffix=".out", delete=False) as out,
        tempfile.NamedTemporaryFile(prefix="l2tp-probe-", suffix=".err", delete=False) as err,
    ):
        proc = ns.popen(
            [venv_python(), "-u", "-m", "ops.lab.l2tp_probe", *args],
            cwd=str(root),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
    return ProbeProcess(proc, out.name, err.name)


def _parse(out: str) -> list[dict[str, Any]]:
    events = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"event": "unparsed", "line": line})
    return events


def run_in_netns(ns: Any, args: list[str], timeout: float) -> ProbeRun:
    """Run the probe inside ``ns`` (an ``ops.lab.netns.Netns``), wait at most ``timeout`` s.

    The probe's own ``--timeout`` should be shorter; on overrun its process group is killed
    and whatever it printed so far is returned with ``timed_out=True``.
    """
    import subprocess
    from pathlib import Path

    from ops.lab.netns import stop_process, venv_python

    root = Path(__file__).resolve().parents[2]
    proc = ns.popen(
        [venv_python(), "-m", "ops.lab.l2tp_probe", *args],
        cwd=str(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_process(proc)
        out, err = proc.communicate()
    return ProbeRun(proc.returncode, _parse(out), err, timed_out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    from twisted.internet import reactor as _reactor

    from broker.adapters.l2tp_udp import L2tpUdpAdapter
    from broker.adapters.timer import EngineTimer
    from broker.l2tp.config import CallParams, TunnelConfig
    from broker.l2tp.data import decode_data, encode_data_header
    from broker.l2tp.endpoint import L2tpEndpoint
    from broker.l2tp.events import (
        SessionClosed,
        SessionEstablished,
        TunnelClosed,
        TunnelEstablished,
    )
    from broker.sim.ppp_client import ClientIpcpUp, PppClient
    from broker.wire import RemoteProtocolError

    reactor: Any = _reactor
    secret = args.secret.encode() if args.secret is not None else None
    config = TunnelConfig(
        host_name=args.host_name,
        secret=secret,
        hide_avps=bool(args.hide),
        retransmit=tuple(float(x) for x in args.retransmit.split(",")),
        hello_interval=args.hello_interval,
    )
    endpoint = L2tpEndpoint(lns_config=config) if args.lns else L2tpEndpoint()
    state: dict[str, Any] = {
        "tunnel_id": None,
        "tunnel_up": False,
        "tunnel_closed": False,
        "sessions_up": set(),
        "sessions_closed": set(),
        "ppp_up": set(),
        "data": 0,
        "done_at": None,
        "exit": None,
        "exited": False,
    }

    def met() -> bool:
        want = args.until_set
        checks = {
            "tunnel-established": state["tunnel_up"],
            "session-established": len(state["sessions_up"]) >= args.sessions,
            "session-closed": len(state["sessions_closed"]) >= args.sessions,
            "tunnel-closed": state["tunnel_closed"],
            "data": state["data"] > 0,
            "ppp-up": len(state["ppp_up"]) >= args.sessions,
        }
        return all(checks[c] for c in want)

    def finish(reason: str) -> None:
        if state["exit"] is not None:
            return
        state["exit"] = reason
        if args.stop and state["tunnel_up"] and not state["tunnel_closed"]:
            try:
                adapter.call(endpoint.close_tunnel, state["tunnel_id"], 1, None, "probe done")
            except Exception as exc:
                emit({"event": "error", "where": "close_tunnel", "error": repr(exc)})
            reactor.callLater(3.0, really_exit)
            return
        really_exit()

    def really_exit() -> None:
        if state["exited"]:
            return
        state["exited"] = True
        emit(
            {
                "event": "counters",
                "adapter": dict(adapter.counters),
                "endpoint": jsonable(getattr(endpoint, "counters", {})),
                "timer": dict(adapter.timer.counters),
            }
        )
        emit({"event": "exit", "reason": state["exit"]})
        if reactor.running:
            reactor.stop()

    def check() -> None:
        if state["done_at"] is None and met():
            state["done_at"] = reactor.seconds()
            if args.hold > 0:
                reactor.callLater(args.hold, finish, "done")
            else:
                finish("done")

    def on_event(event: Any) -> None:
        emit({"event": type(event).__name__, **jsonable(event)})
        if isinstance(event, TunnelEstablished):
            state["tunnel_up"] = True
            state["tunnel_id"] = event.tunnel_id
        elif isinstance(event, SessionEstablished):
            state["sessions_up"].add(event.session_id)
            if args.ppp_user is not None and not args.lns:
                start_ppp(event)
        elif isinstance(event, SessionClosed):
            state["sessions_closed"].add(event.session_id)
        elif isinstance(event, TunnelClosed):
            state["tunnel_closed"] = True
            if state["exit"] is not None:
                reactor.callLater(0, really_exit)
        check()
        if state["tunnel_closed"] and state["done_at"] is None:
            reactor.callLater(0.5, finish, "tunnel-closed")

    def on_data(data: bytes, peer: tuple[str, int]) -> None:
        state["data"] += 1
        if state["data"] <= args.max_data_events:
            emit({"event": "data", "peer": list(peer), "len": len(data), "hex": data[:96].hex()})
        if clients:
            try:
                header, offset = decode_data(data)
            except RemoteProtocolError as exc:
                emit({"event": "bad-data", "error": str(exc)})
                return
            entry = clients.get(header.session_id)
            if entry is not None:
                frame = data[offset:]
                if frame[:2] == b"\xff\x03":  # HDLC address/control (DESIGN.md 3)
                    frame = frame[2:]
                entry[0].receive_frame(frame, reactor.seconds())
                ppp_flush(header.session_id)
        check()

    #: our session id -> (PppClient, data header towards the LNS, EngineTimer)
    clients: dict[int, tuple[Any, bytes, Any]] = {}

    def start_ppp(event: Any) -> None:
        client = PppClient(
            args.ppp_user,
            args.ppp_password,
            auth=tuple(a.strip() for a in args.ppp_auth.split(",") if a.strip()),
        )
        header = encode_data_header(event.peer_tunnel_id, event.peer_session_id)
        sid = event.session_id
        timer = EngineTimer(client, reactor, lambda: ppp_flush(sid), name="ppp")
        clients[sid] = (client, header, timer)
        client.start(reactor.seconds())
        ppp_flush(sid)

    def ppp_flush(sid: int) -> None:
        client, header, timer = clients[sid]
        for frame in client.frames_to_send():
            adapter.send_data(header + b"\xff\x03" + frame, peer_of[0])
        while (ev := client.next_event()) is not None:
            emit({"event": "ppp-" + type(ev).__name__, "session_id": sid, **jsonable(ev)})
            if isinstance(ev, ClientIpcpUp):
                state["ppp_up"].add(sid)
        timer.rearm()
        check()

    peer_of: list[tuple[str, int]] = [("0.0.0.0", 0)]

    adapter: L2tpUdpAdapter[Any] = L2tpUdpAdapter(
        endpoint, reactor, args.local, args.local_port, on_event=on_event, on_data=on_data
    )
    adapter.start()
    emit({"event": "listening", "address": args.local, "port": adapter.port, "lns": args.lns})
    reactor.callLater(args.timeout, finish, "timeout")
    if args.lns:
        reactor.run()
        return 0 if state["exit"] == "done" else 1
    peer = (args.peer, args.peer_port)
    peer_of[0] = peer
    tunnel_id = adapter.call(endpoint.open_tunnel, peer, config)
    state["tunnel_id"] = tunnel_id
    emit({"event": "opened-tunnel", "tunnel_id": tunnel_id, "peer": list(peer)})
    for n in range(args.sessions):
        params = CallParams(
            called_number=args.called_number,
            calling_number=args.calling_number,
            serial=n + 1,
            **_proxy_auth(args),
        )
        sid = adapter.call(endpoint.open_session, tunnel_id, params)
        emit({"event": "opened-session", "tunnel_id": tunnel_id, "session_id": sid})
    reactor.run()
    return 0 if state["exit"] == "done" else 1


def _proxy_auth(args: argparse.Namespace) -> dict[str, Any]:
    """Proxy authentication AVPs (RFC 2661 4.4.5) for PAP: type 3, name, response = password."""
    if args.authen_name is None:
        return {}
    return {
        "authen_type": 3,
        "authen_name": args.authen_name,
        "authen_response": (args.authen_password or "").encode(),
        "authen_id": 0,
    }


if __name__ == "__main__":
    sys.exit(main())
