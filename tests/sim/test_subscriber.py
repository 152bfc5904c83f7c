"""One emulated subscriber against the broker's own DiscoveryServer and PppLink engines (the
LAC half) and the LNS emulator's per-session PPP (the LNS half): up, ping, churn, failures."""

from __future__ import annotations

import hashlib
import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp import LinkConfig, PppLink
from broker.ppp.events import ChapCredentials, CredentialsReceived, PapCredentials
from broker.ppp.lcp import RestartConfig
from broker.pppoe import (
    DiscoveryConfig,
    DiscoveryServer,
    SessionOpened,
    SessionTerminated,
    decode_session_frame,
    encode_session_frame,
)
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.sim.lns import LnsPppSession
from broker.sim.subscriber import (
    PingsCompleted,
    Subscriber,
    SubscriberConfig,
    SubscriberDown,
    SubscriberEvent,
    SubscriberFailed,
    SubscriberUp,
    build_icmp_echo,
    inet_checksum,
    parse_icmp_echo,
)
from broker.wire import MacAddress

AC_MAC = MacAddress(bytes.fromhex("020000000001"))
SUB_MAC = bytes.fromhex("02aabbccdd01")
LNS_ADDR = bytes([198, 51, 100, 1])
ASSIGN = bytes([198, 51, 100, 77])
IF = "eth0"


class FakeAc:
    """PPPoE discovery + LAC PPP until authentication, then LNS-side PPP (proxy LCP)."""

    def __init__(self, seed: int = 1, password: bytes = b"pw", *, silent_ppp: bool = False):
        r = random.Random(seed)
        self.rand = r.randbytes
        self.disc = DiscoveryServer(
            DiscoveryConfig("fake-ac", b"k" * 16), rand_bytes=self.rand, local_mac={IF: AC_MAC}
        )
        self.password = password
        self.silent_ppp = silent_ppp
        self.links: dict[tuple[bytes, int], PppLink] = {}
        self.lns: dict[tuple[bytes, int], LnsPppSession] = {}
        self.out: list[tuple[bytes, int, bytes]] = []
        self.terminated: list[SessionTerminated] = []
        self.verdicts: list[bool] = []

    def receive(self, src: bytes, ethertype: int, payload: bytes, now: float) -> None:
        if ethertype == ETH_P_PPP_DISC:
            self.disc.receive_discovery(IF, MacAddress(src), AC_MAC, payload, now)
        else:
            sid, ppp = decode_session_frame(payload)
            key = (src, sid)
            if key in self.lns:
                self.lns[key].receive_frame(ppp, now)
            elif key in self.links and not self.silent_ppp:
                self.links[key].receive_frame(ppp, now)
        self.pump(now)

    def pump(self, now: float) -> None:
        for f in self.disc.frames_to_send():
            self.out.append((f.dst, f.ethertype, f.payload))
        while (ev := self.disc.next_event()) is not None:
            if isinstance(ev, SessionOpened):
                link = PppLink(LinkConfig(echo_interval=0.0), rand_bytes=self.rand)
                self.links[(ev.key.mac, ev.key.session_id)] = link
                if not self.silent_ppp:
                    link.start(now)
            elif isinstance(ev, SessionTerminated):
                self.terminated.append(ev)
        for (mac, sid), link in list(self.links.items()):
            while (lev := link.next_event()) is not None:
                if isinstance(lev, CredentialsReceived):
                    ok = self._check(lev)
                    self.verdicts.append(ok)
                    if ok:
                        link.accept("welcome", now)
                        link.hand_over()
                        lns = LnsPppSession(
                            LNS_ADDR, ASSIGN, proxy_lcp=True, restart=RestartConfig()
                        )
                        self.lns[(mac, sid)] = lns
                        self._send(mac, sid, link.frames_to_send())
                        lns.start(now)
                    else:
                        link.reject("bad password", now)
            self._send(mac, sid, link.frames_to_send())
        for (mac, sid), lns in self.lns.items():
            self._send(mac, sid, lns.frames_to_send())

    def _check(self, ev: CredentialsReceived) -> bool:
        creds = ev.auth
        if isinstance(creds, PapCredentials):
            return creds.password == self.password
        if isinstance(creds, ChapCredentials):
            want = hashlib.md5(bytes((creds.ident,)) + self.password + creds.challenge).digest()
            return want == creds.response
        return False

    def _send(self, mac: bytes, sid: int, frames: list[bytes]) -> None:
        for ppp in frames:
            self.out.append((mac, ETH_P_PPP_SES, encode_session_frame(sid, ppp)))

    def timers(self, now: float) -> None:
        for link in self.links.values():
            t = link.get_timer()
            if t is not None and t <= now:
                link.handle_timer(now)
        for lns in self.lns.values():
            t = lns.get_timer()
            if t is not None and t <= now:
                lns.handle_timer(now)
        self.pump(now)

    def padt(self, mac: bytes, now: float) -> None:
        for key in list(self.links):
            if key[0] == mac:
                from broker.pppoe import PppoeSessionKey

                self.disc.terminate(PppoeSessionKey(IF, MacAddress(mac), key[1]), "bye", now)
        self.pump(now)


def run(
    sub: Subscriber, ac: FakeAc | None, now: float, until: float, *, drop: bool = False
) -> tuple[list[SubscriberEvent], float]:
    """Exchange frames and fire timers until nothing is due before ``until``."""
    events: list[SubscriberEvent] = []
    for _ in range(10_000):
        moved = False
        for frame in sub.frames_to_send():
            moved = True
            if ac is not None and not drop:
                ac.receive(sub.mac, frame.ethertype, frame.payload, now)
        if ac is not None:
            for dst, ethertype, payload in ac.out:
                moved = True
                if dst == sub.mac:
                    sub.receive_frame(AC_MAC, ethertype, payload, now)
            ac.out.clear()
        while (ev := sub.next_event()) is not None:
            events.append(ev)
        if moved:
            continue
        timers = [t for t in (sub.get_timer(),) if t is not None]
        if ac is not None:
            timers += [t for lk in ac.links.values() if (t := lk.get_timer()) is not None]
            timers += [t for lk in ac.lns.values() if (t := lk.get_timer()) is not None]
        nxt = min(timers, default=None)
        if nxt is None or nxt > until:
            break
        now = max(now, nxt)
        sub.handle_timer(now)
        if ac is not None:
            ac.timers(now)
    return events, now


def config(**kw: object) -> SubscriberConfig:
    base: dict[str, object] = {"username": "user1@isp-a.example", "password": "pw"}
    base.update(kw)
    return SubscriberConfig(**base)  # type: ignore[arg-type]


def make(seed: int = 2, **kw: object) -> Subscriber:
    return Subscriber(SUB_MAC, config(**kw), rand_bytes=random.Random(seed).randbytes)


def test_chap_subscriber_comes_up_and_pings_the_lns() -> None:
    ac = FakeAc()
    sub = make(auth=("chap",), ping_target="peer", ping_count=3, ping_interval=0.5)
    sub.start(10.0)
    events, _ = run(sub, ac, 10.0, 30.0)
    ups = [e for e in events if isinstance(e, SubscriberUp)]
    assert len(ups) == 1
    assert ups[0].address == "198.51.100.77"
    assert ups[0].peer_address == "198.51.100.1"
    assert 0.0 <= ups[0].latency < 1.0
    assert ac.verdicts == [True]
    assert PingsCompleted(3, 3) in events
    assert sub.pings_received == 3 and len(sub.ping_rtts) == 3
    assert sub.phase == "up"
    assert sub.session_id != 0


def test_pap_subscriber_and_explicit_ping_target() -> None:
    ac = FakeAc()
    sub = make(auth=("pap",), ping_target="198.51.100.1")
    sub.start(0.0)
    events, _ = run(sub, ac, 0.0, 20.0)
    assert any(isinstance(e, SubscriberUp) for e in events)
    assert PingsCompleted(1, 1) in events


def test_ping_to_an_address_nobody_answers_times_out() -> None:
    ac = FakeAc()
    sub = make(ping_target="203.0.113.9", ping_count=2, ping_interval=0.2, ping_timeout=1.0)
    sub.start(0.0)
    events, _ = run(sub, ac, 0.0, 20.0)
    assert PingsCompleted(2, 0) in events


def test_wrong_password_fails_auth() -> None:
    ac = FakeAc(password=b"other")
    sub = make()
    sub.start(0.0)
    events, _ = run(sub, ac, 0.0, 60.0)
    fails = [e for e in events if isinstance(e, SubscriberFailed)]
    assert [f.reason for f in fails] == ["auth-failed"]
    assert not any(isinstance(e, SubscriberUp) for e in events)
    assert sub.finished and sub.get_timer() is None


def test_no_access_concentrator_means_no_pado() -> None:
    sub = make()
    sub.start(0.0)
    events, now = run(sub, None, 0.0, 100.0)
    assert events == [SubscriberFailed("no-pado", "no-pado")]
    assert now == 15.0  # PADI at 0, 1, 3, 7; given up at 15
    assert sub.discovery.counters["padi-retransmits"] == 3


def test_setup_timeout_when_ppp_never_answers() -> None:
    ac = FakeAc(silent_ppp=True)
    sub = make(setup_timeout=5.0)
    sub.start(0.0)
    events, now = run(sub, ac, 0.0, 100.0)
    assert events == [SubscriberFailed("timeout-ppp", "")]
    assert now == 5.0
    # a PADT went out for the half-open session
    assert ac.terminated and ac.terminated[0].by_peer


def test_padt_from_subscriber() -> None:
    ac = FakeAc()
    sub = make()
    sub.start(0.0)
    run(sub, ac, 0.0, 10.0)
    sub.padt(11.0)
    events, _ = run(sub, ac, 11.0, 20.0)
    assert events == [SubscriberDown("local-padt")]
    assert [t.by_peer for t in ac.terminated] == [True]


def test_padt_from_the_ac() -> None:
    ac = FakeAc()
    sub = make()
    sub.start(0.0)
    run(sub, ac, 0.0, 10.0)
    ac.padt(SUB_MAC, 11.0)
    events, _ = run(sub, ac, 11.0, 20.0)
    assert events == [SubscriberDown("padt")]
    assert sub.frames_to_send() == []


def test_lcp_terminate_then_padt() -> None:
    ac = FakeAc()
    sub = make()
    sub.start(0.0)
    run(sub, ac, 0.0, 10.0)
    sub.lcp_terminate(11.0)
    events, _ = run(sub, ac, 11.0, 30.0)
    assert events == [SubscriberDown("lcp-terminate")]
    assert [t.by_peer for t in ac.terminated] == [True]


def test_power_off_is_silent() -> None:
    ac = FakeAc()
    sub = make()
    sub.start(0.0)
    run(sub, ac, 0.0, 10.0)
    sub.power_off(11.0)
    assert sub.frames_to_send() == []
    assert sub.next_event() == SubscriberDown("power-off")
    assert sub.get_timer() is None
    assert ac.terminated == []


def test_icmp_echo_round_trip_and_checksums() -> None:
    pkt = build_icmp_echo(b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", 0x1234, 7, b"abc")
    assert inet_checksum(pkt[:20]) == 0
    echo = parse_icmp_echo(pkt)
    assert echo is not None and not echo.reply
    assert (echo.ident, echo.seq, echo.payload) == (0x1234, 7, b"abc")
    bad = bytearray(pkt)
    bad[-1] ^= 0xFF
    assert parse_icmp_echo(bytes(bad)) is None


@settings(max_examples=200, deadline=None)
@given(
    src=st.binary(min_size=4, max_size=4),
    dst=st.binary(min_size=4, max_size=4),
    ident=st.integers(0, 0xFFFF),
    seq=st.integers(0, 0xFFFF),
    payload=st.binary(max_size=64),
    reply=st.booleans(),
)
def test_icmp_round_trip_property(
    src: bytes, dst: bytes, ident: int, seq: int, payload: bytes, reply: bool
) -> None:
    echo = parse_icmp_echo(build_icmp_echo(src, dst, ident, seq, payload, reply=reply))
    assert echo is not None
    assert (echo.src, echo.dst, echo.reply, echo.ident, echo.seq, echo.payload) == (
        src,
        dst,
        reply,
        ident,
        seq,
        payload,
    )


@settings(max_examples=200, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([ETH_P_PPP_DISC, ETH_P_PPP_SES, 0x0800]), st.binary(max_size=80)),
        max_size=12,
    )
)
def test_garbage_never_raises(frames: list[tuple[int, bytes]]) -> None:
    ac = FakeAc()
    sub = make(ping_target="peer")
    sub.start(0.0)
    run(sub, ac, 0.0, 5.0)
    for ethertype, payload in frames:
        sub.receive_frame(AC_MAC, ethertype, payload, 6.0)
        sub.frames_to_send()
        while sub.next_event() is not None:
            pass
    # still a sane engine: timers are in the future or absent
    t = sub.get_timer()
    assert t is None or t >= 0


def test_addresses_are_documentation_range() -> None:
    assert ipaddress.IPv4Address(ASSIGN) in ipaddress.IPv4Network("198.51.100.0/24")


def _in_phase(phase: str) -> tuple[Subscriber, FakeAc, float]:
    ac = FakeAc(silent_ppp=phase == "ppp")
    sub = make(ping_target="peer" if phase == "up-pinging" else None, ping_count=50)
    if phase == "idle":
        return sub, ac, 0.0
    sub.start(0.0)
    if phase == "discovery":
        sub.frames_to_send()  # the PADI never reaches the AC
        return sub, ac, 0.0
    until = {"ppp": 1.0, "up": 10.0, "up-pinging": 2.0, "failed": 100.0}[phase]
    if phase == "failed":
        ac = FakeAc(password=b"wrong")
    _, now = run(sub, ac, 0.0, until)
    return sub, ac, now


@pytest.mark.parametrize("phase", ["idle", "discovery", "ppp", "up", "up-pinging", "failed"])
@pytest.mark.parametrize("command", ["padt", "power_off", "lcp_terminate"])
def test_every_command_in_every_phase(phase: str, command: str) -> None:
    sub, ac, now = _in_phase(phase)
    was = sub.phase
    getattr(sub, command)(now + 0.1)
    events, _ = run(sub, ac, now + 0.1, now + 60.0)
    if was in ("failed", "down"):
        assert events == [] and sub.phase == was
        return
    if was == "idle":
        # nothing started: the subscriber just ends, reporting it never came up
        assert sub.finished
        return
    assert sub.finished, (was, sub.phase, events)
    kinds = [type(e) for e in events if not isinstance(e, PingsCompleted)]
    if was == "up":
        assert kinds == [SubscriberDown]
    else:
        assert kinds == [SubscriberFailed]
    assert sub.get_timer() is None
