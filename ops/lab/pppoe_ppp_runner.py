"""PPPoE + PPP lab runner: the raw Ethernet adapter, the discovery server and one PppLink per
session, in a Twisted reactor; verifies CHAP-MD5 itself against one password.

For integration tests in a network namespace (root). Every event is printed as one JSON
object per line on stdout:

    python -m ops.lab.pppoe_ppp_runner --interface eth1 --password s3cret --timeout 30

Events: ``ready`` (with the interface MAC), ``SessionOpened``, ``LcpOpened``,
``CredentialsReceived`` (username, CHAP identifier and algorithm, ``verdict`` "accept" or
"reject"; never the password or the response), ``LinkTerminated``, ``SessionTerminated`` and
at exit ``counters`` and ``exit``. CHAP-MD5 is checked per RFC 1994 section 4.1:
MD5(Identifier || secret || Challenge); PAP per RFC 1334 section 2.2.1; MS-CHAPv2 is rejected
(this runner cannot verify it). A link that ends sends a PADT (RFC 2516 section 5.5).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

from broker.adapters.rawether import RawEthernetPort
from broker.ppp import LinkConfig, PppLink
from broker.ppp.constants import ChapAlgorithm
from broker.ppp.events import (
    ChapCredentials,
    Credentials,
    CredentialsReceived,
    LcpOpened,
    LinkTerminated,
    PapCredentials,
)
from broker.pppoe import (
    DiscoveryConfig,
    DiscoveryServer,
    PppoeSessionKey,
    SessionOpened,
    SessionTerminated,
)
from broker.wire import MacAddress


def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def chap_md5_response(ident: int, secret: bytes, challenge: bytes) -> bytes:
    """RFC 1994 section 4.1: MD5 over Identifier, secret and Challenge Value."""
    return hashlib.md5(bytes([ident & 0xFF]) + secret + challenge).digest()


def verify(credentials: Credentials, secret: bytes) -> bool:
    if isinstance(credentials, ChapCredentials):
        if credentials.algorithm != ChapAlgorithm.MD5:
            return False
        expected = chap_md5_response(credentials.ident, secret, credentials.challenge)
        return hmac.compare_digest(expected, credentials.response)
    if isinstance(credentials, PapCredentials):
        return hmac.compare_digest(credentials.password, secret)
    return False


@dataclass(slots=True)
class _Session:
    key: PppoeSessionKey
    link: PppLink
    timer: Any = None  # twisted IDelayedCall
    done: bool = field(default=False)


class PppoePppRunner:
    """Glue: session frames -> PppLink; PppLink output -> session frames; verdicts locally."""

    def __init__(
        self,
        reactor: Any,
        interfaces: list[str],
        *,
        secret: bytes,
        link_config: LinkConfig,
        ac_name: str = "broker-ac",
    ) -> None:
        self.reactor = reactor
        self.secret = secret
        self.link_config = link_config
        self.engine = DiscoveryServer(DiscoveryConfig(ac_name=ac_name, cookie_secret=b"r" * 32))
        self.port = RawEthernetPort(
            self.engine,
            interfaces,
            reactor,
            on_event=self._pppoe_event,
            on_session_frame=self._session_frame,
        )
        self.sessions: dict[PppoeSessionKey, _Session] = {}

    def start(self) -> None:
        self.port.startService()
        for ifname, mac in self.port.local_mac.items():
            emit({"event": "ready", "interface": ifname, "mac": mac.hex()})

    def stop(self) -> None:
        for session in list(self.sessions.values()):
            self._close(session, "runner-stop", send_padt=True)
        self.port.stopService()

    # -- PPPoE side ------------------------------------------------------------------------
    def _pppoe_event(self, event: SessionOpened | SessionTerminated | Any) -> None:
        key = event.key
        base = {"sid": key.session_id, "mac": key.mac.hex(), "interface": key.interface}
        if isinstance(event, SessionOpened):
            emit({"event": "SessionOpened", **base, "host_uniq": (event.host_uniq or b"").hex()})
            link = PppLink(self.link_config, max_payload=event.max_payload)
            new = _Session(key, link)
            self.sessions[key] = new
            link.start(self.reactor.seconds())
            self._pump(new)
        elif isinstance(event, SessionTerminated):
            emit({"event": "SessionTerminated", **base, "by_peer": event.by_peer})
            session = self.sessions.get(key)
            if session is not None:
                self._close(session, "padt", send_padt=False)

    def _session_frame(self, interface: str, mac: MacAddress, session_id: int, ppp: bytes) -> None:
        session = self.sessions.get(PppoeSessionKey(interface, mac, session_id))
        if session is None:
            return
        session.link.receive_frame(ppp, self.reactor.seconds())
        self._pump(session)

    # -- PPP side --------------------------------------------------------------------------
    def _pump(self, session: _Session) -> None:
        if session.done:
            return
        key, link = session.key, session.link
        for frame in link.frames_to_send():
            self.port.send_session_frame(key.interface, key.mac, key.session_id, frame)
        now = self.reactor.seconds()
        while (event := link.next_event()) is not None:
            if isinstance(event, LcpOpened):
                emit({"event": "LcpOpened", "sid": key.session_id, "peer_mru": event.peer_mru})
            elif isinstance(event, CredentialsReceived):
                ok = verify(event.auth, self.secret)
                emit(
                    {
                        "event": "CredentialsReceived",
                        "sid": key.session_id,
                        "username": event.username,
                        "kind": type(event.auth).__name__,
                        "ident": getattr(event.auth, "ident", None),
                        "algorithm": getattr(event.auth, "algorithm", None),
                        "verdict": "accept" if ok else "reject",
                    }
                )
                if ok:
                    link.accept("Welcome", now)
                    self.port.setup_done(key)
                else:
                    link.reject("Authentication failed", now)
                for frame in link.frames_to_send():
                    self.port.send_session_frame(key.interface, key.mac, key.session_id, frame)
            elif isinstance(event, LinkTerminated):
                emit(
                    {
                        "event": "LinkTerminated",
                        "sid": key.session_id,
                        "reason": event.reason,
                        "by_peer": event.by_peer,
                    }
                )
                # Let the Terminate-Ack (already written above) precede the PADT.
                self._close(session, event.reason, send_padt=True)
                return
        self._arm(session)

    def _arm(self, session: _Session) -> None:
        if session.timer is not None and session.timer.active():
            session.timer.cancel()
        session.timer = None
        when = session.link.get_timer()
        if when is not None and not session.done:
            delay = max(0.0, when - self.reactor.seconds())
            session.timer = self.reactor.callLater(delay, self._expire, session)

    def _expire(self, session: _Session) -> None:
        session.timer = None
        if session.done:
            return
        session.link.handle_timer(self.reactor.seconds())
        self._pump(session)

    def _close(self, session: _Session, reason: str, *, send_padt: bool) -> None:
        if session.done:
            return
        session.done = True
        if session.timer is not None and session.timer.active():
            session.timer.cancel()
        session.timer = None
        self.sessions.pop(session.key, None)
        if send_padt:
            self.port.terminate(session.key, reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--interface", action="append", required=True)
    parser.add_argument("--password", required=True, help="the one subscriber secret")
    parser.add_argument("--auth", default="chap", help="comma list: chap, pap, mschapv2")
    parser.add_argument("--ac-name", default="broker-ac")
    parser.add_argument("--echo-interval", type=float, default=0.0)
    parser.add_argument("--restart-timer", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="exit after this many s")
    args = parser.parse_args(argv)

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    config = LinkConfig(
        auth=tuple(a for a in args.auth.split(",") if a),
        echo_interval=args.echo_interval,
        restart_timer=args.restart_timer,
    )
    runner = PppoePppRunner(
        reactor,
        args.interface,
        secret=args.password.encode(),
        link_config=config,
        ac_name=args.ac_name,
    )
    outcome = {"reason": "timeout"}

    def finish(reason: str) -> None:
        if not reactor.running:
            return
        outcome["reason"] = reason
        runner.stop()
        emit({"event": "counters", "port": runner.port.counters, "pppoe": runner.engine.counters})
        reactor.stop()

    def on_signal(signum: int, frame: object) -> None:
        reactor.callFromThread(finish, "signal")

    runner.start()
    signal.signal(signal.SIGTERM, on_signal)
    reactor.callLater(args.timeout, finish, "timeout")
    reactor.run(installSignalHandlers=False)
    emit({"event": "exit", "reason": outcome["reason"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
