"""Reliable delivery of control messages (RFC 2661 section 5.8 and Appendix A)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.reliable import NR_OFFSET, ReliableTransport


def zlb(ns: int, nr: int) -> bytes:
    return b"Z" + struct.pack("!HH", ns, nr)


def msg(ns: int) -> bytes:
    # a fake 12-octet header: only Ns (8) and Nr (10) matter to the transport
    return b"\xc8\x02\x00\x0c\x00\x01\x00\x00" + struct.pack("!HH", ns, 0)


def nr_of(data: bytes) -> int:
    return int(struct.unpack_from("!H", data, NR_OFFSET)[0])


def ns_of(data: bytes) -> int:
    return int(struct.unpack_from("!H", data, 8)[0])


def make(**kw: object) -> ReliableTransport[str]:
    return ReliableTransport(make_zlb=zlb, **kw)  # type: ignore[arg-type]


def test_in_order_delivery_and_delayed_zlb() -> None:
    t = make(zlb_delay=0.1)
    assert t.receive(0, 0, False, "a", 0.0) == ["a"]
    assert t.datagrams_to_send(0.05) == []
    assert t.get_timer() == 0.1
    t.handle_timer(0.1)
    assert t.datagrams_to_send(0.1) == [zlb(0, 1)]
    assert t.get_timer() is None


def test_piggyback_suppresses_zlb() -> None:
    t = make()
    t.receive(0, 0, False, "a", 0.0)
    t.send(msg, 0.01)
    out = t.datagrams_to_send(0.2)
    assert len(out) == 1 and nr_of(out[0]) == 1  # the reply carries Nr, no ZLB
    assert t.counters["zlb_sent"] == 0


def test_duplicate_reacked_at_once_and_not_redelivered() -> None:
    t = make()
    t.receive(0, 0, False, "a", 0.0)
    t.handle_timer(0.1)
    t.datagrams_to_send(0.1)
    assert t.receive(0, 0, False, "a-again", 5.0) == []
    assert t.datagrams_to_send(5.0) == [zlb(0, 1)]  # immediate, RFC 5.8 "MUST be acknowledged"
    assert t.counters["duplicates"] == 1


def test_out_of_order_held_within_window() -> None:
    t = make(receive_window=4)
    assert t.receive(2, 0, False, "c", 0.0) == []
    assert t.receive(1, 0, False, "b", 0.0) == []
    assert t.receive(9, 0, False, "far", 0.0) == []  # beyond our window: dropped
    assert t.receive(0, 0, False, "a", 0.0) == ["a", "b", "c"]
    assert t.expected == 3
    assert t.counters["out_of_window"] == 1
    assert t.receive(9, 0, False, "far", 0.0) == []


def test_zlb_does_not_advance_nr() -> None:
    t = make()
    t.receive(0, 0, True, "zlb", 0.0)
    assert t.expected == 0
    assert t.datagrams_to_send(1.0) == []


def test_peer_window_default_4_and_slow_start() -> None:
    t = make()
    assert t.peer_window == 4
    for _ in range(10):
        t.send(msg, 0.0)
    assert len(t.datagrams_to_send(0.0)) == 1  # cwnd starts at 1 (Appendix A)
    t.receive(0, 1, True, "", 0.1)  # ack 0 -> cwnd 2
    assert [ns_of(d) for d in t.datagrams_to_send(0.1)] == [1, 2]
    t.receive(0, 3, True, "", 0.2)  # ack 1, 2 -> cwnd 4 (== window 4)
    assert [ns_of(d) for d in t.datagrams_to_send(0.2)] == [3, 4, 5, 6]
    assert t.cwnd == 4
    t.receive(0, 7, True, "", 0.3)
    assert len(t.datagrams_to_send(0.3)) == 3  # capped by the peer window of 4
    assert t.cwnd <= 4


def test_congestion_halves_ssthresh_and_resets_cwnd() -> None:
    t = make(peer_window=8)
    for _ in range(20):
        t.send(msg, 0.0)
    now = 0.0
    acked = 0
    for _ in range(4):  # grow cwnd
        out = t.datagrams_to_send(now)
        acked += len(out)
        now += 0.1
        t.receive(0, acked, True, "", now)
    grown = t.cwnd
    assert grown > 4
    t.datagrams_to_send(now)
    t.handle_timer(now + 1.0)  # retransmission = congestion
    assert t.cwnd == 1
    assert t.ssthresh == max(1.0, grown / 2)
    out = t.datagrams_to_send(now + 1.0)
    assert len(out) == 1 and ns_of(out[0]) == acked  # only the oldest is retransmitted


def test_congestion_avoidance_is_linear() -> None:
    t = make(peer_window=100)
    t.ssthresh = 2.0
    for _ in range(50):
        t.send(msg, 0.0)
    sent = len(t.datagrams_to_send(0.0))
    t.receive(0, sent, True, "", 0.1)  # cwnd 1 -> 2 (slow start up to ssthresh)
    sent += len(t.datagrams_to_send(0.1))
    t.receive(0, sent, True, "", 0.2)  # two acks at cwnd 2: +1/2 + ~1/2.5
    assert 2.5 < t.cwnd < 3.0


def test_retransmit_schedule_then_exhausted() -> None:
    t = make(retransmit=(1, 2, 4, 8, 8))
    t.send(msg, 0.0)
    t.datagrams_to_send(0.0)
    times = []
    while not t.exhausted:
        deadline = t.get_timer()
        assert deadline is not None
        t.handle_timer(deadline)
        if t.datagrams_to_send(deadline):
            times.append(deadline)
        last = deadline
    assert times == [1, 3, 7, 15]
    assert last == 23  # 1 + 2 + 4 + 8 + 8: cleared when the last step expires
    assert t.counters["retransmits"] == 4


def test_retransmission_rewrites_nr() -> None:
    t = make()
    t.send(msg, 0.0)
    assert nr_of(t.datagrams_to_send(0.0)[0]) == 0
    t.receive(0, 0, False, "x", 0.5)
    t.receive(1, 0, False, "y", 0.5)
    t.handle_timer(1.0)
    out = t.datagrams_to_send(1.0)
    assert [nr_of(d) for d in out] == [2]  # the retransmission acknowledges both


def test_ack_restarts_schedule_for_next_message() -> None:
    t = make(peer_window=1)
    t.send(msg, 0.0)
    t.send(msg, 0.0)
    t.datagrams_to_send(0.0)
    t.handle_timer(1.0)
    t.handle_timer(3.0)
    t.receive(0, 1, True, "", 3.5)
    assert t.get_timer() == 4.5  # the second message starts from the first step again


def test_bogus_nr_ignored() -> None:
    t = make()
    t.send(msg, 0.0)
    t.datagrams_to_send(0.0)
    t.receive(0, 500, True, "", 0.1)
    assert t.in_flight == 1
    assert t.counters["bad_nr"] == 1


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 0xFFFF), n=st.integers(1, 40), seed=st.randoms(use_true_random=False))
def test_any_arrival_order_within_window_delivers_once_in_order(
    start: int, n: int, seed: object
) -> None:
    import random

    assert isinstance(seed, random.Random)
    t = make(receive_window=64)
    t.expected = start
    items = [((start + i) & 0xFFFF, i) for i in range(n)]
    arrivals = items + [seed.choice(items) for _ in range(n // 2)]  # with duplicates
    seed.shuffle(arrivals)
    got: list[int] = []
    for ns, i in arrivals:
        got += t.receive(ns, 0, False, i, 0.0)  # type: ignore[arg-type]
    assert got == list(range(n))
    assert t.expected == (start + n) & 0xFFFF


@settings(max_examples=40, deadline=None)
@given(start=st.integers(0xFFF0, 0xFFFF), n=st.integers(1, 60))
def test_send_side_wraps_past_65535(start: int, n: int) -> None:
    t = make(peer_window=8)
    t.next_ns = start
    for _ in range(n):
        t.send(msg, 0.0)
    acked = 0
    now = 0.0
    sent: list[int] = []
    while acked < n:
        out = t.datagrams_to_send(now)
        sent += [ns_of(d) for d in out]
        acked += len(out)
        now += 0.1
        t.receive(0, (start + acked) & 0xFFFF, True, "", now)
    assert sent == [(start + i) & 0xFFFF for i in range(n)]
    assert t.outstanding == 0
    assert t.get_timer() is None


def test_ack_at_once_when_half_the_window_waits() -> None:
    t = make(receive_window=8, zlb_delay=0.1)
    for ns in range(3):
        t.receive(ns, 0, False, "m", 0.0)
    assert t.datagrams_to_send(0.0) == []  # still delayed, a reply may carry it
    t.receive(3, 0, False, "m", 0.0)  # 4 = half of our window: the peer would stall
    assert t.datagrams_to_send(0.0) == [zlb(0, 4)]


def test_drop_unsent_reuses_their_ns() -> None:
    t = make()  # cwnd 1: one in flight, the rest queued
    for _ in range(5):
        t.send(msg, 0.0)
    assert len(t.datagrams_to_send(0.0)) == 1
    assert t.drop_unsent() == 4
    assert t.send(msg, 0.0) == 1  # the next message takes the first unused Ns
    t.receive(0, 1, True, "", 0.1)
    assert [ns_of(d) for d in t.datagrams_to_send(0.1)] == [1]


def test_ack_samples_time_first_transmission_to_acknowledgement() -> None:
    """With a sample list set, each message acknowledged without a retransmission gives one
    sample (seconds); a retransmitted message gives none."""
    t = make(retransmit=(1.0, 1.0, 1.0))
    samples: list[float] = []
    t.ack_samples = samples
    t.send(msg, 0.0)
    t.datagrams_to_send(0.0)
    t.receive(0, 1, True, "zlb", 0.25)  # ZLB acknowledging Ns 0
    assert samples == [0.25]
    t.send(msg, 2.0)
    t.datagrams_to_send(2.0)
    t.handle_timer(3.0)  # retransmitted
    t.receive(0, 2, True, "zlb", 3.1)
    assert samples == [0.25]
    assert t.in_flight == 0


def test_no_samples_without_a_list() -> None:
    t = make()
    t.send(msg, 0.0)
    t.receive(0, 1, True, "zlb", 0.5)
    assert t.ack_samples is None and t.in_flight == 0
