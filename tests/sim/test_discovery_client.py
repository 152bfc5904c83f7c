"""PPPoE discovery client (RFC 2516 §5) against the broker's DiscoveryServer and hand-made ACs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.pppoe import (
    Code,
    DiscoveryConfig,
    DiscoveryPacket,
    DiscoveryServer,
    SessionOpened,
    SessionTerminated,
    Tag,
    TagType,
    decode_discovery,
    encode_discovery,
)
from broker.pppoe.constants import ETH_P_PPP_DISC
from broker.sim.discovery_client import (
    BROADCAST,
    ClientState,
    DiscoveryClient,
    DiscoveryClientConfig,
    DiscoveryCompleted,
    DiscoveryFailed,
    SessionEnded,
)
from broker.wire import MacAddress

AC = MacAddress(bytes.fromhex("020000000001"))
OTHER_AC = bytes.fromhex("020000000002")
HOST = bytes.fromhex("02aabbccdd01")


def client(**kw: object) -> DiscoveryClient:
    cfg = DiscoveryClientConfig(**kw)  # type: ignore[arg-type]
    return DiscoveryClient(HOST, cfg, rand_bytes=random.Random(1).randbytes)


def server() -> DiscoveryServer:
    return DiscoveryServer(
        DiscoveryConfig("ac-1", b"c" * 16),
        rand_bytes=random.Random(2).randbytes,
        local_mac={"eth0": AC},
    )


def sent(c: DiscoveryClient) -> list[tuple[bytes, DiscoveryPacket]]:
    out = []
    for f in c.frames_to_send():
        assert f.ethertype == ETH_P_PPP_DISC
        out.append((f.dst, decode_discovery(f.payload)))
    return out


def exchange(c: DiscoveryClient, s: DiscoveryServer, now: float = 0.0) -> None:
    for _ in range(10):
        frames = c.frames_to_send()
        for f in frames:
            s.receive_discovery("eth0", MacAddress(HOST), MacAddress(f.dst), f.payload, now)
        answers = s.frames_to_send()
        for a in answers:
            assert a.dst == HOST
            c.receive_discovery(AC, a.payload, now)
        if not frames and not answers:
            return


def test_padi_pado_padr_pads_with_the_broker_discovery_server() -> None:
    c, s = client(service_name="internet"), server()
    c.start(0.0)
    (dst, padi), = sent(c)  # fmt: skip
    assert dst == BROADCAST and padi.code is Code.PADI
    assert padi.service_names == ["internet"] and padi.host_uniq == c.host_uniq
    s.receive_discovery("eth0", MacAddress(HOST), MacAddress(BROADCAST), encode_discovery(padi), 0)
    (pado,) = s.frames_to_send()
    c.receive_discovery(AC, pado.payload, 0.1)
    assert c.state is ClientState.REQUESTING
    (dst, padr), = sent(c)  # fmt: skip
    assert dst == AC and padr.code is Code.PADR
    assert padr.ac_cookie == decode_discovery(pado.payload).ac_cookie is not None
    assert padr.host_uniq == c.host_uniq
    s.receive_discovery("eth0", MacAddress(HOST), AC, encode_discovery(padr), 0.1)
    (pads,) = s.frames_to_send()
    c.receive_discovery(AC, pads.payload, 0.2)
    opened = s.next_event()
    assert isinstance(opened, SessionOpened)
    assert c.next_event() == DiscoveryCompleted(AC, opened.key.session_id, "ac-1")
    assert c.state is ClientState.SESSION and c.session_id == opened.key.session_id
    assert c.get_timer() is None
    # PADT from the client reaches the server
    c.padt(1.0, "bye")
    exchange(c, s, 1.0)
    ended = s.next_event()
    assert isinstance(ended, SessionTerminated) and ended.by_peer
    assert c.state is ClientState.CLOSED


def test_padt_from_the_server() -> None:
    c, s = client(), server()
    c.start(0.0)
    exchange(c, s)
    opened = s.next_event()
    assert isinstance(opened, SessionOpened)
    c.next_event()
    s.terminate(opened.key, "admin kill", 2.0)
    (padt,) = s.frames_to_send()
    c.receive_discovery(AC, padt.payload, 2.0)
    assert c.next_event() == SessionEnded("admin kill")
    assert c.state is ClientState.CLOSED


def test_padi_retransmitted_with_backoff_then_no_pado() -> None:
    c = client(padi_schedule=(1.0, 2.0, 4.0))
    c.start(0.0)
    times = [0.0]
    assert len(sent(c)) == 1
    while (t := c.get_timer()) is not None:
        c.handle_timer(t)
        if sent(c):
            times.append(t)
    assert times == [0.0, 1.0, 3.0]
    assert c.next_event() == DiscoveryFailed("no-pado")
    assert c.counters["padi-retransmits"] == 2


def test_padr_retransmitted_then_no_pads() -> None:
    c, s = client(padr_schedule=(1.0, 1.0)), server()
    c.start(0.0)
    (padi,) = c.frames_to_send()
    s.receive_discovery("eth0", MacAddress(HOST), MacAddress(BROADCAST), padi.payload, 0.0)
    (pado,) = s.frames_to_send()
    c.receive_discovery(AC, pado.payload, 0.0)
    first = sent(c)
    c.handle_timer(1.0)
    again = sent(c)
    assert [p for _, p in again] == [p for _, p in first]
    c.handle_timer(2.0)
    assert c.next_event() == DiscoveryFailed("no-pads")
    assert sent(c) == []


def _pado(host_uniq: bytes | None, *, ac_name: str | None = "ac-x", extra: tuple[Tag, ...] = ()):
    tags = [Tag(TagType.SERVICE_NAME, b"")]
    if ac_name is not None:
        tags.append(Tag(TagType.AC_NAME, ac_name.encode()))
    if host_uniq is not None:
        tags.append(Tag(TagType.HOST_UNIQ, host_uniq))
    return encode_discovery(DiscoveryPacket(Code.PADO, 0, (*tags, *extra)))


def test_pado_checks_and_relay_session_id_echo() -> None:
    c = client(ac_name="wanted")
    c.start(0.0)
    c.frames_to_send()
    c.receive_discovery(OTHER_AC, _pado(b"not-ours"), 0.1)
    c.receive_discovery(OTHER_AC, _pado(c.host_uniq, ac_name=None), 0.1)
    c.receive_discovery(OTHER_AC, _pado(c.host_uniq, ac_name="other"), 0.1)
    assert c.state is ClientState.SELECTING
    assert c.counters == {"pado-foreign": 1, "pado-incomplete": 1, "pado-other-ac": 1}
    relay = Tag(TagType.RELAY_SESSION_ID, b"\x01\x02")
    c.receive_discovery(OTHER_AC, _pado(c.host_uniq, ac_name="wanted", extra=(relay,)), 0.2)
    ((dst, padr),) = sent(c)
    assert dst == OTHER_AC and padr.relay_session_id == b"\x01\x02"
    assert padr.ac_cookie is None


def test_pads_error_fails() -> None:
    c = client()
    c.start(0.0)
    c.receive_discovery(AC, _pado(c.host_uniq), 0.0)
    c.frames_to_send()
    pads = DiscoveryPacket(
        Code.PADS,
        0,
        (Tag(TagType.HOST_UNIQ, c.host_uniq), Tag(TagType.SERVICE_NAME_ERROR, b"no such")),
    )
    c.receive_discovery(OTHER_AC, encode_discovery(pads), 0.1)  # wrong AC: ignored
    assert c.counters["pads-unexpected"] == 1
    c.receive_discovery(AC, encode_discovery(pads), 0.1)
    assert c.next_event() == DiscoveryFailed("pads-error: no such")


def test_malformed_counted() -> None:
    c = client()
    c.start(0.0)
    c.receive_discovery(AC, b"\x11\x07\x00", 0.0)
    assert c.counters["malformed"] == 1


#: Every state of the client against every discovery code from the right and a wrong AC.
STATES = ["idle", "selecting", "requesting", "session", "closed"]


def _in_state(name: str) -> DiscoveryClient:
    c = client()
    if name == "idle":
        return c
    c.start(0.0)
    if name == "selecting":
        return c
    c.receive_discovery(AC, _pado(c.host_uniq), 0.0)
    if name == "requesting":
        return c
    pads = DiscoveryPacket(Code.PADS, 0x1234, (Tag(TagType.HOST_UNIQ, c.host_uniq),))
    c.receive_discovery(AC, encode_discovery(pads), 0.0)
    if name == "session":
        return c
    c.close()
    return c


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("code", [Code.PADI, Code.PADO, Code.PADR, Code.PADS, Code.PADT])
@pytest.mark.parametrize("src", [AC, OTHER_AC])
def test_every_state_and_code(state: str, code: Code, src: bytes) -> None:
    c = _in_state(state)
    assert c.state.value == state
    c.frames_to_send()
    while c.next_event() is not None:
        pass
    sid = 0x1234 if code in (Code.PADS, Code.PADT) else 0
    tags = (
        Tag(TagType.SERVICE_NAME, b""),
        Tag(TagType.AC_NAME, b"ac"),
        Tag(TagType.HOST_UNIQ, c.host_uniq),
    )
    c.receive_discovery(src, encode_discovery(DiscoveryPacket(code, sid, tags)), 1.0)
    new = c.state
    ev = c.next_event()
    expected = {
        ("selecting", Code.PADO): ClientState.REQUESTING,
        ("requesting", Code.PADS): ClientState.SESSION,
        ("session", Code.PADT): ClientState.CLOSED,
    }
    right_src = src == AC or (state == "selecting" and code is Code.PADO)
    want = expected.get((state, code)) if right_src else None
    if want is None:
        assert new.value == state and ev is None
    else:
        assert new is want
        if want is ClientState.SESSION:
            assert ev == DiscoveryCompleted(AC, 0x1234, "ac-x")
        elif want is ClientState.CLOSED:
            assert ev == SessionEnded("padt")


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("rx"), st.sampled_from([AC, OTHER_AC]), st.binary(max_size=40)),
            st.tuples(
                st.just("pkt"),
                st.sampled_from([AC, OTHER_AC]),
                st.sampled_from(list(Code)[1:]),
                st.integers(0, 3),
            ),
            st.tuples(st.just("timer"), st.floats(0, 30)),
        ),
        max_size=20,
    )
)
def test_random_input_never_raises(steps: list[tuple[object, ...]]) -> None:
    c = client()
    c.start(0.0)
    now = 0.0
    for step in steps:
        if step[0] == "rx":
            c.receive_discovery(step[1], step[2], now)  # type: ignore[arg-type]
        elif step[0] == "pkt":
            code = step[2]
            assert isinstance(code, Code)
            sid = int(step[3]) if code in (Code.PADS, Code.PADT) else 0
            if code is Code.PADT and sid == 0:
                sid = 1
            tags = (Tag(TagType.AC_NAME, b"a"), Tag(TagType.SERVICE_NAME, b""))
            tags += (Tag(TagType.HOST_UNIQ, c.host_uniq),)
            raw = encode_discovery(DiscoveryPacket(code, sid, tags))
            c.receive_discovery(step[1], raw, now)  # type: ignore[arg-type]
        else:
            now += float(step[1])  # type: ignore[arg-type]
            c.handle_timer(now)
        for f in c.frames_to_send():
            decode_discovery(f.payload)
        t = c.get_timer()
        assert t is None or c.state in (ClientState.SELECTING, ClientState.REQUESTING)
