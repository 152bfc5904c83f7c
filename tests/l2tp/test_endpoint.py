"""L2tpEndpoint: demultiplexing by tunnel id, malformed input counted and dropped, the
timer heap, Tunnel-ID-0 routing (RFC 2661 3.1, 4.4.3 Assigned Tunnel ID, 8.1)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import (
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control
from broker.l2tp.config import TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import IncomingTunnel, L2tpEvent, TunnelClosed, TunnelEstablished

LAC = ("192.0.2.1", 1701)
LNS = ("192.0.2.2", 1701)


def sccrq(peer_tid: int, ns: int = 0) -> bytes:
    avps = (
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "peer"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 1),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, peer_tid),
    )
    return encode_control(ControlMessage(0, 0, ns, 0, MessageType.SCCRQ, avps))


def lns_endpoint(**kw: object) -> L2tpEndpoint:
    return L2tpEndpoint(
        rand_bytes=random.Random(5).randbytes,
        lns_config=TunnelConfig(host_name="lns"),
        strict=True,
        **kw,  # type: ignore[arg-type]
    )


def events(ep: L2tpEndpoint) -> list[L2tpEvent]:
    out = []
    while (e := ep.next_event()) is not None:
        out.append(e)
    return out


MALFORMED = [
    b"",
    b"\xc8",
    b"\xc8\x02\x00\x0c\x00\x01\x00",  # 7 octets
    b"\xc8\x03\x00\x0c\x00\x01\x00\x00\x00\x00\x00\x00",  # version 3
    b"\xc8\x02\x00\x40\x00\x01\x00\x00\x00\x00\x00\x00",  # Length lies (64 > 12)
    # AVP whose length overruns the message
    b"\xc8\x02\x00\x14\x00\x01\x00\x00\x00\x00\x00\x00\x80\x20\x00\x00\x00\x00\x00\x01",
    # zero-length AVP (Length 0 < 6)
    b"\xc8\x02\x00\x12\x00\x01\x00\x00\x00\x00\x00\x00\x80\x00\x00\x00\x00\x00",
]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_counted_and_dropped(data: bytes) -> None:
    ep = lns_endpoint()
    tid = ep.open_tunnel(LNS, TunnelConfig(), 0.0)
    ep.datagrams_to_send(0.0)
    patched = data
    if len(data) >= 6 and data[4:6] == b"\x00\x01":
        patched = data[:4] + tid.to_bytes(2, "big") + data[6:]
    ep.receive_datagram(patched, LNS, 0.1)
    assert ep.counters["malformed"] == 1
    assert ep.datagrams_to_send(0.1) == []
    assert ep.counters["internal_errors"] == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_never_raise(data: bytes) -> None:
    ep = lns_endpoint()
    ep.receive_datagram(data, LAC, 0.0)
    ep.receive_datagram(b"\xc8\x02" + data, LAC, 0.0)
    ep.datagrams_to_send(0.0)
    assert ep.counters["internal_errors"] == 0


def test_data_messages_and_unknown_tunnels_are_counted() -> None:
    ep = lns_endpoint()
    ep.receive_datagram(b"\x00\x02\x00\x05\x00\x06\xff\x03", LAC, 0.0)  # T=0 data message
    assert ep.counters["data_ignored"] == 1
    hello = encode_control(ControlMessage(4242, 0, 0, 0, MessageType.HELLO, ()))
    ep.receive_datagram(hello, LAC, 0.0)
    assert ep.counters["unknown_tunnel"] == 1
    (stale,) = ep.datagrams_to_send(0.0)  # a StopCCN for the stale tunnel (see below)
    assert decode_control(stale[0]).message_type is MessageType.StopCCN


def test_retransmitted_sccrq_reaches_the_same_tunnel() -> None:
    ep = lns_endpoint()
    ep.receive_datagram(sccrq(31), LAC, 0.0)
    first = [decode_control(d) for d, _p in ep.datagrams_to_send(0.0)]
    assert [m.message_type for m in first] == [MessageType.SCCRP]
    ep.receive_datagram(sccrq(31), LAC, 1.0)  # our SCCRP was lost; they retransmit
    again = [decode_control(d) for d, _p in ep.datagrams_to_send(1.0)]
    assert len(ep.tunnels) == 1
    assert [m.message_type for m in again] == [None]  # duplicate: ZLB with Nr=1
    assert again[0].nr == 1
    ep.receive_datagram(sccrq(32), LAC, 1.0)  # a different peer tunnel: a second tunnel
    assert len(ep.tunnels) == 2
    ep.receive_datagram(sccrq(33, ns=5), LAC, 1.0)  # must start at Ns 0
    assert len(ep.tunnels) == 2


def test_no_lns_role_ignores_sccrq() -> None:
    ep = L2tpEndpoint(strict=True)
    ep.receive_datagram(sccrq(31), LAC, 0.0)
    assert ep.datagrams_to_send(0.0) == [] and not ep.tunnels
    assert ep.counters["unknown_tunnel"] == 1


def test_stopccn_with_tunnel_id_zero_is_routed_by_assigned_tunnel_id() -> None:
    ep = lns_endpoint()
    ep.receive_datagram(sccrq(31), LAC, 0.0)
    ep.datagrams_to_send(0.0)
    stop = ControlMessage(
        0,
        0,
        1,
        1,
        MessageType.StopCCN,
        (uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 31), result_code_avp(6)),
    )
    ep.receive_datagram(encode_control(stop), LAC, 0.5)
    closed = [e for e in events(ep) if isinstance(e, TunnelClosed)]
    assert closed and closed[0].reason == "stopccn-received" and closed[0].result == 6
    (ack,) = [decode_control(d) for d, _p in ep.datagrams_to_send(0.5)]
    assert ack.is_zlb and ack.nr == 2 and ack.tunnel_id == 31


def test_wrong_peer_dropped_and_new_port_accepted_during_setup() -> None:
    ep = L2tpEndpoint(rand_bytes=random.Random(1).randbytes, strict=True)
    tid = ep.open_tunnel(LNS, TunnelConfig(), 0.0)
    ep.datagrams_to_send(0.0)
    avps = (
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "lns"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 1),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 88),
    )
    sccrp = encode_control(ControlMessage(tid, 0, 0, 1, MessageType.SCCRP, avps))
    ep.receive_datagram(sccrp, ("198.51.100.7", 1701), 0.1)
    assert ep.counters["wrong_peer"] == 1
    ep.receive_datagram(sccrp, ("192.0.2.2", 40000), 0.1)  # RFC 2661 8.1: new source port
    out = ep.datagrams_to_send(0.1)
    assert [decode_control(d).message_type for d, _p in out] == [MessageType.SCCCN]
    assert out[0][1] == ("192.0.2.2", 40000)
    assert any(isinstance(e, TunnelEstablished) for e in events(ep))
    info = ep.tunnel_info(tid)
    assert info == (("192.0.2.2", 40000), 88, "ESTABLISHED", 0)
    ep.receive_datagram(sccrp, ("192.0.2.2", 1701), 0.2)  # once up, the port is fixed
    assert ep.counters["wrong_peer"] == 2


def test_timer_heap_with_thousands_of_tunnels() -> None:
    ep = L2tpEndpoint(rand_bytes=random.Random(2).randbytes, strict=True)
    tids = [ep.open_tunnel(LNS, TunnelConfig(), i * 0.001) for i in range(3000)]
    assert len(set(tids)) == 3000 and 0 not in tids
    assert len(ep.datagrams_to_send(3.0)) == 3000
    assert ep.get_timer() == 1.0
    ep.handle_timer(1.0)  # only the first tunnel is due
    assert len(ep.datagrams_to_send(1.0)) == 1
    ep.handle_timer(2.0)
    assert len(ep.datagrams_to_send(2.0)) == 1000  # opened at 0.001 .. 1.000
    t = ep.get_timer()
    assert t is not None and abs(t - 2.001) < 1e-9
    while (deadline := ep.get_timer()) is not None:  # one schedule step per expiry
        ep.handle_timer(deadline)
        ep.datagrams_to_send(deadline)
    closed = [e for e in events(ep) if isinstance(e, TunnelClosed)]
    assert len(closed) == 3000 and {e.reason for e in closed} == {"retransmit-exhausted"}
    assert not ep.tunnels and ep.get_timer() is None


def test_internal_errors_are_counted_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = L2tpEndpoint(lns_config=TunnelConfig())
    ep.receive_datagram(sccrq(31), LAC, 0.0)
    (t,) = ep.tunnels.values()

    def boom(*_a: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(t, "receive", boom)
    ep.receive_datagram(sccrq(31), LAC, 0.1)
    assert ep.counters["internal_errors"] == 1


def test_hidden_avp_with_wrong_secret_is_malformed() -> None:
    ep = L2tpEndpoint(
        rand_bytes=random.Random(3).randbytes,
        lns_config=TunnelConfig(secret=b"right"),
        strict=True,
    )
    avps = (
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "peer"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 1, hidden=True),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 9),
    )
    data = encode_control(ControlMessage(0, 0, 0, 0, MessageType.SCCRQ, avps), b"wrong")
    ep.receive_datagram(data, LAC, 0.0)
    assert ep.counters["malformed"] == 1 and not ep.tunnels
    good = encode_control(ControlMessage(0, 0, 0, 0, MessageType.SCCRQ, avps), b"right")
    ep.receive_datagram(good, LAC, 0.0)
    assert len(ep.tunnels) == 1
    assert any(isinstance(e, IncomingTunnel) for e in events(ep))


def test_simultaneous_open_leaves_one_tunnel() -> None:
    # RFC 2661 4.4.3: both peers send an SCCRQ at once; the lower Tie Breaker wins.
    a = L2tpEndpoint(rand_bytes=random.Random(10).randbytes, lns_config=TunnelConfig(), strict=True)
    b = L2tpEndpoint(rand_bytes=random.Random(11).randbytes, lns_config=TunnelConfig(), strict=True)
    a_tid = a.open_tunnel(LNS, TunnelConfig(), 0.0)
    b_tid = b.open_tunnel(LAC, TunnelConfig(), 0.0)
    a_tb = int.from_bytes(a.tunnels[a_tid].tie_breaker or b"", "big")
    b_tb = int.from_bytes(b.tunnels[b_tid].tie_breaker or b"", "big")
    now = 0.0
    for _ in range(50):
        for d, _p in a.datagrams_to_send(now):
            b.receive_datagram(d, LAC, now)
        for d, _p in b.datagrams_to_send(now):
            a.receive_datagram(d, LNS, now)
        now += 0.05
        a.handle_timer(now)
        b.handle_timer(now)
    ev_a, ev_b = events(a), events(b)
    winner_events, loser_events = (ev_a, ev_b) if a_tb < b_tb else (ev_b, ev_a)
    lost = [e for e in loser_events if isinstance(e, TunnelClosed)]
    assert [e.reason for e in lost] == ["tie-breaker-lost"]
    assert [e for e in winner_events if isinstance(e, TunnelEstablished)]
    assert [e for e in loser_events if isinstance(e, IncomingTunnel)]
    assert len(a.tunnels) == 1 and len(b.tunnels) == 1


# -- stale tunnels after a restart (issue 9 item 4) ---------------------------------------


def hello(tid: int, ns: int, nr: int) -> bytes:
    return encode_control(ControlMessage(tid, 0, ns, nr, MessageType.HELLO, ()))


def test_lac_answers_a_message_on_an_unknown_tunnel_with_stopccn() -> None:
    ep = L2tpEndpoint(strict=True)
    ep.receive_datagram(hello(4242, ns=5, nr=9), LNS, 10.0)
    ((data, peer),) = ep.datagrams_to_send(10.0)
    assert peer == LNS
    stop = decode_control(data)
    assert stop.message_type is MessageType.StopCCN
    assert (stop.tunnel_id, stop.session_id, stop.ns, stop.nr) == (0, 0, 9, 6)
    atid = stop.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert atid is not None and atid.value == (4242).to_bytes(2, "big")
    result = stop.get(AvpType.RESULT_CODE)
    assert result is not None and result.value[:4] == b"\x00\x02\x00\x01"
    assert ep.counters["unknown_tunnel"] == 1 and ep.counters["stale_stopccn_sent"] == 1
    # the peer's retransmission within the interval: rate-limited; later: answered again
    ep.receive_datagram(hello(4242, ns=5, nr=9), LNS, 10.5)
    assert ep.datagrams_to_send(10.5) == []
    assert ep.counters["stale_rate_limited"] == 1
    ep.receive_datagram(hello(4242, ns=5, nr=9), LNS, 11.6)
    assert len(ep.datagrams_to_send(11.6)) == 1
    assert not ep.tunnels


def test_zlb_stopccn_and_undecodable_messages_are_not_answered() -> None:
    ep = L2tpEndpoint(strict=True)
    zlb = encode_control(ControlMessage(77, 0, 1, 1, None, ()))
    stopccn = encode_control(
        ControlMessage(
            77, 0, 1, 1, MessageType.StopCCN,
            (uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 9), result_code_avp(1)),
        )
    )  # fmt: skip
    for data in (zlb, stopccn, *MALFORMED):
        ep.receive_datagram(data, LNS, 1.0)
    assert ep.datagrams_to_send(1.0) == []
    assert ep.counters["stale_stopccn_sent"] == 0


def test_opt_out_does_not_answer() -> None:
    for ep in (lns_endpoint(stale_stopccn=False), L2tpEndpoint(strict=True, stale_stopccn=False)):
        ep.receive_datagram(hello(4242, 0, 0), LAC, 0.0)
        assert ep.datagrams_to_send(0.0) == []
    assert lns_endpoint().stale_stopccn is True


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 0xFFFF), st.floats(0, 0.5)), max_size=200))
def test_stale_answers_are_rate_limited(msgs: list[tuple[int, float]]) -> None:
    """At most ``stale_per_second`` answers per second (plus the initial burst), at most one
    per (peer, tunnel) per ``stale_interval``; every message is counted either way."""
    ep = L2tpEndpoint(strict=True, stale_per_second=10.0)
    now = 0.0
    sent: list[tuple[float, int]] = []
    for tid, step in msgs:
        now += step
        ep.receive_datagram(hello(tid, 0, 0), LNS, now)
        for data, _peer in ep.datagrams_to_send(now):
            atid = decode_control(data).get(AvpType.ASSIGNED_TUNNEL_ID)
            assert atid is not None
            sent.append((now, int.from_bytes(atid.value, "big")))
    c = ep.counters
    assert c["stale_stopccn_sent"] + c["stale_rate_limited"] == len(msgs)
    assert len(sent) <= 10 + 10 * now + 1e-9
    last: dict[int, float] = {}
    for t, tid in sent:
        assert tid not in last or t - last[tid] >= 1.0
        last[tid] = t


def _exchange(a: L2tpEndpoint, b: L2tpEndpoint, now: float, rounds: int = 20) -> None:
    """Carry datagrams between ``a`` (at LAC) and ``b`` (at LNS) until both are quiet."""
    for _ in range(rounds):
        out_a, out_b = a.datagrams_to_send(now), b.datagrams_to_send(now)
        if not out_a and not out_b:
            return
        for data, _p in out_a:
            b.receive_datagram(data, LAC, now)
        for data, _p in out_b:
            a.receive_datagram(data, LNS, now)


def test_restarted_lac_clears_the_lns_stale_tunnel_at_its_next_hello() -> None:
    """The LNS keeps the tunnel of a LAC that was killed; its next HELLO reaches the restarted
    LAC, whose StopCCN (Tunnel ID 0, Assigned Tunnel ID) clears the tunnel on the LNS at once
    instead of after the whole retransmission schedule."""
    lns = L2tpEndpoint(
        rand_bytes=random.Random(5).randbytes,
        lns_config=TunnelConfig(host_name="lns", hello_interval=5.0),
        strict=True,
    )
    lac = L2tpEndpoint(rand_bytes=random.Random(6).randbytes, strict=True)
    lac.open_tunnel(LNS, TunnelConfig(hello_interval=5.0), 0.0)
    for t in (0.0, 0.2, 0.4):
        lac.handle_timer(t)
        lns.handle_timer(t)
        _exchange(lac, lns, t)
    assert any(isinstance(e, TunnelEstablished) for e in events(lns))
    assert len(lns.tunnels) == 1
    restarted = L2tpEndpoint(rand_bytes=random.Random(7).randbytes, strict=True)  # SIGKILL
    now = 0.4
    closed: list[L2tpEvent] = []
    while now < 8.0 and not closed:
        now += 0.1
        lns.handle_timer(now)
        _exchange(restarted, lns, now)
        closed = [e for e in events(lns) if isinstance(e, TunnelClosed)]
    assert closed and closed[0].reason == "stopccn-received", closed
    assert now < 6.0  # at the first HELLO (5 s idle), not after 1+2+4+8+8 s of retransmits
    assert restarted.counters["stale_stopccn_sent"] == 1
    assert not restarted.tunnels


def test_restarted_lns_clears_the_lac_stale_tunnel_at_its_next_hello() -> None:
    """The mirror case: the LNS restarts; the LAC's next HELLO gets the StopCCN."""
    lns = L2tpEndpoint(
        rand_bytes=random.Random(5).randbytes,
        lns_config=TunnelConfig(host_name="lns"),
        strict=True,
    )
    lac = L2tpEndpoint(rand_bytes=random.Random(6).randbytes, strict=True)
    lac.open_tunnel(LNS, TunnelConfig(hello_interval=5.0), 0.0)
    for t in (0.0, 0.2, 0.4):
        lac.handle_timer(t)
        lns.handle_timer(t)
        _exchange(lac, lns, t)
    assert any(isinstance(e, TunnelEstablished) for e in events(lac))
    restarted = L2tpEndpoint(
        rand_bytes=random.Random(8).randbytes,
        lns_config=TunnelConfig(host_name="lns"),
        strict=True,
    )
    now = 0.4
    closed: list[L2tpEvent] = []
    while now < 8.0 and not closed:
        now += 0.1
        lac.handle_timer(now)
        _exchange(lac, restarted, now)
        closed = [e for e in events(lac) if isinstance(e, TunnelClosed)]
    assert closed and closed[0].reason == "stopccn-received", closed
    assert now < 6.0
    assert not restarted.tunnels
