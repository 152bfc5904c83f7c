"""Option negotiation converges within Max-Configure rounds against peer engines."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp import CredentialsReceived, LcpOpened, LinkConfig, LinkTerminated, PppLink
from broker.ppp.codec import Option, decode_control, encode_control, split_frame
from broker.ppp.constants import LcpCode
from broker.ppp.lcp import LcpAutomaton, RestartConfig, Signal
from broker.ppp.lcp_table import State
from broker.sim.ppp_client import ClientConfig, PppClient

METHODS = ("chap", "pap", "mschapv2")
EXTRA = {
    "accm": Option(2, b"\x00\x0a\x00\x00"),
    "quality": Option(4, b"\xc0\x25\x00\x00\x00\x0a"),
    "pfc": Option(7),
    "acfc": Option(8),
    "unknown": Option(0x42, b"xyz"),
    "callback": Option(13, b"\x06"),
}

orders = st.lists(st.sampled_from(METHODS), min_size=1, max_size=3, unique=True).map(tuple)


def run(link: PppLink, client: PppClient, until: float) -> list[tuple[str, bytes]]:
    wire: list[tuple[str, bytes]] = []
    now = 0.0
    link.start(now)
    client.start(now)
    while True:
        for _ in range(200):
            a = link.frames_to_send()
            b = client.frames_to_send()
            if not a and not b:
                break
            for f in a:
                wire.append(("L", f))
                client.receive_frame(f, now)
            for f in b:
                wire.append(("C", f))
                link.receive_frame(f, now)
        timers = [t for t in (link.get_timer(), client.get_timer()) if t is not None]
        if not timers or min(timers) > until:
            return wire
        now = min(timers)
        link.handle_timer(now)
        client.handle_timer(now)


def confreqs(wire: list[tuple[str, bytes]], side: str) -> int:
    n = 0
    for who, f in wire:
        proto, info = split_frame(f)
        if who == side and proto == 0xC021 and decode_control(info).code == 1:
            n += 1
    return n


@settings(max_examples=150, deadline=None)
@given(
    server_auth=orders,
    client_auth=orders,
    client_mru=st.integers(64, 9000),
    extras=st.sets(st.sampled_from(sorted(EXTRA))),
    max_payload=st.one_of(st.none(), st.integers(1493, 9000)),
    seed=st.integers(0, 2**32),
)
def test_link_and_client_converge(
    server_auth: tuple[str, ...],
    client_auth: tuple[str, ...],
    client_mru: int,
    extras: set[str],
    max_payload: int | None,
    seed: int,
) -> None:
    r = random.Random(seed)
    config = LinkConfig(auth=server_auth, echo_interval=0.0)
    link = PppLink(config, max_payload=max_payload, rand_bytes=r.randbytes)
    client = PppClient(
        "u@r",
        "pw",
        client_auth,
        ClientConfig(mru=client_mru, extra_options=tuple(EXTRA[e] for e in sorted(extras))),
        rand_bytes=r.randbytes,
    )
    wire = run(link, client, until=1.0)  # no restart timer expiry needed: < 3 s
    events = []
    while (e := link.next_event()) is not None:
        events.append(e)
    common = set(server_auth) & set(client_auth)
    limit = max(1492, max_payload or 0)
    if common:
        assert link.lcp.state is State.OPENED and client.lcp.state is State.OPENED
        assert isinstance(events[0], LcpOpened)
        assert events[0].peer_mru == min(client_mru, limit)
        assert link.lcp.local_auth == client.lcp.peer_auth
        assert link.lcp.local_auth in common
        assert isinstance(events[1], CredentialsReceived)
        assert confreqs(wire, "L") <= config.max_configure
        assert confreqs(wire, "C") <= config.max_configure
    else:
        assert events[-1] == LinkTerminated("lcp-failed", False)
        assert not any(isinstance(e, CredentialsReceived) for e in events)


OPTION_POOL = st.sampled_from(sorted(EXTRA))


@settings(max_examples=150, deadline=None)
@given(
    mru_a=st.integers(64, 2000),
    mru_b=st.integers(64, 2000),
    auth=st.one_of(st.none(), st.sampled_from(METHODS)),
    extras_a=st.sets(OPTION_POOL),
    extras_b=st.sets(OPTION_POOL),
    seed=st.integers(0, 2**32),
)
def test_two_automatons_converge(
    mru_a: int,
    mru_b: int,
    auth: str | None,
    extras_a: set[str],
    extras_b: set[str],
    seed: int,
) -> None:
    r = random.Random(seed)
    restart = RestartConfig()
    a = LcpAutomaton(
        restart,
        mru=mru_a,
        auth_request=(auth,) if auth else (),
        extra_request=[EXTRA[e] for e in extras_a],
        rand_bytes=r.randbytes,
    )
    b = LcpAutomaton(
        restart,
        mru=mru_b,
        auth_accept=METHODS,
        extra_request=[EXTRA[e] for e in extras_b],
        rand_bytes=r.randbytes,
    )
    for x in (a, b):
        x.up(0.0)
        x.open(0.0)
    sent = {"a": 0, "b": 0}
    for _ in range(100):
        fa, fb = a.frames_to_send(), b.frames_to_send()
        if not fa and not fb:
            break
        for f in fa:
            sent["a"] += decode_control(f[2:]).code == LcpCode.CONFIGURE_REQUEST
            b.receive(f[2:], 0.0)
        for f in fb:
            sent["b"] += decode_control(f[2:]).code == LcpCode.CONFIGURE_REQUEST
            a.receive(f[2:], 0.0)
    assert a.state is State.OPENED and b.state is State.OPENED
    assert a.signals == [Signal.UP] and b.signals == [Signal.UP]
    assert max(sent.values()) <= restart.max_configure
    assert a.peer_mru == min(mru_b, mru_a) and b.peer_mru == min(mru_a, mru_b)
    assert b.peer_auth == auth and a.local_auth == auth
    assert a.magic and b.magic and a.magic != b.magic


def test_max_configure_then_finished() -> None:
    a = LcpAutomaton(RestartConfig(restart_timer=1.0, max_configure=4), mru=1492)
    a.up(0.0)
    a.open(0.0)
    now = 0.0
    requests = len(a.frames_to_send())
    while (t := a.get_timer()) is not None:
        now = t
        a.handle_timer(now)
        requests += len(a.frames_to_send())
    assert requests == 4
    assert now == 4.0
    assert a.state is State.STOPPED
    assert a.signals == [Signal.FINISHED]


def test_max_failure_turns_nak_into_reject() -> None:
    a = LcpAutomaton(RestartConfig(max_failure=2), mru=1492)
    a.up(0.0)
    a.open(0.0)
    a.frames_to_send()
    codes = []
    for i in range(4):
        a.receive(encode_control(0xC021, 1, i, b"\x01\x04\x23\x28")[2:], 0.0)  # MRU 9000
        codes.append(decode_control(a.frames_to_send()[0][2:]).code)
    assert codes == [3, 3, 4, 4]


def test_echo_round_trip_samples() -> None:
    """With ``echo_rtts`` set, each answered Echo-Request adds its round trip (seconds)."""
    r = random.Random(3)
    a = LcpAutomaton(RestartConfig(), mru=1492, echo_interval=10.0, rand_bytes=r.randbytes)
    b = LcpAutomaton(RestartConfig(), mru=1492, rand_bytes=r.randbytes)
    for x in (a, b):
        x.up(0.0)
        x.open(0.0)
    for _ in range(20):
        fa, fb = a.frames_to_send(), b.frames_to_send()
        if not fa and not fb:
            break
        for f in fa:
            b.receive(f[2:], 0.0)
        for f in fb:
            a.receive(f[2:], 0.0)
    assert a.state is State.OPENED
    rtts: list[float] = []
    a.echo_rtts = rtts
    a.handle_timer(10.0)
    (req,) = a.frames_to_send()
    assert decode_control(req[2:]).code == LcpCode.ECHO_REQUEST
    b.receive(req[2:], 10.0)
    (reply,) = b.frames_to_send()
    a.receive(reply[2:], 10.04)
    assert rtts == [pytest.approx(0.04)]
    a.receive(reply[2:], 10.5)  # a duplicate reply adds nothing
    assert len(rtts) == 1 and a.echo_outstanding == 0
