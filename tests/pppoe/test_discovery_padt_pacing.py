"""PADT pacing (RFC 2516 §5.5 PADT; token bucket like the PADO limit): a mass termination is
sent at ``padt_per_s`` with a burst of one second's worth, the rest queued FIFO and released by
the timer; a queued PADT's session id is not reused; every (pacer state, input) pair."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.pppoe import (
    Code,
    DiscoveryConfig,
    DiscoveryPacket,
    DiscoveryServer,
    PppoeSessionKey,
    SessionOpened,
    SessionTerminated,
    Tag,
    TagType,
    decode_discovery,
    encode_discovery,
)
from broker.wire import MacAddress

IF = "eth1"
AC_MAC = MacAddress(bytes.fromhex("020000000001"))
BCAST = MacAddress(b"\xff" * 6)


def make_server(
    rate: float = 10.0, max_sessions: int = 65000, rand: Callable[[int], bytes] | None = None
) -> DiscoveryServer:
    cfg = DiscoveryConfig(
        ac_name="lac",
        cookie_secret=b"s" * 32,
        padt_per_s=rate,
        max_sessions=max_sessions,
        max_setups=max_sessions,
        pado_per_s=1e6,
    )
    return DiscoveryServer(
        cfg, rand_bytes=rand or random.Random(3).randbytes, local_mac={IF: AC_MAC}
    )


def mac(i: int) -> MacAddress:
    return MacAddress(bytes([2, 0]) + i.to_bytes(4, "big"))


def dial(server: DiscoveryServer, m: MacAddress, host_uniq: bytes, now: float) -> None:
    """PADI -> PADO -> PADR from ``m`` (the PADS and events are left to the caller)."""
    hu = Tag(TagType.HOST_UNIQ, host_uniq)
    svc = Tag(TagType.SERVICE_NAME, b"")
    server.receive_discovery(
        IF, m, BCAST, encode_discovery(DiscoveryPacket(Code.PADI, 0, (svc, hu))), now
    )
    (pado,) = server.frames_to_send()
    cookie = decode_discovery(pado.payload).ac_cookie
    assert cookie is not None
    padr = DiscoveryPacket(Code.PADR, 0, (svc, hu, Tag(TagType.AC_COOKIE, cookie)))
    server.receive_discovery(IF, m, AC_MAC, encode_discovery(padr), now)
    server.frames_to_send()


def open_sessions(server: DiscoveryServer, n: int, now: float = 100.0) -> list[PppoeSessionKey]:
    keys = []
    for i in range(n):
        dial(server, mac(i), i.to_bytes(4, "big"), now)
        ev = server.next_event()
        assert isinstance(ev, SessionOpened)
        server.setup_done(ev.key)
        keys.append(ev.key)
    return keys


def padt_ids(server: DiscoveryServer) -> list[int]:
    out = []
    for f in server.frames_to_send():
        p = decode_discovery(f.payload)
        assert p.code is Code.PADT
        out.append(p.session_id)
    return out


def test_burst_is_one_seconds_worth_and_the_rest_is_paced_in_order() -> None:
    s = make_server(rate=10.0)
    keys = open_sessions(s, 35)
    for k in keys:
        s.terminate(k, "tunnel lost", 100.0)
    # every call flow event at once: the sessions are gone, the PADTs are not all sent
    events = []
    while (ev := s.next_event()) is not None:
        events.append(ev)
    assert [e.key for e in events if isinstance(e, SessionTerminated)] == keys
    assert s.sessions == 0
    sent = padt_ids(s)
    assert sent == [k.session_id for k in keys[:10]]
    assert s.padts_queued == 25 and s.counters["padt_queued"] == 25
    t = s.get_timer()
    assert t is not None and 100.0 < t <= 100.1 + 1e-9
    now = 100.0
    while (t := s.get_timer()) is not None:
        assert t > now - 1e-9
        now = t
        s.handle_timer(now)
        sent += padt_ids(s)
    assert sent == [k.session_id for k in keys]  # FIFO, nothing lost
    assert now == pytest.approx(102.5)  # 25 more at 10/s
    assert s.counters["padt_paced"] == 25 and s.counters["tx_padt"] == 35


def test_queued_session_id_is_not_reused_on_that_mac() -> None:
    # the id generator returns the same id until told otherwise
    ids = [b"\x12\x34"] * 4 + [b"\x56\x78"]
    rand_iter = iter(ids)

    def rand(n: int) -> bytes:
        return next(rand_iter, b"\x9a\xbc") if n == 2 else b"\x00" * n

    s = make_server(rate=1.0, rand=rand)
    (a, b) = open_sessions(s, 2)  # a = 0x1234 (the 2nd draw of 0x1234 was on another MAC)
    assert a.session_id == 0x1234 == b.session_id
    s.terminate(b, "x", 100.0)  # uses the one token
    s.terminate(a, "x", 100.0)  # queued
    assert s.padts_queued == 1
    s.frames_to_send()
    # the same MAC comes back: 0x1234 is still queued, so the next id is drawn
    (again,) = [k for k in open_sessions_for(s, a.mac, 100.0)]
    assert again.session_id != 0x1234
    s.handle_timer(101.0)
    assert padt_ids(s) == [0x1234]
    assert s.padts_queued == 0


def open_sessions_for(s: DiscoveryServer, m: MacAddress, now: float) -> list[PppoeSessionKey]:
    dial(s, m, b"again", now)
    out = []
    while (ev := s.next_event()) is not None:
        if isinstance(ev, SessionOpened):
            out.append(ev.key)
    return out


def test_queue_is_bounded_by_the_session_limit() -> None:
    s = make_server(rate=1.0, max_sessions=4)
    sent = 0
    for _ in range(3):
        for k in open_sessions(s, 4):
            s.terminate(k, "x", 100.0)
        while s.next_event() is not None:
            pass
        sent += len(padt_ids(s))
    assert s.padts_queued == 4  # never more than max_sessions wait
    assert s.counters["padt_queue_full"] == 7
    assert sent == 1 + 7


def test_flush_sends_everything_unpaced() -> None:
    s = make_server(rate=2.0)
    for k in open_sessions(s, 6):
        s.terminate(k, "shutdown", 100.0)
    assert len(padt_ids(s)) == 2
    assert s.flush_padts() == 4
    assert len(padt_ids(s)) == 4 and s.get_timer() is None


# -- the pacer as a state table: states x inputs ------------------------------------------
# States: IDLE (nothing queued, tokens left), EMPTY (nothing queued, no token), QUEUED.
# Inputs: TERMINATE, TIMER (due), TIMER_EARLY (handle_timer before it is due), TIME_PASSES.
TABLE = {
    ("idle", "terminate"): "sent",
    ("idle", "timer"): "nothing",
    ("idle", "timer_early"): "nothing",
    ("empty", "terminate"): "queued",
    ("empty", "timer"): "nothing",
    ("empty", "timer_early"): "nothing",
    ("queued", "terminate"): "queued",
    ("queued", "timer"): "released",
    ("queued", "timer_early"): "nothing",
}


def reach(state: str) -> tuple[DiscoveryServer, list[PppoeSessionKey], float]:
    s = make_server(rate=2.0)
    keys = open_sessions(s, 6)
    now = 100.0
    if state in ("empty", "queued"):
        s.terminate(keys.pop(), "x", now)
        s.terminate(keys.pop(), "x", now)
    if state == "queued":
        s.terminate(keys.pop(), "x", now)
    s.frames_to_send()
    while s.next_event() is not None:
        pass
    return s, keys, now


@pytest.mark.parametrize(("state", "inp"), sorted(TABLE))
def test_pacer_state_table(state: str, inp: str) -> None:
    s, keys, now = reach(state)
    queued = s.padts_queued
    if inp == "terminate":
        s.terminate(keys[0], "x", now)
    elif inp == "timer":
        due = s.get_timer()
        if due is None:
            assert state != "queued"
            s.handle_timer(now + 10)
        else:
            s.handle_timer(due)
    else:
        s.handle_timer(now + 0.001)
    sent = len(padt_ids(s))
    got = {
        (1, queued): "sent",
        (0, queued + 1): "queued",
        (0, queued): "nothing",
    }.get((sent, s.padts_queued), "released" if sent and s.padts_queued < queued else "?")
    assert got == TABLE[(state, inp)]


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([1.0, 3.0, 10.0, 250.0]),
    steps=st.lists(
        st.tuples(st.integers(0, 30), st.floats(0.0, 2.0, allow_nan=False)),
        min_size=1,
        max_size=12,
    ),
)
def test_pacing_never_exceeds_the_bucket_and_loses_nothing(
    rate: float, steps: list[tuple[int, float]]
) -> None:
    total = sum(n for n, _ in steps)
    s = make_server(rate=rate, max_sessions=max(1, total))
    keys = open_sessions(s, total)
    now = 100.0
    order: list[int] = []
    sends: list[tuple[float, int]] = []
    it = iter(keys)

    def collect(at: float) -> None:
        got = padt_ids(s)
        order.extend(got)
        if got:
            sends.append((at, len(got)))

    for n, dt in steps:
        for _ in range(n):
            s.terminate(next(it), "x", now)
        collect(now)
        end = now + dt
        while (t := s.get_timer()) is not None and t <= end:
            now = max(now, t)
            s.handle_timer(now)
            collect(now)
        now = end
    while (t := s.get_timer()) is not None:
        now = max(now, t)
        s.handle_timer(now)
        collect(now)
    assert order == [k.session_id for k in keys]  # FIFO, every PADT sent exactly once
    burst = max(1.0, rate)
    for i, (start, _) in enumerate(sends):  # token bucket: any window sends <= burst + rate*w
        n = 0
        for at, k in sends[i:]:
            n += k
            assert n <= burst + rate * (at - start) + 1e-6
    assert s.padts_queued == 0 and not s._padt.queued_keys
