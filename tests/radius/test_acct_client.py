"""AccountingClient engine with a fake clock: backoff, Acct-Delay-Time/new identifier,
window, forged replies, failover and revival."""

from __future__ import annotations

import hashlib
import itertools
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.radius.accounting import AcctRecord
from broker.radius.acct_client import (
    AccountingClient,
    AcctServer,
    Datagram,
    RecordAcknowledged,
    RecordRejected,
    ServerAlive,
    ServerDead,
)
from broker.radius.packet import decode_packet, verify_request

A = AcctServer("a", ("127.0.0.1", 1813), b"secret-a")
B = AcctServer("b", ("127.0.0.2", 1813), b"secret-b")
SECRETS = {A.address: A.secret, B.address: B.secret}


def rec(i: int, created: float = 100.0) -> AcctRecord:
    return AcctRecord(f"r{i}", 1, (("Acct-Session-Id", f"s{i}"),), created)


def reply(d: Datagram, secret: bytes | None = None) -> bytes:
    """An Accounting-Response computed independently with hashlib (RFC 2866 section 4)."""
    secret = SECRETS[d.address] if secret is None else secret
    head = struct.pack("!BBH", 5, d.payload[1], 20)
    return head + hashlib.md5(head + d.payload[4:20] + secret).digest()


def delay_of(d: Datagram) -> int:
    vals = decode_packet(d.payload).get_all(41)
    assert len(vals) == 1
    return int.from_bytes(vals[0], "big")


def events(c: AccountingClient) -> list[object]:
    out = []
    while (e := c.next_event()) is not None:
        out.append(e)
    return out


def run_until(
    c: AccountingClient, t_end: float, now: float
) -> tuple[float, list[tuple[float, Datagram]]]:
    sent: list[tuple[float, Datagram]] = [(now, d) for d in c.datagrams_to_send(now)]
    while (t := c.get_timer()) is not None and t <= t_end:
        now = t
        c.handle_timer(now)
        sent += [(now, d) for d in c.datagrams_to_send(now)]
    return now, sent


def test_send_and_ack() -> None:
    c = AccountingClient([A])
    c.submit(7, rec(1))
    (d,) = c.datagrams_to_send(100.0)
    assert d.address == A.address and verify_request(d.payload, A.secret)
    assert delay_of(d) == 0
    c.receive_datagram(reply(d), A.address, 100.1)
    assert events(c) == [RecordAcknowledged(7, "r1", "a", 1, 0)]
    assert c.get_timer() is None and c.in_flight == 0 and c.counters["acked"] == 1


def test_backoff_capped_forever_and_delay_new_identifier() -> None:
    c = AccountingClient([A], backoff=(1, 2, 4, 8), dead_after=10**9)
    c.submit(1, rec(1, created=100.0))
    _, sent = run_until(c, 100.0 + 1 + 2 + 4 + 8 * 6, 100.0)
    times = [t for t, _ in sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == [1, 2, 4, 8, 8, 8, 8, 8, 8]
    # Acct-Delay-Time = now - created, and each change means a new id + authenticator
    delays = [delay_of(d) for _, d in sent]
    assert delays == [int(t - 100.0) for t in times]
    ids = [d.payload[1] for _, d in sent]
    auths = [d.payload[4:20] for _, d in sent]
    assert len(set(ids)) == len(ids) and len(set(auths)) == len(auths)
    assert c.counters["new_identifier"] == len(sent) - 1


def test_unchanged_content_is_retransmitted_byte_for_byte() -> None:
    c = AccountingClient([A], backoff=(0.25,), dead_after=10**9)
    c.submit(1, rec(1, created=100.0))
    _, sent = run_until(c, 101.1, 100.0)
    payloads = [d.payload for _, d in sent]
    # 100.0 .. 100.75 have delay 0: identical; 101.0 has delay 1: a new packet
    assert payloads[:4] == [payloads[0]] * 4
    assert payloads[4] != payloads[0] and payloads[4][1] != payloads[0][1]
    assert delay_of(sent[4][1]) == 1


def test_late_reply_to_previous_transmission_acks() -> None:
    c = AccountingClient([A], backoff=(2,), dead_after=10**9)
    c.submit(1, rec(1, created=100.0))
    (first,) = c.datagrams_to_send(100.0)
    c.handle_timer(102.0)
    (second,) = c.datagrams_to_send(102.0)
    assert second.payload[1] != first.payload[1]
    c.receive_datagram(reply(first), A.address, 102.5)
    assert [type(e) for e in events(c)] == [RecordAcknowledged]
    c.receive_datagram(reply(second), A.address, 102.6)  # duplicate answer: unknown now
    assert c.counters["unknown"] == 1 and c.counters["acked"] == 1


def test_forged_and_stray_replies_dropped_and_counted() -> None:
    c = AccountingClient([A])
    c.submit(1, rec(1))
    (d,) = c.datagrams_to_send(100.0)
    c.receive_datagram(reply(d, secret=b"wrong"), A.address, 100.1)
    bad = bytearray(reply(d))
    bad[-1] ^= 0xFF
    c.receive_datagram(bytes(bad), A.address, 100.1)
    c.receive_datagram(reply(d), ("192.0.2.66", 1813), 100.1)  # not a server of ours
    c.receive_datagram(b"\x05\x00", A.address, 100.1)
    other = bytearray(reply(d))
    other[1] ^= 1
    c.receive_datagram(bytes(other), A.address, 100.1)  # id not in use
    assert events(c) == []
    assert c.counters["forged"] == 2
    assert c.counters["unknown"] == 2 and c.counters["malformed"] == 1
    c.receive_datagram(reply(d), A.address, 100.2)
    assert len(events(c)) == 1


def test_window_limits_in_flight() -> None:
    c = AccountingClient([A], window=3)
    for i in range(10):
        c.submit(i, rec(i))
    c.submit(0, rec(0))  # duplicate seq ignored
    out = c.datagrams_to_send(100.0)
    assert len(out) == 3 and c.queued == 7
    c.receive_datagram(reply(out[0]), A.address, 100.1)
    nxt = c.datagrams_to_send(100.1)
    assert len(nxt) == 1 and c.in_flight == 3
    assert decode_packet(nxt[0].payload).get(44) == b"s3"


def test_failover_dead_and_revival() -> None:
    c = AccountingClient([A, B], backoff=(1,), dead_after=2, dead_time=30)
    c.submit(1, rec(1))
    c.submit(2, rec(2))
    assert {d.server for d in c.datagrams_to_send(100.0)} == {"a"}
    c.handle_timer(101.0)
    assert events(c) == [ServerDead("a")]
    moved = c.datagrams_to_send(101.0)
    assert [d.server for d in moved] == ["b", "b"]
    now = 101.0
    # B is silent too -> dead; records keep rotating over both servers
    now, sent = run_until(c, 110.0, now)
    assert ServerDead("b") in events(c)
    assert {d.server for _, d in sent} == {"a", "b"}
    # A answers one: alive again, the other record is retried at once
    d_a = next(d for _, d in reversed(sent) if d.server == "a")
    c.receive_datagram(reply(d_a), A.address, now + 0.1)
    ev = events(c)
    assert ServerAlive("a") in ev and any(isinstance(e, RecordAcknowledged) for e in ev)
    rest = c.datagrams_to_send(now + 0.1)
    assert len(rest) == 1 and rest[0].server == "a"
    c.receive_datagram(reply(rest[0]), A.address, now + 0.2)
    assert c.in_flight == 0


@given(
    st.integers(1, 20),
    st.integers(1, 8),
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=200),
)
@settings(max_examples=60, deadline=None)
def test_every_record_acked_exactly_once(
    n: int, window: int, plan: list[tuple[bool, bool]]
) -> None:
    """Random loss and failover: every record ends acknowledged exactly once."""
    c = AccountingClient([A, B], backoff=(1, 2, 4), window=window, dead_after=2, dead_time=5)
    for i in range(n):
        c.submit(i, rec(i, created=0.0))
    now = 0.0
    acked: list[int] = []
    step = 0
    for _ in range(10_000):
        for d in c.datagrams_to_send(now):
            deliver, _dup = plan[step % len(plan)]
            step += 1
            if deliver:
                c.receive_datagram(reply(d), d.address, now)
                if _dup:
                    c.receive_datagram(reply(d), d.address, now)
        acked += [e.seq for e in events(c) if isinstance(e, RecordAcknowledged)]
        if len(acked) == n and c.in_flight == 0:
            break
        t = c.get_timer()
        if t is None:
            if not any(p[0] for p in plan):
                break
            continue
        now = t
        c.handle_timer(now)
        if not any(p[0] for p in plan) and now > 100:
            break
    if any(p[0] for p in plan):
        assert sorted(acked) == list(range(n))
    else:
        assert acked == [] and c.in_flight == min(n, window)


def test_unencodable_record_rejected_not_stuck() -> None:
    c = AccountingClient([A])
    c.submit(1, AcctRecord("bad", 1, (("NAS-IP-Address", "not-an-ip"),), 100.0))
    c.submit(2, rec(2))
    (d,) = c.datagrams_to_send(100.0)
    (ev,) = events(c)
    assert isinstance(ev, RecordRejected) and (ev.seq, ev.record_id) == (1, "bad")
    c.receive_datagram(reply(d), A.address, 100.1)
    assert c.counters["rejected"] == 1 and c.in_flight == 0
