"""Paired engines with a fake clock: our LAC endpoint against our LNS endpoint.

Loss, duplication and reordering are applied by a seeded simulated network, so every run
is the same. RFC 2661 5.8 (reliable delivery), Appendix A (slow start), 5.7 (StopCCN hold).
"""

from __future__ import annotations

from broker.l2tp.codec import decode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import MessageType
from broker.l2tp.events import (
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from tests.support.l2tp_net import LNS_ADDR, Net

# With 30 % loss each way a message and its acknowledgement both survive only 49 % of the
# time, so five timeouts in a row (the default (1, 2, 4, 8, 8) schedule) happen to ~3.5 %
# of messages; over the ~4000 control messages of this test the default schedule would
# (correctly) clear the tunnel. The test is about delivery under loss, so it gives the
# transport 30 attempts: 0.51**30 ~ 2e-9 per message.
LOSSY = (1.0, 1.0, 2.0, 2.0, 4.0, 4.0, *([8.0] * 24))


def test_tunnel_and_1000_sessions_with_30_percent_loss() -> None:
    cfg = TunnelConfig(retransmit=LOSSY)
    net = Net(seed=2661, loss=0.3, lns_config=TunnelConfig(host_name="lns", retransmit=LOSSY))
    tid = net.lac.open_tunnel(LNS_ADDR, cfg, 0.0)
    sids = {net.lac.open_session(tid, CallParams(serial=i), 0.0) for i in range(1000)}
    assert len(sids) == 1000

    def done() -> bool:
        return len(net.of(net.lns_events, SessionEstablished)) == 1000 and not net.wire

    assert net.run(until=20_000, stop=done)
    lac_up = net.of(net.lac_events, SessionEstablished)
    lns_up = net.of(net.lns_events, SessionEstablished)
    assert {e.session_id for e in lac_up} == sids
    assert len(lns_up) == 1000
    assert not net.of(net.lac_events, TunnelClosed)
    assert not net.of(net.lac_events, SessionClosed)
    assert net.lac.counters["retransmits"] > 100  # the loss really happened
    info = net.lac.tunnel_info(tid)
    assert info is not None and info[2] == "ESTABLISHED" and info[3] == 1000
    # and the pair quiesces: after the last message only HELLOs/ZLBs remain
    assert net.lac.counters["internal_errors"] == 0 == net.lns.counters["internal_errors"]


def _established(net: Net) -> int:
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    assert net.run(until=10, stop=lambda: bool(net.of(net.lns_events, TunnelEstablished)))
    net.run(until=net.now + 1)  # let the last acknowledgements settle
    return tid


def test_ns_wraps_past_65535() -> None:
    net = Net(seed=5)
    tid = _established(net)
    lac_t = net.lac.tunnels[tid]
    lns_t = next(iter(net.lns.tunnels.values()))
    assert lac_t.transport.outstanding == 0 == lns_t.transport.outstanding
    # Jump both directions' sequence state close to the wrap (as after ~65000 messages).
    start = 65530
    lac_t.transport.next_ns = lns_t.transport.expected = start
    lns_t.transport.next_ns = lac_t.transport.expected = 65533
    sids = {net.lac.open_session(tid, CallParams(), net.now) for _ in range(20)}
    assert net.run(
        until=net.now + 100,
        stop=lambda: len(net.of(net.lns_events, SessionEstablished)) == 20 and not net.wire,
    )
    assert {e.session_id for e in net.of(net.lac_events, SessionEstablished)} == sids
    assert lac_t.transport.next_ns < start  # wrapped
    assert lns_t.transport.expected == lac_t.transport.next_ns
    assert not net.of(net.lac_events, TunnelClosed)
    assert net.lac.counters["retransmits"] == 0


def test_duplicated_and_reordered_delivery() -> None:
    net = Net(seed=11, dup=0.4, jitter=0.05)
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    sids = {net.lac.open_session(tid, CallParams(), 0.0) for _ in range(200)}
    assert net.run(
        until=5_000,
        stop=lambda: len(net.of(net.lns_events, SessionEstablished)) == 200 and not net.wire,
    )
    assert {e.session_id for e in net.of(net.lac_events, SessionEstablished)} == sids
    assert len(net.of(net.lns_events, SessionEstablished)) == 200  # each exactly once
    assert net.lns.counters["duplicates"] > 0
    assert net.lns.counters["out_of_order"] > 0
    assert len(net.lns.tunnels) == 1  # duplicated SCCRQ did not open a second tunnel
    assert not net.of(net.lac_events, TunnelClosed)


def test_peer_that_never_acks_is_cleared_after_the_schedule() -> None:
    net = Net(lns=False)
    tid = net.lac.open_tunnel(LNS_ADDR, TunnelConfig(), 0.0)
    sid = net.lac.open_session(tid, CallParams(), 0.0)
    assert net.run(until=100, stop=lambda: bool(net.of(net.lac_events, TunnelClosed)))
    assert net.now == 23.0  # 1 + 2 + 4 + 8 + 8
    closed = net.of(net.lac_events, TunnelClosed)
    assert closed == [
        TunnelClosed(tid, "retransmit-exhausted", None, None, closed[0].message, True)
    ]
    assert net.of(net.lac_events, SessionClosed)[0].session_id == sid
    sccrq_times = [t for t, who, _d in net.sent if who == "lac"]
    assert sccrq_times == [0.0, 1.0, 3.0, 7.0, 15.0]
    net.run(until=200)
    assert net.lac.tunnel_info(tid) is None  # cleared
    assert net.lac.get_timer() is None


def test_established_tunnel_cleared_when_peer_goes_silent() -> None:
    net = Net(seed=3)
    tid = _established(net)
    t0 = net.now
    net.drop_to = {0, 1}
    net.lac.close_session(tid, 1, 0, None, "", net.now)  # unknown session: nothing sent
    net.run(until=t0 + 500, stop=lambda: bool(net.of(net.lac_events, TunnelClosed)))
    closed = net.of(net.lac_events, TunnelClosed)
    assert closed and closed[0].reason == "retransmit-exhausted"
    assert closed[0].during_setup is False
    # the HELLO started it: idle 60 s after the last message received, then 23 s of retries
    last_rx = net.lac.tunnels[tid].last_rx if tid in net.lac.tunnels else None
    assert last_rx is None
    assert t0 + 60.0 + 23.0 - 1.0 <= net.now <= t0 + 60.0 + 23.0


def test_stopccn_state_kept_31_seconds() -> None:
    net = Net(seed=4)
    tid = _established(net)
    lns_tid = next(iter(net.lns.tunnels))
    t0 = net.now
    net.drop_to = {1}  # the LNS's ZLB acks are lost: the LAC keeps retransmitting StopCCN
    net.lac.close_tunnel(tid, 6, None, "shutting down", t0)
    net.run(until=t0 + 10)
    closed = net.of(net.lns_events, TunnelClosed)
    assert closed and closed[0].reason == "stopccn-received" and closed[0].result == 6
    assert net.lns.tunnel_info(lns_tid) is not None  # still held, re-acking retransmissions
    zlbs = [d for t, who, d in net.sent if who == "lns" and t > t0 and decode_control(d).is_zlb]
    assert len(zlbs) >= 3  # every retransmitted StopCCN got its ZLB again
    net.run(until=t0 + 30.9)
    assert net.lns.tunnel_info(lns_tid) is not None
    assert net.lac.tunnel_info(tid) is not None
    net.run(until=t0 + 31.2)
    assert net.lns.tunnel_info(lns_tid) is None
    assert net.lac.tunnel_info(tid) is None
    assert len(net.of(net.lac_events, TunnelClosed)) == 1


def test_hello_sent_on_idle() -> None:
    net = Net(seed=6)
    _established(net)
    last = max(t for t, _w, _d in net.sent)  # the last control message (a ZLB)
    net.run(until=last + 59.5)
    assert not [d for t, _w, d in net.sent if t > last]
    net.run(until=last + 61)
    hellos = [
        (t, who)
        for t, who, d in net.sent
        if t > last and decode_control(d).message_type is MessageType.HELLO
    ]
    assert len(hellos) == 1
    assert last + 59.5 < hellos[0][0] <= last + 60.0  # hello_interval after the last receipt
    assert not net.of(net.lac_events, TunnelClosed)
