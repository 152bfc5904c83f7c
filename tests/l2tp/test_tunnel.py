"""TunnelConnection through paired endpoints: tunnel authentication (RFC 2661 5.1.1, 4.4.3),
hidden AVPs (4.3), unknown mandatory AVPs (4.1), refusals with Result Codes (4.4.2), the
StopCCN in both directions (5.7) and the Tie Breaker (4.4.3)."""

from __future__ import annotations

import random

from broker.l2tp.avps import (
    Avp,
    bytes_avp,
    protocol_version_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import (
    IncomingTunnel,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from tests.support.l2tp_net import LAC_ADDR, LNS_ADDR, Net


def up(net: Net, cfg: TunnelConfig, sessions: int = 0) -> int:
    tid = net.lac.open_tunnel(LNS_ADDR, cfg, 0.0)
    for _ in range(sessions):
        net.lac.open_session(tid, CallParams(), 0.0)
    net.run(
        until=30,
        stop=lambda: bool(
            net.of(net.lns_events, TunnelEstablished) or net.of(net.lac_events, TunnelClosed)
        ),
    )
    net.run(until=net.now + 1)
    return tid


def test_tunnel_auth_success_both_directions() -> None:
    net = Net(lns_config=TunnelConfig(host_name="lns", secret=b"shared"))
    tid = up(net, TunnelConfig(host_name="lac", secret=b"shared"), sessions=2)
    est = net.of(net.lac_events, TunnelEstablished)
    assert est and est[0].tunnel_id == tid and est[0].peer_host_name == "lns"
    assert net.of(net.lns_events, IncomingTunnel)[0].peer_host_name == "lac"
    assert len(net.of(net.lac_events, SessionEstablished)) == 2
    msgs = [decode_control(d, b"shared") for _t, _w, d in net.sent]
    by_type = {m.message_type: m for m in msgs if m.message_type is not None}
    # challenges both ways, answered in SCCRP (id 2) and SCCCN (id 3)
    assert by_type[MessageType.SCCRQ].get(AvpType.CHALLENGE) is not None
    assert by_type[MessageType.SCCRP].get(AvpType.CHALLENGE) is not None
    assert by_type[MessageType.SCCRP].get(AvpType.CHALLENGE_RESPONSE) is not None
    assert by_type[MessageType.SCCCN].get(AvpType.CHALLENGE_RESPONSE) is not None
    sccrq = by_type[MessageType.SCCRQ]
    for t in (
        AvpType.HOST_NAME,
        AvpType.FRAMING_CAPABILITIES,
        AvpType.BEARER_CAPABILITIES,
        AvpType.TIE_BREAKER,
        AvpType.ASSIGNED_TUNNEL_ID,
        AvpType.RECEIVE_WINDOW_SIZE,
        AvpType.PROTOCOL_VERSION,
        AvpType.FIRMWARE_REVISION,
        AvpType.VENDOR_NAME,
    ):
        assert sccrq.get(t) is not None, t
    assert net.lac.counters["auth_failed"] == 0


def test_wrong_secret_is_refused_not_authorized() -> None:
    net = Net(lns_config=TunnelConfig(host_name="lns", secret=b"right"))
    tid = up(net, TunnelConfig(secret=b"wrong"), sessions=1)
    closed = net.of(net.lac_events, TunnelClosed)
    assert closed == [TunnelClosed(tid, "auth-failed", 4, None, "challenge failed", True)]
    assert net.of(net.lac_events, SessionClosed)[0].during_setup
    peer_closed = net.of(net.lns_events, TunnelClosed)
    assert peer_closed[0].reason == "stopccn-received" and peer_closed[0].result == 4
    assert not net.of(net.lns_events, TunnelEstablished)
    assert net.lac.counters["auth_failed"] == 1


def test_lns_without_secret_refuses_a_challenge() -> None:
    net = Net(lns_config=TunnelConfig(host_name="lns"))
    up(net, TunnelConfig(secret=b"x"))
    assert net.of(net.lac_events, TunnelClosed)[0].result == 4
    assert net.of(net.lns_events, TunnelClosed)[0].reason == "auth-failed"


def test_lac_without_secret_refuses_an_lns_challenge() -> None:
    net = Net(lns_config=TunnelConfig(host_name="lns", secret=b"x"))
    up(net, TunnelConfig())
    assert net.of(net.lac_events, TunnelClosed)[0].reason == "auth-failed"
    assert net.of(net.lns_events, TunnelClosed)[0].result == 4


def test_scccn_with_wrong_response_is_refused() -> None:
    # the LNS checks the SCCCN answer to its own challenge (RFC 2661 7.2.1 wait-ctl-conn)
    net = Net(lns_config=TunnelConfig(host_name="lns", secret=b"k"))
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(secret=b"k"), 0.0)
    net.run(until=0.001)
    net.lac.tunnels[tid].config = TunnelConfig(secret=b"other")  # answer with the wrong key
    net.lac.tunnels[tid]._our_challenge = None  # and do not check theirs
    net.run(until=5)
    assert net.of(net.lns_events, TunnelClosed)[0].reason == "auth-failed"
    assert net.of(net.lac_events, TunnelClosed)[0].reason == "stopccn-received"


def test_hidden_avps_end_to_end() -> None:
    cfg = TunnelConfig(secret=b"hide-me", hide_avps=True)
    net = Net(lns_config=TunnelConfig(host_name="lns", secret=b"hide-me"))
    tid = up(net, cfg)
    params = CallParams(
        calling_number="0301234567",
        called_number="isp",
        authen_type=2,
        authen_name="alice@example.net",
        authen_challenge=b"\x01" * 16,
        authen_id=7,
        authen_response=b"\x02" * 16,
        initial_received_confreq=b"\x01\x04\x05\xd4",
        last_sent_confreq=b"\x03\x05\xc2\x23\x05",
        last_received_confreq=b"\x01\x04\x05\xd4",
    )
    net.lac.open_session(tid, params, net.now)
    net.run(until=net.now + 5)
    lns_up = net.of(net.lns_events, SessionEstablished)
    assert lns_up and lns_up[0].params is not None
    got = lns_up[0].params
    for field in (
        "calling_number",
        "called_number",
        "authen_type",
        "authen_name",
        "authen_challenge",
        "authen_id",
        "authen_response",
        "initial_received_confreq",
        "last_sent_confreq",
        "last_received_confreq",
    ):
        assert getattr(got, field) == getattr(params, field), field
    wire = b"".join(d for _t, who, d in net.sent if who == "lac")
    assert b"alice@example.net" not in wire and b"0301234567" not in wire
    iccn = next(
        m
        for _t, who, d in net.sent
        if who == "lac" and (m := decode_control(d, b"hide-me")).message_type is MessageType.ICCN
    )
    name = iccn.get(AvpType.PROXY_AUTHEN_NAME)
    assert name is not None and name.hidden and iccn.get(AvpType.RANDOM_VECTOR) is not None


def test_tunnel_policy_refusal_carries_result() -> None:
    net = Net(lns_tunnel_policy=lambda peer, host: (2, 7, "try another"))
    up(net, TunnelConfig())
    closed = net.of(net.lac_events, TunnelClosed)
    assert closed[0].reason == "stopccn-received"
    assert (closed[0].result, closed[0].error, closed[0].message) == (2, 7, "try another")
    assert closed[0].during_setup


def test_local_close_sends_stopccn_with_result_and_clears_sessions() -> None:
    net = Net()
    tid = up(net, TunnelConfig(), sessions=3)
    net.lac.close_tunnel(tid, 6, None, "maintenance", net.now)
    net.run(until=net.now + 2)
    assert len(net.of(net.lac_events, SessionClosed)) == 3
    assert all(not e.by_peer for e in net.of(net.lac_events, SessionClosed))
    assert [e.reason for e in net.of(net.lac_events, TunnelClosed)] == ["local"]
    peer_sessions = net.of(net.lns_events, SessionClosed)
    assert len(peer_sessions) == 3 and all(e.by_peer and e.result == 6 for e in peer_sessions)
    stop = next(
        m
        for _t, who, d in net.sent
        if who == "lac" and (m := decode_control(d)).message_type is MessageType.StopCCN
    )
    atid = stop.get(AvpType.ASSIGNED_TUNNEL_ID)
    assert atid is not None and int.from_bytes(atid.value, "big") == tid
    with_closed_tunnel = net.lac.tunnel_info(tid)
    assert with_closed_tunnel is not None and with_closed_tunnel[2] == "CLOSING"


def _raw_sccrq(tid: int, extra: tuple[Avp, ...] = (), ns: int = 0) -> bytes:
    avps = (
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "raw"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 1),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, tid),
        *extra,
    )
    return encode_control(ControlMessage(0, 0, ns, 0, MessageType.SCCRQ, avps))


def _raw_avp(t: int, value: bytes, mandatory: bool, vendor: int = 0) -> bytes:
    word = (6 + len(value)) | (0x8000 if mandatory else 0)
    return word.to_bytes(2, "big") + vendor.to_bytes(2, "big") + t.to_bytes(2, "big") + value


def _with_raw_avp(data: bytes, avp: bytes) -> bytes:
    body = data[12:] + avp
    return data[:2] + (12 + len(body)).to_bytes(2, "big") + data[4:12] + body


def test_unknown_mandatory_avp_in_tunnel_message_clears_tunnel_2_8() -> None:
    lns = L2tpEndpoint(
        rand_bytes=random.Random(1).randbytes, lns_config=TunnelConfig(), strict=True
    )
    lns.receive_datagram(_raw_sccrq(55), LAC_ADDR, 0.0)
    out = lns.datagrams_to_send(0.0)
    sccrp = decode_control(out[0][0])
    our_tid = int.from_bytes(sccrp.get(AvpType.ASSIGNED_TUNNEL_ID).value, "big")  # type: ignore[union-attr]
    hello = encode_control(ControlMessage(our_tid, 0, 1, 1, MessageType.HELLO, ()))
    lns.receive_datagram(_with_raw_avp(hello, _raw_avp(999, b"x", True)), LAC_ADDR, 0.1)
    msgs = [decode_control(d) for d, _p in lns.datagrams_to_send(0.1)]
    stop = next(m for m in msgs if m.message_type is MessageType.StopCCN)
    assert stop.nr == 2  # the offending message was acknowledged
    rc = stop.get(AvpType.RESULT_CODE)
    assert rc is not None and rc.value[:4] == b"\x00\x02\x00\x08"
    assert b"999" in rc.value
    events = []
    while (e := lns.next_event()) is not None:
        events.append(e)
    assert any(isinstance(e, TunnelClosed) and e.reason == "unknown-mandatory-avp" for e in events)
    assert lns.counters["malformed"] == 1


def test_unknown_optional_avp_is_ignored() -> None:
    lns = L2tpEndpoint(
        rand_bytes=random.Random(1).randbytes, lns_config=TunnelConfig(), strict=True
    )
    data = _with_raw_avp(_raw_sccrq(55), _raw_avp(999, b"x", False, vendor=9))
    lns.receive_datagram(data, LAC_ADDR, 0.0)
    out = [decode_control(d) for d, _p in lns.datagrams_to_send(0.0)]
    assert out[0].message_type is MessageType.SCCRP


def test_unsupported_version_refused_with_result_5() -> None:
    lns = L2tpEndpoint(
        rand_bytes=random.Random(1).randbytes, lns_config=TunnelConfig(), strict=True
    )
    avps = (
        bytes_avp(AvpType.PROTOCOL_VERSION, b"\x02\x00"),
        str_avp(AvpType.HOST_NAME, "raw"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 1),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 9),
    )
    lns.receive_datagram(
        encode_control(ControlMessage(0, 0, 0, 0, MessageType.SCCRQ, avps)), LAC_ADDR, 0.0
    )
    (stop,) = [decode_control(d) for d, _p in lns.datagrams_to_send(0.0)]
    assert stop.message_type is MessageType.StopCCN and stop.tunnel_id == 9
    rc = stop.get(AvpType.RESULT_CODE)
    assert rc is not None and rc.value[:4] == b"\x00\x05\x01\x00"


def test_tie_breaker_lower_value_wins() -> None:
    # both ends open a tunnel to each other at once (RFC 2661 4.4.3)
    a = L2tpEndpoint(rand_bytes=random.Random(1).randbytes, lns_config=TunnelConfig(), strict=True)
    a_tid = a.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    a.datagrams_to_send(0.0)
    mine = int.from_bytes(a.tunnels[a_tid].tie_breaker or b"", "big")
    # the peer's SCCRQ with a lower tie breaker wins: ours is discarded silently
    a.receive_datagram(
        _raw_sccrq(70, (uint64_avp(AvpType.TIE_BREAKER, mine - 1, mandatory=False),)), LNS_ADDR, 0.1
    )
    events = []
    while (e := a.next_event()) is not None:
        events.append(e)
    assert any(isinstance(e, TunnelClosed) and e.reason == "tie-breaker-lost" for e in events)
    assert any(isinstance(e, IncomingTunnel) for e in events)
    out = [decode_control(d) for d, _p in a.datagrams_to_send(0.1)]
    assert [m.message_type for m in out] == [MessageType.SCCRP]
    # and a higher one loses: the incoming SCCRQ is ignored
    b = L2tpEndpoint(rand_bytes=random.Random(2).randbytes, lns_config=TunnelConfig(), strict=True)
    b_tid = b.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    b.datagrams_to_send(0.0)
    theirs = int.from_bytes(b.tunnels[b_tid].tie_breaker or b"", "big") + 1
    b.receive_datagram(
        _raw_sccrq(71, (uint64_avp(AvpType.TIE_BREAKER, theirs, mandatory=False),)), LNS_ADDR, 0.1
    )
    assert b.datagrams_to_send(0.1) == []
    assert b.tunnel_info(b_tid) is not None and b.counters["tie_breaker"] == 1


def test_sccrq_acked_but_never_answered_times_out() -> None:
    ep = L2tpEndpoint(rand_bytes=random.Random(4).randbytes, strict=True)
    tid = ep.open_tunnel(LNS_ADDR, TunnelConfig(setup_timeout=30.0), 0.0)
    ep.datagrams_to_send(0.0)
    ep.receive_datagram(
        encode_control(ControlMessage(tid, 0, 0, 1, None, ())), LNS_ADDR, 0.5
    )  # ZLB ack, then silence
    assert ep.get_timer() == 30.0  # counted from the SCCRQ, the last message exchanged
    ep.handle_timer(30.0)
    (stop,) = [decode_control(d) for d, _p in ep.datagrams_to_send(30.0)]
    assert stop.message_type is MessageType.StopCCN
    (closed,) = [e for e in iter(ep.next_event, None) if isinstance(e, TunnelClosed)]
    assert closed.reason == "setup-timeout" and closed.during_setup


def test_stopccn_not_stuck_behind_queued_session_messages() -> None:
    net = Net()
    tid = up(net, TunnelConfig())
    for _ in range(50):
        net.lac.open_session(tid, CallParams(), net.now)
    net.lac.close_tunnel(tid, 1, None, "now", net.now)
    net.run(until=net.now + 1, stop=lambda: bool(net.of(net.lns_events, TunnelClosed)))
    assert net.of(net.lns_events, TunnelClosed)[0].reason == "stopccn-received"
    icrqs = [
        d
        for _t, who, d in net.sent
        if who == "lac" and decode_control(d).message_type is MessageType.ICRQ
    ]
    assert len(icrqs) < 50  # the ones never sent were dropped, not delivered first
