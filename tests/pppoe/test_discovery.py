"""DiscoveryServer with a fake clock: cookies, echoes, Service-Name policy, capacity, PADR
retransmission, PADT both ways, rate limits, hostile input."""

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
    LineInfo,
    OutFrame,
    PppoeSessionKey,
    SessionOpened,
    SessionTerminated,
    Tag,
    TagType,
    decode_discovery,
    encode_discovery,
    encode_line_info,
)
from broker.pppoe.constants import ETH_P_PPP_DISC
from broker.wire import MacAddress

IF = "eth1"
AC_MAC = MacAddress(bytes.fromhex("020000000001"))
CLIENT = MacAddress(bytes.fromhex("020000000abc"))
BCAST = MacAddress(b"\xff" * 6)
SECRET = b"s" * 32


def make_server(**kw: object) -> DiscoveryServer:
    cfg = DiscoveryConfig(ac_name="lac-test", cookie_secret=SECRET, **kw)  # type: ignore[arg-type]
    rng = random.Random(7)
    return DiscoveryServer(cfg, rand_bytes=rng.randbytes, local_mac={IF: AC_MAC})


def padi(service: str = "", *extra: Tag) -> bytes:
    tags = (Tag(TagType.SERVICE_NAME, service.encode()), *extra)
    return encode_discovery(DiscoveryPacket(Code.PADI, 0, tags))


def padr(service: str, cookie: bytes | None, *extra: Tag) -> bytes:
    tags = [Tag(TagType.SERVICE_NAME, service.encode()), *extra]
    if cookie is not None:
        tags.append(Tag(TagType.AC_COOKIE, cookie))
    return encode_discovery(DiscoveryPacket(Code.PADR, 0, tuple(tags)))


def one_frame(server: DiscoveryServer) -> tuple[OutFrame, DiscoveryPacket]:
    frames = server.frames_to_send()
    assert len(frames) == 1, frames
    f = frames[0]
    assert f.ethertype == ETH_P_PPP_DISC
    return f, decode_discovery(f.payload)


def no_frames(server: DiscoveryServer) -> None:
    assert server.frames_to_send() == []


def discover(
    server: DiscoveryServer, now: float = 100.0, mac: MacAddress = CLIENT, *extra: Tag
) -> bytes:
    server.receive_discovery(IF, mac, BCAST, padi("", *extra), now)
    _f, pado = one_frame(server)
    assert pado.code is Code.PADO
    cookie = pado.ac_cookie
    assert cookie is not None
    return cookie


def open_session(
    server: DiscoveryServer, now: float = 100.0, mac: MacAddress = CLIENT, *extra: Tag
) -> SessionOpened:
    cookie = discover(server, now, mac, *extra)
    server.receive_discovery(IF, mac, AC_MAC, padr("", cookie, *extra), now)
    _f, pads = one_frame(server)
    assert pads.code is Code.PADS and pads.session_id != 0
    ev = server.next_event()
    assert isinstance(ev, SessionOpened)
    assert ev.key.session_id == pads.session_id
    return ev


# -- happy path --------------------------------------------------------------------------
def test_full_discovery_with_echoes() -> None:
    s = make_server()
    hu = Tag(TagType.HOST_UNIQ, b"\x16\x37\x2c\x16")
    relay = Tag(TagType.RELAY_SESSION_ID, b"relay-1")
    line = LineInfo(circuit_id=b"an1 eth 1/1:7", remote_id=b"r-9", actual_rate_down=20000)
    vendor = Tag(TagType.VENDOR_SPECIFIC, encode_line_info(line))
    s.receive_discovery(IF, CLIENT, BCAST, padi("", hu, relay, vendor), 10.0)
    f, pado = one_frame(s)
    assert f.dst == CLIENT and f.interface == IF
    assert pado.code is Code.PADO and pado.session_id == 0
    assert pado.ac_name == "lac-test" and pado.service_names == [""]
    assert pado.host_uniq == hu.value and pado.relay_session_id == relay.value
    assert pado.ac_cookie is not None and len(pado.ac_cookie) == 16

    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", pado.ac_cookie, hu, relay, vendor), 11.0)
    f, pads = one_frame(s)
    assert pads.code is Code.PADS and pads.session_id != 0
    assert pads.host_uniq == hu.value and pads.relay_session_id == relay.value
    assert pads.service_names == [""]
    ev = s.next_event()
    assert ev == SessionOpened(
        key=PppoeSessionKey(IF, CLIENT, pads.session_id),
        host_uniq=hu.value,
        service_name="",
        line_info=line,
        max_payload=None,
        relay_session_id=relay.value,
    )
    assert s.next_event() is None
    assert s.sessions == 1 and s.setups == 1 and s.has_session(ev.key)
    s.setup_done(ev.key)
    assert s.setups == 0 and s.sessions == 1


def test_broken_line_info_from_access_node_still_served() -> None:
    s = make_server()
    bad_line = Tag(TagType.VENDOR_SPECIFIC, bytes.fromhex("00000de9" + "0105"))
    ev = open_session(s, 1.0, CLIENT, bad_line)
    assert ev.line_info == LineInfo() and s.counters["bad_line_info"] == 1


def test_no_line_info_gives_empty_line_info() -> None:
    ev = open_session(make_server())
    assert ev.line_info == LineInfo() and ev.host_uniq is None


def test_session_ids_unpredictable_nonzero_unique() -> None:
    # Unique per (interface, MAC): one MAC opening 300 sessions (distinct Host-Uniq).
    s = make_server(max_setups=1000, padi_burst=1000)
    ids = [
        open_session(s, 100.0, CLIENT, Tag(TagType.HOST_UNIQ, i.to_bytes(2, "big"))).key.session_id
        for i in range(300)
    ]
    assert 0 not in ids and len(set(ids)) == 300
    assert len({i >> 8 for i in ids}) > 100  # spread over the id space


def test_session_id_allocation_retries_zero_and_collisions() -> None:
    values = iter([b"\x00\x00", b"\x00\x05", b"\x00\x05", b"\x00\x00", b"\x00\x06"])
    cfg = DiscoveryConfig(ac_name="a", cookie_secret=SECRET)
    s = DiscoveryServer(cfg, rand_bytes=lambda n: next(values), local_mac={IF: AC_MAC})
    a = open_session(s)
    assert a.key.session_id == 5
    s.setup_done(a.key)
    assert open_session(s).key.session_id == 6


def test_id_space_exhausted_gives_system_error() -> None:
    cfg = DiscoveryConfig(ac_name="a", cookie_secret=SECRET)
    s = DiscoveryServer(cfg, rand_bytes=lambda n: b"\x00\x09", local_mac={IF: AC_MAC})
    s.setup_done(open_session(s).key)
    cookie = discover(s)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id == 0 and pads.errors[0][0] is TagType.AC_SYSTEM_ERROR


# -- cookies -----------------------------------------------------------------------------
def test_cookie_valid_in_previous_bucket_expired_after() -> None:
    s = make_server(cookie_lifetime=60.0)
    cookie = discover(s, now=119.0)  # bucket 1
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie), 179.0)  # bucket 2: previous ok
    _f, pads = one_frame(s)
    assert pads.session_id != 0
    s2 = make_server(cookie_lifetime=60.0)
    cookie = discover(s2, now=119.0)
    s2.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie), 180.0)  # bucket 3: expired
    no_frames(s2)
    assert s2.counters["bad_cookie"] == 1 and s2.sessions == 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: None,  # missing
        lambda c: bytes([c[0] ^ 1]) + c[1:],  # forged
        lambda c: c[:-1],  # truncated
        lambda c: b"\x00" * 16,
    ],
)
def test_bad_cookie_dropped(tamper: Callable[[bytes], bytes | None]) -> None:
    s = make_server()
    cookie = discover(s)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", tamper(cookie)), 100.0)
    no_frames(s)
    assert s.counters["bad_cookie"] == 1 and s.next_event() is None


def test_cookie_bound_to_mac_interface_and_host_uniq() -> None:
    s = make_server()
    cookie = discover(s)
    other = MacAddress(bytes.fromhex("020000000abd"))
    s.receive_discovery(IF, other, AC_MAC, padr("", cookie), 100.0)
    s.set_local_mac("eth2", AC_MAC)
    s.receive_discovery("eth2", CLIENT, AC_MAC, padr("", cookie), 100.0)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie, Tag(TagType.HOST_UNIQ, b"hu")), 100.0)
    no_frames(s)
    assert s.counters["bad_cookie"] == 3


def test_cookie_depends_on_secret() -> None:
    s = make_server()
    cookie = discover(s)
    cfg = DiscoveryConfig(ac_name="x", cookie_secret=b"another secret, 16+")
    t = DiscoveryServer(cfg, local_mac={IF: AC_MAC})
    t.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie), 100.0)
    assert t.counters["bad_cookie"] == 1


# -- Service-Name policy -----------------------------------------------------------------
def test_service_names_offered_and_matched() -> None:
    s = make_server(service_names=("internet", "voip"))
    s.receive_discovery(IF, CLIENT, BCAST, padi(""), 1.0)
    _f, pado = one_frame(s)
    assert pado.service_names == ["internet", "voip"]
    s.receive_discovery(IF, CLIENT, BCAST, padi("voip"), 1.0)
    _f, pado = one_frame(s)
    assert pado.service_names == ["voip"]
    s.receive_discovery(IF, CLIENT, BCAST, padi("iptv"), 1.0)
    no_frames(s)  # RFC 2516 §5.2: cannot serve -> no PADO
    assert s.counters["service_unavailable"] == 1


def test_padr_unknown_service_gets_service_name_error() -> None:
    s = make_server(service_names=("internet",))
    hu = Tag(TagType.HOST_UNIQ, b"h")
    cookie = discover(s, 100.0, CLIENT, hu)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("iptv", cookie, hu), 100.0)
    _f, pads = one_frame(s)
    assert pads.code is Code.PADS and pads.session_id == 0
    assert pads.errors[0][0] is TagType.SERVICE_NAME_ERROR
    assert pads.host_uniq == b"h"
    assert s.sessions == 0 and s.next_event() is None
    assert s.counters["service_name_error"] == 1


def test_padr_empty_service_gets_first_offered() -> None:
    s = make_server(service_names=("internet", "voip"))
    ev = open_session(s)
    assert ev.service_name == "internet"


# -- capacity ----------------------------------------------------------------------------
def test_ac_system_error_when_setups_full_then_freed_by_setup_done() -> None:
    s = make_server(max_setups=2)
    macs = [MacAddress(bytes([2, 0, 0, 0, 1, i])) for i in range(4)]
    cookies = [discover(s, 100.0, m) for m in macs[:3]]
    a = open_session(s, 100.0, macs[3])
    s.receive_discovery(IF, macs[0], AC_MAC, padr("", cookies[0]), 100.0)
    one_frame(s)
    assert s.setups == 2
    s.receive_discovery(IF, macs[1], AC_MAC, padr("", cookies[1]), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id == 0 and pads.errors[0][0] is TagType.AC_SYSTEM_ERROR
    # a PADI while full gets no PADO (so the client can pick another AC)
    s.receive_discovery(IF, macs[2], BCAST, padi(""), 100.0)
    no_frames(s)
    assert s.counters["padi_full"] == 1
    s.setup_done(a.key)
    s.setup_done(a.key)  # idempotent
    s.receive_discovery(IF, macs[1], AC_MAC, padr("", cookies[1]), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id != 0


def test_ac_system_error_when_sessions_full() -> None:
    s = make_server(max_sessions=1)
    a = open_session(s)
    s.setup_done(a.key)
    other = MacAddress(bytes.fromhex("020000000abd"))
    s.receive_discovery(IF, other, BCAST, padi(""), 100.0)
    no_frames(s)
    s.terminate(a.key, "", 100.0)
    s.frames_to_send()
    assert isinstance(s.next_event(), SessionTerminated)
    cookie = discover(s, 100.0, other)
    assert s.sessions == 0
    open_session(s, 100.0, CLIENT)
    s.receive_discovery(IF, other, AC_MAC, padr("", cookie), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id == 0 and pads.errors[0][0] is TagType.AC_SYSTEM_ERROR
    assert s.counters["system_error"] == 1


def test_max_sessions_per_mac() -> None:
    s = make_server(max_sessions_per_mac=2)
    keys = [
        open_session(s, 100.0, CLIENT, Tag(TagType.HOST_UNIQ, bytes([i]))).key for i in range(2)
    ]
    hu = Tag(TagType.HOST_UNIQ, b"\x09")
    cookie = discover(s, 100.0, CLIENT, hu)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie, hu), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id == 0 and pads.errors[0][0] is TagType.AC_SYSTEM_ERROR
    assert s.counters["per_mac_limit"] == 1
    open_session(s, 100.0, MacAddress(bytes.fromhex("020000000abd")))  # other MACs fine
    s.terminate(keys[0], "", 100.0)
    s.frames_to_send()
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie, hu), 100.0)
    _f, pads = one_frame(s)
    assert pads.session_id != 0


# -- PADR retransmission -----------------------------------------------------------------
def test_retransmitted_padr_gets_same_pads_not_second_session() -> None:
    s = make_server()
    hu = Tag(TagType.HOST_UNIQ, b"abc")
    cookie = discover(s, 100.0, CLIENT, hu)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie, hu), 100.0)
    first, _ = one_frame(s)
    assert isinstance(s.next_event(), SessionOpened)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie, hu), 101.0)
    again, _ = one_frame(s)
    assert again == first
    assert s.next_event() is None and s.sessions == 1
    assert s.counters["padr_retransmit"] == 1
    # different Host-Uniq from the same MAC = a second session
    hu2 = Tag(TagType.HOST_UNIQ, b"abd")
    cookie2 = discover(s, 101.0, CLIENT, hu2)
    s.receive_discovery(IF, CLIENT, AC_MAC, padr("", cookie2, hu2), 101.0)
    _f, pads = one_frame(s)
    assert pads.session_id != decode_discovery(first.payload).session_id
    assert s.sessions == 2


def test_padr_after_setup_done_opens_new_session() -> None:
    s = make_server()
    a = open_session(s)
    s.setup_done(a.key)
    b = open_session(s)
    assert b.key != a.key and s.sessions == 2


# -- PADT both ways ----------------------------------------------------------------------
def test_padt_from_client_terminates() -> None:
    s = make_server()
    a = open_session(s)
    err = Tag(TagType.GENERIC_ERROR, b"bye")
    padt = encode_discovery(DiscoveryPacket(Code.PADT, a.key.session_id, (err,)))
    s.receive_discovery(IF, CLIENT, AC_MAC, padt, 101.0)
    assert s.next_event() == SessionTerminated(a.key, by_peer=True, reason="PADT: bye")
    assert s.sessions == 0 and s.setups == 0
    no_frames(s)
    s.receive_discovery(IF, CLIENT, AC_MAC, padt, 102.0)
    assert s.next_event() is None and s.counters["padt_unknown"] == 1


def test_padt_from_other_mac_is_ignored() -> None:
    s = make_server()
    a = open_session(s)
    padt = encode_discovery(DiscoveryPacket(Code.PADT, a.key.session_id))
    s.receive_discovery(IF, MacAddress(bytes.fromhex("020000000abd")), AC_MAC, padt, 101.0)
    assert s.sessions == 1 and s.counters["padt_unknown"] == 1


def test_terminate_sends_padt_with_relay_id() -> None:
    s = make_server()
    relay = Tag(TagType.RELAY_SESSION_ID, b"r")
    a = open_session(s, 100.0, CLIENT, relay)
    s.terminate(a.key, "lns closed", 105.0)
    f, padt = one_frame(s)
    assert f.dst == CLIENT and padt.code is Code.PADT
    assert padt.session_id == a.key.session_id
    assert padt.relay_session_id == b"r"
    assert padt.errors == [(TagType.GENERIC_ERROR, "lns closed")]
    assert s.next_event() == SessionTerminated(a.key, by_peer=False, reason="lns closed")
    assert s.sessions == 0 and s.setups == 0
    s.terminate(a.key, "again", 106.0)
    no_frames(s)
    assert s.counters["terminate_unknown"] == 1


# -- PPP-Max-Payload (RFC 4638) -----------------------------------------------------------
def test_max_payload_echoed_only_when_mtu_allows() -> None:
    mp = Tag(TagType.PPP_MAX_PAYLOAD, (1500).to_bytes(2, "big"))
    s = make_server()  # mtu 1500 -> 1492 max
    s.receive_discovery(IF, CLIENT, BCAST, padi("", mp), 1.0)
    _f, pado = one_frame(s)
    assert pado.max_payload is None
    big = make_server(mtu=1508)
    ev = open_session(big, 100.0, CLIENT, mp)
    assert ev.max_payload == 1500


# -- rate limits -------------------------------------------------------------------------
def test_per_mac_padi_rate_limit_token_bucket() -> None:
    s = make_server(padi_per_mac_per_s=2.0, padi_burst=5)
    for _ in range(8):
        s.receive_discovery(IF, CLIENT, BCAST, padi(""), 50.0)
    assert len(s.frames_to_send()) == 5
    assert s.counters["padi_rate_limited"] == 3
    s.receive_discovery(IF, CLIENT, BCAST, padi(""), 50.4)
    no_frames(s)
    s.receive_discovery(IF, CLIENT, BCAST, padi(""), 50.5)  # 1 token after 0.5 s at 2/s
    assert len(s.frames_to_send()) == 1
    other = MacAddress(bytes.fromhex("020000000abd"))
    s.receive_discovery(IF, other, BCAST, padi(""), 50.5)  # other MACs unaffected
    assert len(s.frames_to_send()) == 1


def test_rate_table_is_bounded() -> None:
    s = make_server(rate_table_size=100)
    for i in range(1000):
        s.receive_discovery(IF, MacAddress(i.to_bytes(6, "big")), BCAST, padi(""), 1.0)
    assert len(s._padi_rates.table) <= 100


def test_rate_table_forgets_refilled_buckets() -> None:
    # Subscribers redial with new MACs: the table must hold only the MACs seen in the last
    # burst/rate seconds (a full bucket is the same as none), not the last 8192 ever seen.
    s = make_server(padi_per_mac_per_s=2.0, padi_burst=5)  # a bucket refills in 2.5 s
    for i in range(1000):  # 10 new MACs per second for 100 s
        s.receive_discovery(IF, MacAddress((i + 1).to_bytes(6, "big")), BCAST, padi(""), i / 10)
        s.frames_to_send()
    assert len(s._padi_rates.table) <= 26
    # a MAC that used its burst is still limited (its bucket is not yet full again) ...
    for _ in range(6):
        s.receive_discovery(IF, CLIENT, BCAST, padi(""), 200.0)
    assert len(s.frames_to_send()) == 5
    s.receive_discovery(IF, MacAddress(b"\x02" * 6), BCAST, padi(""), 202.0)
    s.receive_discovery(IF, CLIENT, BCAST, padi(""), 202.4)  # 4.8 tokens: one is allowed
    assert len(s.frames_to_send()) == 2
    # ... and forgotten once it has been idle for burst/rate seconds
    s.receive_discovery(IF, MacAddress(b"\x02" * 6), BCAST, padi(""), 205.0)
    s.frames_to_send()
    assert (IF, CLIENT) not in s._padi_rates.table


def test_global_pado_cap() -> None:
    s = make_server(pado_per_s=10.0)
    rng = random.Random(1)
    sent = 0
    for step in range(200):  # 2 s at 100 PADI/s from random MACs
        mac = MacAddress(bytes([2]) + rng.randbytes(5))
        s.receive_discovery(IF, mac, BCAST, padi(""), step * 0.01)
        sent += len(s.frames_to_send())
    assert sent <= 10 + 10 * 2
    assert s.counters["pado_rate_limited"] == 200 - sent


# -- hostile input -----------------------------------------------------------------------
def test_malformed_and_unexpected_are_counted() -> None:
    s = make_server()
    s.receive_discovery(IF, CLIENT, BCAST, b"\x11\x09\x00\x00\x00\x08\x01\x01\x00\x10", 1.0)
    s.receive_discovery(IF, CLIENT, BCAST, encode_discovery(DiscoveryPacket(Code.PADI)), 1.0)
    two = (Tag(TagType.SERVICE_NAME), Tag(TagType.SERVICE_NAME, b"x"))
    s.receive_discovery(IF, CLIENT, BCAST, encode_discovery(DiscoveryPacket(Code.PADI, 0, two)), 1)
    s.receive_discovery(IF, CLIENT, AC_MAC, encode_discovery(DiscoveryPacket(Code.PADO)), 1.0)
    s.receive_discovery(IF, BCAST, BCAST, padi(""), 1.0)  # broadcast source
    s.receive_discovery(IF, CLIENT, MacAddress(bytes(6)), padi(""), 1.0)  # not for us
    cookie = discover(s, 1.0)
    s.receive_discovery(IF, CLIENT, BCAST, padr("", cookie), 1.0)  # PADR must be unicast to us
    no_frames(s)
    assert s.next_event() is None
    c = s.counters
    assert c["malformed"] == 1 and c["bad_service_name_tag"] == 2
    assert c["unexpected_code"] == 1 and c["bad_src"] == 1 and c["wrong_dst"] == 2


@st.composite
def _frames(draw: st.DrawFn) -> tuple[str, bytes, bytes, bytes]:
    mac = draw(st.sampled_from([CLIENT, bytes.fromhex("020000000abd"), BCAST, b"\x00" * 6]))
    dst = draw(st.sampled_from([AC_MAC, BCAST, CLIENT]))
    kind = draw(st.integers(0, 2))
    if kind == 0:
        payload = draw(st.binary(max_size=60))
    else:
        code = draw(st.sampled_from(list(Code)))
        sid = draw(st.integers(0, 3))
        tags = draw(
            st.lists(
                st.builds(
                    Tag,
                    st.sampled_from([*TagType, 0x0999]),
                    st.binary(max_size=20),
                ),
                max_size=5,
            )
        )
        payload = bytes([0x11, code]) + sid.to_bytes(2, "big")
        body = b"".join(
            t.type.to_bytes(2, "big") + len(t.value).to_bytes(2, "big") + t.value for t in tags
        )
        payload += len(body).to_bytes(2, "big") + body
    return draw(st.sampled_from([IF, "eth9"])), mac, dst, payload


@settings(max_examples=150, deadline=None)
@given(st.lists(_frames(), max_size=30), st.lists(st.floats(0, 1000), min_size=1, max_size=30))
def test_engine_never_raises_on_random_input(
    frames: list[tuple[str, bytes, bytes, bytes]], times: list[float]
) -> None:
    s = make_server(max_setups=3, max_sessions=4)
    times.sort()
    for i, (ifname, src, dst, payload) in enumerate(frames):
        s.receive_discovery(
            ifname, MacAddress(src), MacAddress(dst), payload, times[i % len(times)]
        )
        for f in s.frames_to_send():
            decode_discovery(f.payload)  # everything we send decodes
    while (ev := s.next_event()) is not None:
        if isinstance(ev, SessionOpened):
            s.terminate(ev.key, "x", 1000.0)
    assert s.sessions == 0 and s.setups == 0


@st.composite
def _scenarios(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    # (action, client index, host-uniq index)
    action = st.sampled_from(
        ["padi", "padr", "padr_stale", "padt", "padt_wrong", "terminate", "done", "tick"]
    )
    return draw(st.lists(st.tuples(action, st.integers(0, 3), st.integers(0, 2)), max_size=60))


@settings(max_examples=150, deadline=None)
@given(_scenarios())
def test_engine_invariants_over_valid_sequences(steps: list[tuple[str, int, int]]) -> None:
    """Random but well-formed client behaviour: session bookkeeping always adds up."""
    s = make_server(max_setups=3, max_sessions=5, cookie_lifetime=10.0, max_sessions_per_mac=2)
    macs = [MacAddress(bytes([2, 0, 0, 0, 9, i])) for i in range(4)]
    cookies: dict[tuple[int, int], bytes] = {}
    live: dict[PppoeSessionKey, bool] = {}  # key -> still in setup
    now = 0.0
    for action, ci, hi in steps:
        mac = macs[ci]
        hu = Tag(TagType.HOST_UNIQ, bytes([hi]))
        if action == "padi":
            s.receive_discovery(IF, mac, BCAST, padi("", hu), now)
            for f in s.frames_to_send():
                pado = decode_discovery(f.payload)
                assert pado.code is Code.PADO and pado.host_uniq == hu.value
                assert pado.ac_cookie is not None
                cookies[(ci, hi)] = pado.ac_cookie
        elif action in ("padr", "padr_stale"):
            cookie = cookies.get((ci, hi), b"\x00" * 16)
            t = now + (25.0 if action == "padr_stale" else 0.0)
            s.receive_discovery(IF, mac, AC_MAC, padr("", cookie, hu), t)
            for f in s.frames_to_send():
                pads = decode_discovery(f.payload)
                assert pads.code is Code.PADS and pads.host_uniq == hu.value
                if pads.session_id == 0:
                    assert pads.errors and pads.errors[0][0] is TagType.AC_SYSTEM_ERROR
        elif action in ("padt", "padt_wrong"):
            mine = [k for k in live if k.mac == mac]
            sid = mine[0].session_id if mine and action == "padt" else 0xFFFF
            pkt = encode_discovery(DiscoveryPacket(Code.PADT, sid))
            s.receive_discovery(IF, mac, AC_MAC, pkt, now)
        elif action == "terminate" and live:
            key = sorted(live, key=lambda k: (k.mac, k.session_id))[ci % len(live)]
            s.terminate(key, "admin", now)
            (f,) = s.frames_to_send()
            assert decode_discovery(f.payload).session_id == key.session_id
        elif action == "done" and live:
            key = sorted(live, key=lambda k: (k.mac, k.session_id))[ci % len(live)]
            s.setup_done(key)
            live[key] = False
        else:
            now += 3.0
        while (ev := s.next_event()) is not None:
            if isinstance(ev, SessionOpened):
                assert ev.key not in live and ev.key.session_id != 0
                live[ev.key] = True
            else:
                assert ev.key in live
                del live[ev.key]
        assert s.sessions == len(live) <= 5
        assert s.setups == sum(live.values()) <= 3
        assert all(s.has_session(k) for k in live)
        assert all(sum(1 for k in live if k.mac == m) <= 2 for m in macs)


@pytest.mark.parametrize(
    "kw",
    [
        {"cookie_secret": b"short"},
        {"ac_name": ""},
        {"cookie_lifetime": 0.0},
        {"pado_per_s": 0.0},
        {"padi_burst": 0},
        {"max_setups": 0},
        {"mtu": 10},
        {"max_sessions_per_mac": -1},
    ],
)
def test_config_validation(kw: dict[str, object]) -> None:
    args: dict[str, object] = {"ac_name": "ac", "cookie_secret": SECRET, **kw}
    with pytest.raises(ValueError):
        DiscoveryConfig(**args)  # type: ignore[arg-type]
