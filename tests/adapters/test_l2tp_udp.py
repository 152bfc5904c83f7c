"""L2tpUdpAdapter with a fake engine: T-bit demux, flush order, timer, error containment."""

from __future__ import annotations

import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock

from broker.adapters.l2tp_udp import L2tpUdpAdapter, Peer

PEER: Peer = ("192.0.2.9", 1701)
CONTROL = bytes([0xC8, 0x02]) + bytes(10)  # T=1 L=1 S=1, version 2
DATA = bytes([0x40, 0x02, 0x00, 0x0A]) + bytes(6) + b"\xff\x03\xc0\x21"  # T=0 L=1


class FakeEngine:
    """Echoes every control datagram back and emits one event per input."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Peer, float]] = []
        self.out: list[tuple[bytes, Peer]] = []
        self.events: list[object] = []
        self.deadline: float | None = None
        self.timer_calls: list[float] = []
        self.fail: str | None = None

    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        if self.fail == "receive":
            raise ValueError("engine bug")
        self.received.append((data, peer, now))
        self.out.append((b"ack:" + data[:2], peer))
        self.events.append(("got", len(data)))
        self.deadline = now + 1.0

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]:
        if self.fail == "send":
            raise RuntimeError("engine bug")
        out, self.out = self.out, []
        return out

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.timer_calls.append(now)
        self.deadline = None
        self.out.append((b"retransmit", PEER))
        self.events.append(("timer", now))

    def next_event(self) -> object | None:
        if self.fail == "event":
            raise KeyError("engine bug")
        return self.events.pop(0) if self.events else None

    def open_tunnel(self, peer: Peer, config: str, now: float) -> int:
        self.out.append((b"sccrq", peer))
        self.deadline = now + 1.0
        return 42


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[tuple[bytes, Peer]] = []
        self.error: OSError | None = None

    def write(self, data: bytes, addr: Peer) -> None:
        if self.error is not None:
            raise self.error
        self.written.append((data, addr))


def make(
    **kwargs: Any,
) -> tuple[L2tpUdpAdapter[object], FakeEngine, FakeTransport, Clock, list[object]]:
    clock = Clock()
    clock.advance(1000)
    engine = FakeEngine()
    events: list[object] = []
    adapter: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        engine, clock, "192.0.2.1", on_event=events.append, **kwargs
    )
    transport = FakeTransport()
    adapter.makeConnection(transport)  # type: ignore[arg-type]
    return adapter, engine, transport, clock, events


def test_control_goes_to_engine_with_reactor_time_and_output_is_flushed() -> None:
    adapter, engine, transport, _, events = make()
    adapter.datagramReceived(CONTROL, ("192.0.2.9", 1701))
    assert engine.received == [(CONTROL, PEER, 1000.0)]
    assert transport.written == [(b"ack:\xc8\x02", PEER)]
    assert events == [("got", len(CONTROL))]
    assert adapter.timer.deadline == 1001.0
    assert adapter.counters["rx_control"] == 1 and adapter.counters["tx_control"] == 1


def test_data_messages_go_to_on_data_only() -> None:
    got: list[tuple[bytes, Peer]] = []
    adapter, engine, transport, _, _ = make(on_data=lambda d, p: got.append((d, p)))
    adapter.datagramReceived(DATA, PEER)
    assert got == [(DATA, PEER)]
    assert engine.received == [] and transport.written == []
    assert adapter.counters["rx_data"] == 1


def test_data_without_handler_is_counted_and_dropped() -> None:
    adapter, engine, _, _, _ = make()
    adapter.datagramReceived(DATA, PEER)
    assert engine.received == []
    assert adapter.counters["rx_data_dropped"] == 1


def test_empty_datagram_is_counted() -> None:
    adapter, engine, _, _, _ = make()
    adapter.datagramReceived(b"", PEER)
    assert engine.received == [] and adapter.counters["rx_empty"] == 1


def test_timer_expiry_flushes_output_and_events() -> None:
    adapter, engine, transport, clock, events = make()
    adapter.datagramReceived(CONTROL, PEER)
    transport.written.clear()
    clock.advance(1.0)
    assert engine.timer_calls == [1001.0]
    assert transport.written == [(b"retransmit", PEER)]
    assert events[-1] == ("timer", 1001.0)
    assert adapter.timer.deadline is None
    assert clock.getDelayedCalls() == []


def test_call_supplies_now_and_flushes() -> None:
    adapter, engine, transport, clock, _ = make()
    tid = adapter.call(engine.open_tunnel, PEER, "cfg")
    assert tid == 42
    assert transport.written == [(b"sccrq", PEER)]
    assert adapter.timer.deadline == clock.seconds() + 1.0


def test_engine_exceptions_never_escape() -> None:
    adapter, engine, _, clock, _ = make()
    for fail in ("receive", "send", "event"):
        engine.fail = fail
        adapter.datagramReceived(CONTROL, PEER)
        adapter.datagramReceived(CONTROL, PEER)
    assert adapter.counters["engine_errors"] == 6
    engine.fail = None
    clock.advance(5)


def test_callback_exceptions_never_escape() -> None:
    adapter, engine, _, _, _ = make()

    def bad(*_: object) -> None:
        raise RuntimeError("handler bug")

    adapter.on_event = bad
    adapter.on_data = bad
    adapter.datagramReceived(CONTROL, PEER)
    adapter.datagramReceived(DATA, PEER)
    assert adapter.counters["callback_errors"] == 2
    assert engine.received


def test_write_errors_are_counted() -> None:
    adapter, _, transport, _, _ = make()
    transport.error = OSError(101, "Network is unreachable")
    adapter.datagramReceived(CONTROL, PEER)
    adapter.send_data(b"x", PEER)
    assert adapter.counters["tx_errors"] == 2
    assert adapter.counters["tx_control"] == 0 and adapter.counters["tx_data"] == 0


def test_send_data_writes_payload() -> None:
    adapter, _, transport, _, _ = make()
    adapter.send_data(DATA, PEER)
    assert transport.written == [(DATA, PEER)]
    assert adapter.counters["tx_data"] == 1


def test_real_socket_roundtrip_and_receive_buffer() -> None:
    """A real UDP socket on loopback, on a private (not installed) reactor instance."""
    reactor = SelectReactor()
    engine = FakeEngine()
    adapter: L2tpUdpAdapter[object] = L2tpUdpAdapter(engine, reactor, "127.0.0.1", port=0)
    adapter.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    try:
        client.bind(("127.0.0.1", 0))
        size = adapter.receive_buffer_size()
        assert size is not None and size >= 200_000  # default rmem is ~200 KiB; we ask 4 MiB
        for _ in range(3):
            client.sendto(CONTROL, ("127.0.0.1", adapter.port))
        for _ in range(200):
            reactor.iterate(0.01)
            if len(engine.received) == 3:
                break
        assert len(engine.received) == 3
        assert engine.received[0][1] == client.getsockname()
        for _ in range(3):
            data, addr = client.recvfrom(2048)
            assert data == b"ack:\xc8\x02" and addr == ("127.0.0.1", adapter.port)
    finally:
        client.close()
        adapter.stop()
        for _ in range(5):
            reactor.iterate(0)


class NotingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.noted: list[tuple[int, float]] = []

    def note_data_received(self, tunnel_id: int, now: float) -> None:
        self.noted.append((tunnel_id, now))


def test_data_messages_are_noted_as_tunnel_activity() -> None:
    clock = Clock()
    engine = NotingEngine()
    adapter: L2tpUdpAdapter[object] = L2tpUdpAdapter(engine, clock, "192.0.2.1")
    adapter.makeConnection(FakeTransport())  # type: ignore[arg-type]
    with_length = bytes([0x40, 0x02, 0x00, 0x0A, 0x12, 0x34, 0x00, 0x01])
    without_length = bytes([0x00, 0x02, 0xAB, 0xCD, 0x00, 0x01])
    clock.advance(7)
    adapter.datagramReceived(with_length, PEER)
    adapter.datagramReceived(without_length, PEER)
    adapter.datagramReceived(b"\x00\x02\x01", PEER)  # too short for a tunnel id: not noted
    assert engine.noted == [(0x1234, 7.0), (0xABCD, 7.0)]
    assert adapter.counters["rx_data"] == 3


def test_our_lac_and_our_lns_over_real_udp_sockets() -> None:
    """Two real endpoints (LAC, LNS role) on loopback sockets: tunnel auth, hidden AVPs,
    a call with proxy material, a data message each way, CDN and StopCCN."""
    from broker.l2tp.config import CallParams, TunnelConfig
    from broker.l2tp.data import encode_data_header
    from broker.l2tp.endpoint import L2tpEndpoint
    from broker.l2tp.events import (
        SessionClosed,
        SessionEstablished,
        TunnelClosed,
        TunnelEstablished,
    )

    secret = b"loopback-secret"
    reactor = SelectReactor()
    lns_ep = L2tpEndpoint(lns_config=TunnelConfig(host_name="lns", secret=secret, hide_avps=True))
    lac_ep = L2tpEndpoint()
    lac_events: list[object] = []
    lns_events: list[object] = []
    lac_data: list[tuple[bytes, Peer]] = []
    lns_data: list[tuple[bytes, Peer]] = []
    lns: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        lns_ep, reactor, "127.0.0.1", 0, lns_events.append, lambda d, p: lns_data.append((d, p))
    )
    lac: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        lac_ep, reactor, "127.0.0.1", 0, lac_events.append, lambda d, p: lac_data.append((d, p))
    )
    lns.start()
    lac.start()

    def run_until(predicate: Any, timeout: float = 5.0) -> None:
        deadline = reactor.seconds() + timeout
        while not predicate() and reactor.seconds() < deadline:
            reactor.iterate(0.01)
        assert predicate(), (lac_events, lns_events)

    def of(events: list[object], kind: type) -> list[Any]:
        return [e for e in events if isinstance(e, kind)]

    try:
        lns_peer: Peer = ("127.0.0.1", lns.port)
        config = TunnelConfig(host_name="lac", secret=secret, hide_avps=True)
        tid = lac.call(lac_ep.open_tunnel, lns_peer, config)
        params = CallParams(
            calling_number="00:00:5e:00:53:01",
            called_number="svc",
            authen_type=3,
            authen_name="user@realm.example",
            authen_response=b"pap-password",
            authen_id=1,
        )
        sid = lac.call(lac_ep.open_session, tid, params)
        run_until(lambda: of(lac_events, SessionEstablished) and of(lns_events, SessionEstablished))
        up = of(lac_events, TunnelEstablished)[0]
        assert up.tunnel_id == tid and up.peer_host_name == "lns"
        lac_sess = of(lac_events, SessionEstablished)[0]
        lns_sess = of(lns_events, SessionEstablished)[0]
        assert lns_sess.params.calling_number == "00:00:5e:00:53:01"
        assert lns_sess.params.authen_name == "user@realm.example"
        assert lns_sess.params.authen_response == b"pap-password"

        # Data messages bypass the engine both ways.
        frame = b"\xff\x03\xc0\x21\x01\x01\x00\x04"
        lns.send_data(
            encode_data_header(lac_sess.peer_tunnel_id, lac_sess.peer_session_id) + frame,
            ("127.0.0.1", lac.port),
        )
        lac.send_data(
            encode_data_header(lns_sess.peer_tunnel_id, lns_sess.peer_session_id) + frame,
            lns_peer,
        )
        run_until(lambda: lac_data and lns_data)
        assert lac_data[0][0].endswith(frame) and lns_data[0][0].endswith(frame)

        # The LNS clears the call: the LAC sees a CDN from its peer.
        lns.call(lns_ep.close_session, lns_sess.tunnel_id, lns_sess.session_id, 3, None, "admin")
        run_until(lambda: of(lac_events, SessionClosed))
        closed = of(lac_events, SessionClosed)[0]
        assert closed.session_id == sid and closed.by_peer and closed.result == 3

        lac.call(lac_ep.close_tunnel, tid, 1, None, "done")
        run_until(lambda: of(lac_events, TunnelClosed) and of(lns_events, TunnelClosed))
        assert of(lns_events, TunnelClosed)[0].reason == "stopccn-received"
        for adapter in (lac, lns):
            assert adapter.counters["engine_errors"] == 0
            assert adapter.counters["callback_errors"] == 0
        assert lac_ep.counters["malformed"] == 0 and lns_ep.counters["malformed"] == 0
    finally:
        lac.stop()
        lns.stop()
        for _ in range(5):
            reactor.iterate(0)


def test_silent_peer_clears_the_tunnel_after_the_schedule_on_a_real_reactor() -> None:
    """The EngineTimer drives retransmission on a real reactor: a peer that never answers
    gets the SCCRQ once plus one retransmission per schedule step but the last, then the
    tunnel is cleared (RFC 2661 5.8)."""
    from broker.l2tp.config import TunnelConfig
    from broker.l2tp.endpoint import L2tpEndpoint
    from broker.l2tp.events import TunnelClosed

    reactor = SelectReactor()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    events: list[object] = []
    endpoint = L2tpEndpoint()
    adapter: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        endpoint, reactor, "127.0.0.1", 0, on_event=events.append
    )
    adapter.start()
    try:
        config = TunnelConfig(retransmit=(0.05, 0.05, 0.05))
        tid = adapter.call(endpoint.open_tunnel, sink.getsockname(), config)
        deadline = reactor.seconds() + 5
        while not events and reactor.seconds() < deadline:
            reactor.iterate(0.01)
        assert [type(e) for e in events] == [TunnelClosed]
        closed = events[0]
        assert isinstance(closed, TunnelClosed)
        assert closed.tunnel_id == tid and closed.reason == "retransmit-exhausted"
        received = []
        while True:
            try:
                received.append(sink.recv(2048))
            except BlockingIOError:
                break
        assert len(received) == 3 and len(set(received)) == 1
        assert adapter.timer.counters["fired"] >= 3
        assert adapter.timer.deadline is None or endpoint.get_timer() is not None
    finally:
        sink.close()
        adapter.stop()
        for _ in range(5):
            reactor.iterate(0)


def _control_like(tunnel_id: int, ns: int, nr: int, body: bytes) -> bytes:
    """A control header with a correct Length over an arbitrary AVP soup."""
    length = 12 + len(body)
    return (
        bytes([0xC8, 0x02])
        + length.to_bytes(2, "big")
        + tunnel_id.to_bytes(2, "big")
        + bytes(2)
        + ns.to_bytes(2, "big")
        + nr.to_bytes(2, "big")
        + body
    )


_avp_soup = st.lists(
    st.builds(
        lambda flags, t, value: (
            (((flags & 0xC0) << 8) | (6 + len(value))).to_bytes(2, "big")
            + bytes(2)
            + t.to_bytes(2, "big")
            + value
        ),
        st.integers(0, 255),
        st.integers(0, 47),
        st.binary(max_size=20),
    ),
    max_size=8,
).map(b"".join)

_datagrams = st.one_of(
    st.binary(min_size=0, max_size=80),
    st.builds(
        _control_like,
        st.sampled_from([0, 1, 0xFFFF]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.one_of(
            _avp_soup,
            # Message Type AVP first (SCCRQ, ICRQ, StopCCN, HELLO) then the soup.
            st.tuples(st.sampled_from([1, 4, 6, 10]), _avp_soup).map(
                lambda mt: bytes([0x80, 0x08, 0, 0, 0, 0, 0, mt[0]]) + mt[1]
            ),
        ),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_datagrams, min_size=1, max_size=20))
def test_random_datagrams_never_escape_the_adapter(datagrams: list[bytes]) -> None:
    """Garbage (control or data) into a real endpoint through the adapter: nothing raises,
    every control datagram reaches the endpoint, the engine reports no internal error."""
    from broker.l2tp.config import TunnelConfig
    from broker.l2tp.endpoint import L2tpEndpoint

    clock = Clock()
    endpoint = L2tpEndpoint(lns_config=TunnelConfig(secret=b"s", hide_avps=True))
    data: list[bytes] = []
    adapter: L2tpUdpAdapter[object] = L2tpUdpAdapter(
        endpoint, clock, "192.0.2.1", on_data=lambda d, p: data.append(d)
    )
    adapter.makeConnection(FakeTransport())  # type: ignore[arg-type]
    for dgram in datagrams:
        adapter.datagramReceived(dgram, PEER)
        clock.advance(0.5)
    clock.advance(60)
    controls = sum(1 for d in datagrams if d and d[0] & 0x80)
    assert adapter.counters["rx_control"] == controls
    assert (
        adapter.counters["rx_data"]
        == len(data)
        == sum(1 for d in datagrams if d and not d[0] & 0x80)
    )
    assert adapter.counters["engine_errors"] == 0
    assert endpoint.counters.get("internal_errors", 0) == 0
