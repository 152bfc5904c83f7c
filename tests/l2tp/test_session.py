"""Sessions through paired endpoints (RFC 2661 5.2.1, 6.6-6.8, 6.12-6.14, 7.4): ICRQ/ICRP/ICCN
with call parameters and proxy AVPs, CDN both ways with Result Codes and the RFC 3145
disconnect cause, LNS refusals, SLI/WEN, unknown mandatory AVPs in session messages."""

from __future__ import annotations

import random

import pytest

from broker.l2tp.avps import (
    Avp,
    accm_avp,
    call_errors_avp,
    ppp_disconnect_cause_avp,
    result_code_avp,
    uint16_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.events import (
    IncomingSession,
    SessionClosed,
    SessionEstablished,
    SetLinkInfoReceived,
    TunnelClosed,
    TunnelEstablished,
    WanErrorNotifyReceived,
)
from broker.l2tp.tunnel import REFUSAL_BACKLOG, TunnelConnection
from broker.wire import LocalProtocolError
from tests.support.l2tp_net import LNS_ADDR, Net


def touch(net: Net) -> None:
    """Messages queued straight on a tunnel (bypassing endpoint commands) need a drain."""
    for ep in (net.lac, net.lns):
        for t in list(ep.tunnels.values()):
            ep._touch(t)


def up(net: Net) -> tuple[int, TunnelConnection, TunnelConnection]:
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    net.run(until=5, stop=lambda: bool(net.of(net.lns_events, TunnelEstablished)))
    net.run(until=net.now + 1)
    return tid, net.lac.tunnels[tid], next(iter(net.lns.tunnels.values()))


def call(net: Net, tid: int, params: CallParams | None = None) -> tuple[int, int]:
    sid = net.lac.open_session(tid, params or CallParams(), net.now)
    touch(net)
    net.run(until=net.now + 2)
    lns_sid = next(
        e.session_id for e in net.of(net.lns_events, SessionEstablished) if e.peer_session_id == sid
    )
    return sid, lns_sid


def test_session_queued_until_tunnel_up_then_icrq_icrp_iccn() -> None:
    net = Net()
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    sid = net.lac.open_session(tid, CallParams(serial=42, calling_number="0049301"), 0.0)
    net.run(until=3)
    order = [
        m.message_type
        for _t, who, d in net.sent
        if who == "lac" and (m := decode_control(d)).message_type is not None
    ]
    assert order == [MessageType.SCCRQ, MessageType.SCCCN, MessageType.ICRQ, MessageType.ICCN]
    (lac_up,) = net.of(net.lac_events, SessionEstablished)
    (incoming,) = net.of(net.lns_events, IncomingSession)
    (lns_up,) = net.of(net.lns_events, SessionEstablished)
    assert lac_up.session_id == sid and lac_up.peer_session_id == lns_up.session_id
    assert incoming.params.serial == 42 and incoming.params.calling_number == "0049301"
    assert lns_up.peer_session_id == sid and lns_up.peer_tunnel_id == tid
    assert net.lac.tunnel_info(tid) == (LNS_ADDR, lac_up.peer_tunnel_id, "ESTABLISHED", 1)


def test_iccn_carries_speeds_framing_proxy_and_sequencing() -> None:
    net = Net()
    tid, _lt, _nt = up(net)
    params = CallParams(
        tx_connect_speed=16_000_000,
        rx_connect_speed=1_000_000,
        framing_type=1,
        bearer_type=1,
        physical_channel_id=3,
        private_group_id=b"grp",
        initial_received_confreq=b"\x01\x04\x05\xd4",
        authen_type=3,
        authen_name="bob",
        authen_id=1,
        authen_response=b"secret-pap",
        sequencing_required=True,
    )
    call(net, tid, params)
    (lns_up,) = net.of(net.lns_events, SessionEstablished)
    assert lns_up.sequencing_required and lns_up.params is not None
    got = lns_up.params
    for f in (
        "tx_connect_speed",
        "rx_connect_speed",
        "framing_type",
        "bearer_type",
        "physical_channel_id",
        "private_group_id",
        "initial_received_confreq",
        "authen_type",
        "authen_name",
        "authen_id",
        "authen_response",
    ):
        assert getattr(got, f) == getattr(params, f), f
    assert net.of(net.lac_events, SessionEstablished)[0].sequencing_required


def test_lns_policy_refuses_with_result_codes() -> None:
    net = Net(lns_policy=lambda tid, sid, p: (4, 7, "full") if p.serial == 2 else None)
    tid, _lt, _nt = up(net)
    ok = net.lac.open_session(tid, CallParams(serial=1), net.now)
    bad = net.lac.open_session(tid, CallParams(serial=2), net.now)
    net.run(until=net.now + 3)
    assert [e.session_id for e in net.of(net.lac_events, SessionEstablished)] == [ok]
    (closed,) = net.of(net.lac_events, SessionClosed)
    assert (closed.session_id, closed.result, closed.error, closed.message) == (bad, 4, 7, "full")
    assert closed.by_peer and closed.during_setup
    assert net.lns.counters["sessions_refused"] == 1
    assert not net.of(net.lac_events, TunnelClosed)


def test_lac_cdn_reaches_lns_with_result() -> None:
    net = Net()
    tid, _lt, _nt = up(net)
    sid, lns_sid = call(net, tid)
    net.lac.close_session(tid, sid, 2, 6, "subscriber gone", net.now)
    touch(net)
    net.run(until=net.now + 2)
    (mine,) = net.of(net.lac_events, SessionClosed)
    assert not mine.by_peer and not mine.during_setup and mine.result == 2
    (theirs,) = net.of(net.lns_events, SessionClosed)
    assert theirs.session_id == lns_sid and theirs.by_peer
    assert (theirs.result, theirs.error, theirs.message) == (2, 6, "subscriber gone")
    assert net.lac.tunnel_info(tid)[3] == 0  # type: ignore[index]
    net.lac.close_session(tid, sid, 1, None, "", net.now)  # already gone: ignored
    net.lac.close_session(999, sid, 1, None, "", net.now)  # unknown tunnel: ignored


def test_lns_cdn_with_ppp_disconnect_cause() -> None:
    net = Net()
    tid, _lt, lns_t = up(net)
    sid, lns_sid = call(net, tid)
    lns_t.send_message(
        MessageType.CDN,
        sid,
        [
            result_code_avp(3, 0, "admin"),
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, lns_sid),
            ppp_disconnect_cause_avp(7, 0xC021, 1, "lcp terminate"),
        ],
        net.now,
    )
    lns_t.sessions.pop(lns_sid)
    touch(net)
    net.run(until=net.now + 2)
    (closed,) = net.of(net.lac_events, SessionClosed)
    assert closed.by_peer and closed.result == 3 and closed.message == "admin"
    assert closed.disconnect_cause == (7, 0xC021, 1, "lcp terminate")


def test_sli_and_wen_are_reported() -> None:
    net = Net()
    tid, lac_t, lns_t = up(net)
    sid, lns_sid = call(net, tid)
    lns_t.send_message(MessageType.SLI, sid, [accm_avp(0, 0xFFFF0000)], net.now)
    lac_t.send_message(MessageType.WEN, lns_sid, [call_errors_avp(1, 2, 3, 4, 5, 6)], net.now)
    touch(net)
    net.run(until=net.now + 2)
    assert net.of(net.lac_events, SetLinkInfoReceived) == [
        SetLinkInfoReceived(tid, sid, 0, 0xFFFF0000)
    ]
    assert net.of(net.lns_events, WanErrorNotifyReceived) == [
        WanErrorNotifyReceived(lns_t.tunnel_id, lns_sid, 1, 2, 3, 4, 5, 6)
    ]
    assert not net.of(net.lac_events, SessionClosed)


def test_unknown_mandatory_avp_in_session_message_clears_only_the_session() -> None:
    net = Net()
    tid, _lac_t, lns_t = up(net)
    sid, _lns_sid = call(net, tid)
    other, _ = call(net, tid)
    lns_t.send_message(MessageType.SLI, sid, [Avp(999, b"?", mandatory=True)], net.now)
    touch(net)
    net.run(until=net.now + 2)
    (closed,) = net.of(net.lac_events, SessionClosed)
    assert closed.session_id == sid and (closed.result, closed.error) == (2, 8)
    cdn = next(
        m
        for _t, who, d in net.sent
        if who == "lac" and (m := decode_control(d)).message_type is MessageType.CDN
    )
    rc = cdn.get(AvpType.RESULT_CODE)
    assert rc is not None and rc.value[:4] == b"\x00\x02\x00\x08"
    assert not net.of(net.lac_events, TunnelClosed)
    assert net.lac.tunnel_info(tid)[3] == 1  # type: ignore[index]
    assert other in net.lac.tunnels[tid].sessions


def test_lac_side_refuses_incoming_icrq() -> None:
    # an LNS placing an ICRQ towards us: we are not an LNS on this tunnel -> CDN result 5
    net = Net()
    _tid, _lac_t, lns_t = up(net)
    lns_t.send_message(
        MessageType.ICRQ,
        0,
        [
            uint16_avp(AvpType.ASSIGNED_SESSION_ID, 4242),
            Avp(AvpType.CALL_SERIAL_NUMBER, b"\0\0\0\1"),
        ],
        net.now,
    )
    touch(net)
    net.run(until=net.now + 2)
    cdn = next(
        m
        for _t, who, d in net.sent
        if who == "lac" and (m := decode_control(d)).message_type is MessageType.CDN
    )
    assert cdn.session_id == 4242
    rc = cdn.get(AvpType.RESULT_CODE)
    assert rc is not None and rc.value[:2] == b"\x00\x05"
    assert net.lac.counters["sessions_refused"] == 1


def test_commands_on_missing_or_closing_tunnels() -> None:
    net = Net()
    tid, _lt, _nt = up(net)
    with pytest.raises(LocalProtocolError):
        net.lac.open_session(12345 if tid != 12345 else 1, CallParams(), net.now)
    net.lac.close_tunnel(tid, 1, None, "", net.now)
    sid = net.lac.open_session(tid, CallParams(), net.now)  # caller has not seen TunnelClosed
    net.run(until=net.now + 0.01)
    late = [e for e in net.of(net.lac_events, SessionClosed) if e.session_id == sid]
    assert late and (late[0].result, late[0].error) == (2, 1) and late[0].during_setup


def test_session_ids_unique_nonzero_and_capped() -> None:
    t = TunnelConnection(
        tunnel_id=1,
        peer=LNS_ADDR,
        config=TunnelConfig(),
        now=0.0,
        rand_bytes=random.Random(3).randbytes,
    )
    ids = {t.open_session(CallParams(), 0.0) for _ in range(3000)}
    assert len(ids) == 3000 and 0 not in ids
    # nearly full tunnel: the allocator still finds the last free ids, then refuses
    for sid in range(1, 0x10000):
        t.sessions.setdefault(sid, t.sessions[next(iter(ids))])
    del t.sessions[777]
    assert t._new_session_id() == 777
    t.sessions[777] = t.sessions[1]
    with pytest.raises(LocalProtocolError):
        t.open_session(CallParams(), 0.0)


def test_icrq_acked_but_never_answered_times_out_with_cdn_10() -> None:
    net = Net()
    tid, lac_t, lns_t = up(net)
    lns_t.accept_calls = True
    lns_t._session_policy = None
    # the LNS acknowledges the ICRQ but its session layer never answers
    lns_t._incoming_call = lambda msg, now: None  # type: ignore[method-assign]
    sid = net.lac.open_session(tid, CallParams(), net.now)
    t0 = net.now
    net.run(until=t0 + 120, stop=lambda: bool(net.of(net.lac_events, SessionClosed)))
    (closed,) = net.of(net.lac_events, SessionClosed)
    assert closed.session_id == sid and closed.result == 10 and closed.during_setup
    assert 60.0 <= net.now - t0 <= 60.2
    assert lac_t.established and sid not in lac_t.sessions


def test_refused_icrqs_from_a_peer_that_acknowledges_nothing_stay_bounded() -> None:
    """A hostile LNS places ICRQ after ICRQ and never acknowledges our CDNs: past
    REFUSAL_BACKLOG queued control messages the ICRQs are acknowledged but not answered, so
    the send queue does not grow by one CDN per ICRQ until retransmission gives up."""
    net = Net()
    tid, lac_t, lns_t = up(net)
    ns, nr = lns_t.transport.next_ns, lac_t.transport.next_ns  # Nr never moves: no CDN acked
    count = 4 * REFUSAL_BACKLOG
    for i in range(count):
        icrq = ControlMessage(
            tid, 0, (ns + i) & 0xFFFF, nr, MessageType.ICRQ,
            (uint16_avp(AvpType.ASSIGNED_SESSION_ID, 1000 + i),
             Avp(AvpType.CALL_SERIAL_NUMBER, i.to_bytes(4, "big"))),
        )  # fmt: skip
        net.lac.receive_datagram(encode_control(icrq), LNS_ADDR, net.now + i * 0.001)
    assert lac_t.transport.outstanding <= REFUSAL_BACKLOG
    assert net.lac.counters["sessions_refused"] == count
    assert net.lac.counters["refusals_unanswered"] == count - REFUSAL_BACKLOG
    assert tid in net.lac.tunnels  # the tunnel itself is untouched
