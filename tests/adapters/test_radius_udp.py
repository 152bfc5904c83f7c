"""RadiusUdpAdapter on real loopback sockets with a private reactor and scripted servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.selectreactor import SelectReactor

from broker.adapters.radius_udp import AuthResult, RadiusUdpAdapter
from broker.radius import packet as p
from broker.radius.client import (
    AccessAccepted,
    AccessRejected,
    AccessTimedOut,
    AuthRequest,
    Event,
    RadiusClient,
    RadiusServer,
    ServerDead,
)
from broker.radius.constants import Attr, Code

SECRET = b"loopback-secret"
REQ = AuthRequest("alice", pap_password=b"pw", nas_identifier="lac-test")


class ScriptedServer(DatagramProtocol):
    """Answers each Access-Request with ``answer(request) -> list of datagrams``."""

    def __init__(self, answer: Callable[[p.RadiusPacket], list[bytes]] | None) -> None:
        self.answer = answer
        self.requests: list[p.RadiusPacket] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        req = p.decode_packet(datagram)
        self.requests.append(req)
        if self.answer is not None and self.transport is not None:
            for out in self.answer(req):
                self.transport.write(out, addr)


def accept_with_forgery(req: p.RadiusPacket) -> list[bytes]:
    forged = p.encode_response(
        Code.ACCESS_ACCEPT,
        req.identifier,
        [],
        SECRET,
        req.authenticator,
        add_message_authenticator=False,
    )
    good = p.encode_response(
        Code.ACCESS_ACCEPT,
        req.identifier,
        [(Attr.REPLY_MESSAGE, b"ok")],
        SECRET,
        req.authenticator,
    )
    return [forged, good]


def run_until(reactor: SelectReactor, done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = reactor.seconds() + timeout
    while not done() and reactor.seconds() < deadline:
        reactor.iterate(0.01)
    assert done(), "timed out waiting for the reactor"


def result_of(d: Deferred[AuthResult]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


def setup(
    answers: list[Callable[[p.RadiusPacket], list[bytes]] | None], timeout: tuple[float, ...]
) -> tuple[SelectReactor, RadiusUdpAdapter, list[ScriptedServer], list[Event], list[Any]]:
    reactor = SelectReactor()
    servers = [ScriptedServer(a) for a in answers]
    ports = [reactor.listenUDP(0, s, interface="127.0.0.1") for s in servers]
    config = [
        RadiusServer(f"s{i}", "127.0.0.1", port.getHost().port, SECRET, timeout=timeout)
        for i, port in enumerate(ports)
    ]
    seen: list[Event] = []
    adapter = RadiusUdpAdapter(RadiusClient(config, sockets=3), reactor, "127.0.0.1", seen.append)
    adapter.start()
    return reactor, adapter, servers, seen, ports


def teardown(reactor: SelectReactor, adapter: RadiusUdpAdapter, ports: list[Any]) -> None:
    adapter.stop()
    for port in ports:
        port.stopListening()
    for _ in range(5):
        reactor.iterate(0)


def test_accept_through_real_sockets_and_forgery_counted() -> None:
    reactor, adapter, servers, seen, ports = setup([accept_with_forgery], (2.0,))
    try:
        assert len(adapter.ports) == 3 and all(adapter.ports)
        box = result_of(adapter.authenticate(REQ, key="k1"))
        run_until(reactor, lambda: bool(box))
        (res,) = box
        assert isinstance(res, AccessAccepted) and res.key == "k1"
        assert res.reply_message == "ok" and res.server == "s0"
        assert adapter.engine.counters["forged_replies"] == 1
        assert seen == [res]
        assert adapter.counters["tx"] == 1 and adapter.counters["rx"] == 2
        hidden = servers[0].requests[0].get(Attr.USER_PASSWORD)
        assert hidden is not None
        assert p.unhide_password(hidden, SECRET, servers[0].requests[0].authenticator) == b"pw"
    finally:
        teardown(reactor, adapter, ports)


def test_failover_from_silent_server_and_reject() -> None:
    def reject(req: p.RadiusPacket) -> list[bytes]:
        return [
            p.encode_response(Code.ACCESS_REJECT, req.identifier, [], SECRET, req.authenticator)
        ]

    reactor, adapter, servers, seen, ports = setup([None, reject], (0.1, 0.1))
    try:
        box = result_of(adapter.authenticate(REQ))
        run_until(reactor, lambda: bool(box))
        (res,) = box
        assert isinstance(res, AccessRejected) and res.server == "s1"
        assert len(servers[0].requests) == 2  # first try + one retransmission
        assert ServerDead("s0") in seen
    finally:
        teardown(reactor, adapter, ports)


def test_all_silent_times_out_and_cancel_and_stop() -> None:
    reactor, adapter, _servers, _seen, ports = setup([None], (0.05,))
    try:
        box = result_of(adapter.authenticate(REQ))
        run_until(reactor, lambda: bool(box))
        assert isinstance(box[0], AccessTimedOut)
        d = adapter.authenticate(REQ, key="c")
        cancelled = result_of(d)
        d.cancel()
        assert cancelled[0].check(CancelledError)
        assert adapter.engine.in_flight == 0
        pending = result_of(adapter.authenticate(REQ, key="p"))
    finally:
        teardown(reactor, adapter, ports)
    assert pending == [AccessTimedOut("p")]
