"""Stateful Hypothesis test of the PPPoE discovery engine (RFC 2516 5) against adversarial
clients: PADI floods from many MACs, PADRs with valid, forged, stale, replayed and missing
AC-Cookies, wrong Host-Uniq, retransmissions, PADTs for known and unknown sessions,
malformed packets (short, bad VER/TYPE, LENGTH overrun, tag overrun, bad tag lengths),
multicast sources, plus set-up completion and terminations by the broker and time passing.

Invariants after every step: ``receive_discovery`` never raises and counts what it drops
(every malformed packet as ``malformed``), sessions/setups/per-MAC/rate tables stay within
their configured bounds and agree with each other, session ids are non-zero and unique per
(interface, MAC), every frame we send decodes, every SessionOpened is matched by at most one
SessionTerminated, no timers.
"""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from broker.pppoe.codec import DiscoveryPacket, Tag, decode_discovery, encode_discovery
from broker.pppoe.constants import Code, TagType
from broker.pppoe.discovery import (
    DiscoveryConfig,
    DiscoveryServer,
    PppoeSessionKey,
    SessionOpened,
    SessionTerminated,
)
from broker.wire import MacAddress

IFACE = "acc0"
LOCAL = MacAddress(bytes.fromhex("02aa00000001"))
BROADCAST = MacAddress(b"\xff" * 6)
CLIENTS = [MacAddress(bytes((0x02, 0, 0, 0, 0, i))) for i in range(1, 4)]
CONFIG = DiscoveryConfig(
    ac_name="lac-test",
    cookie_secret=b"s" * 32,
    service_names=("internet", "voip"),
    max_sessions=4,
    max_setups=3,
    padi_per_mac_per_s=1.0,
    padi_burst=2,
    pado_per_s=50.0,
    cookie_lifetime=10.0,
    rate_table_size=8,
    max_sessions_per_mac=2,
)
MALFORMED = [
    b"",
    b"\x11\x09\x00",  # shorter than the header
    b"\x21\x09\x00\x00\x00\x00",  # VER/TYPE 2/1
    b"\x11\x09\x00\x00\x00\x10",  # LENGTH overruns the payload
    b"\x11\x09\x00\x00\x00\x06\x01\x01\x00\x10\x00\x00",  # tag length overruns LENGTH
    b"\x11\x09\x00\x00\x00\x04\x01\x01\x00",  # truncated tag header
    b"\x11\x09\x00\x00\x00\x06\x01\x20\x00\x02\x00\x00",  # PPP-Max-Payload of 0... length 2
    b"\x11\x09\x00\x00\x00\x05\x01\x20\x00\x01\x05",  # PPP-Max-Payload of 1 octet
    b"\x11\x09\x00\x00\x00\x06\x01\x05\x00\x02\x00\x00",  # Vendor-Specific shorter than 4
    b"\x11\x19\x00\x07\x00\x00",  # PADR with a session id
    b"\x11\xa7\x00\x00\x00\x00",  # PADT with session id 0
    b"\x11\x42\x00\x01\x00\x00",  # unknown code 0x42
]


def tags(service: str | None, host_uniq: bytes | None, cookie: bytes | None) -> tuple[Tag, ...]:
    out = []
    if service is not None:
        out.append(Tag(TagType.SERVICE_NAME, service.encode()))
    if host_uniq is not None:
        out.append(Tag(TagType.HOST_UNIQ, host_uniq))
    if cookie is not None:
        out.append(Tag(TagType.AC_COOKIE, cookie))
    return tuple(out)


class DiscoveryAdversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server = DiscoveryServer(
            CONFIG, rand_bytes=random.Random(9).randbytes, local_mac={IFACE: LOCAL}
        )
        self.now = 1000.0
        self.cookies: dict[bytes, list[tuple[bytes | None, bytes]]] = {}  # mac -> (hu, cookie)
        self.open: set[PppoeSessionKey] = set()
        self.ever: set[PppoeSessionKey] = set()
        self.malformed = 0
        self.flood = random.Random(4)

    # -- helpers -------------------------------------------------------------------------
    def send(self, src: bytes, dst: bytes, packet: bytes) -> None:
        self.server.receive_discovery(IFACE, MacAddress(src), MacAddress(dst), packet, self.now)
        self.collect()

    def collect(self) -> None:
        while (e := self.server.next_event()) is not None:
            if isinstance(e, SessionOpened):
                assert e.key not in self.open, "session id reused while open"
                assert e.key.session_id != 0
                self.open.add(e.key)
                self.ever.add(e.key)
            elif isinstance(e, SessionTerminated):
                assert e.key in self.open, "terminated twice or never opened"
                self.open.discard(e.key)
        for frame in self.server.frames_to_send():
            assert frame.interface == IFACE and frame.dst != BROADCAST
            p = decode_discovery(frame.payload)  # everything we send decodes
            if p.code is Code.PADO:
                cookie = p.ac_cookie
                assert cookie is not None
                self.cookies.setdefault(bytes(frame.dst), []).append((p.host_uniq, cookie))
            elif p.code is Code.PADS and p.session_id:
                key = PppoeSessionKey(IFACE, frame.dst, p.session_id)
                assert key in self.ever  # a PADS only ever names a session we opened

    # -- clients ---------------------------------------------------------------------------
    @rule(
        mac=st.sampled_from(CLIENTS),
        service=st.sampled_from(["", "internet", "other", None]),
        host_uniq=st.sampled_from([None, b"\x01", b"hu-2"]),
        unicast=st.booleans(),
    )
    def padi(self, mac: bytes, service: str | None, host_uniq: bytes | None, unicast: bool) -> None:
        packet = encode_discovery(DiscoveryPacket(Code.PADI, 0, tags(service, host_uniq, None)))
        self.send(mac, LOCAL if unicast else BROADCAST, packet)

    @rule(
        mac=st.sampled_from(CLIENTS),
        host_uniq=st.sampled_from([None, b"hu-2"]),
        retransmit=st.booleans(),
    )
    def honest_client(self, mac: bytes, host_uniq: bytes | None, retransmit: bool) -> None:
        """PADI, then PADR with the cookie of the PADO (when one came), maybe twice."""
        padi = DiscoveryPacket(Code.PADI, 0, tags("internet", host_uniq, None))
        self.send(mac, BROADCAST, encode_discovery(padi))
        offers = [c for hu, c in self.cookies.get(bytes(mac), []) if hu == host_uniq]
        if not offers:
            return
        padr = DiscoveryPacket(Code.PADR, 0, tags("internet", host_uniq, offers[-1]))
        for _ in range(2 if retransmit else 1):
            self.send(mac, LOCAL, encode_discovery(padr))

    @rule(n=st.integers(1, 40))
    def padi_flood_from_random_macs(self, n: int) -> None:
        packet = encode_discovery(DiscoveryPacket(Code.PADI, 0, tags("", None, None)))
        for _ in range(n):
            mac = bytes((0x02, *self.flood.randbytes(5)))
            self.send(mac, BROADCAST, packet)

    @rule(
        data=st.data(),
        mac=st.sampled_from(CLIENTS),
        cookie_kind=st.sampled_from(["valid", "valid", "other-mac", "forged", "short", "none"]),
        service=st.sampled_from(["", "internet", "other", None]),
        other_host_uniq=st.booleans(),
    )
    def padr(
        self,
        data: st.DataObject,
        mac: bytes,
        cookie_kind: str,
        service: str | None,
        other_host_uniq: bool,
    ) -> None:
        host_uniq: bytes | None = None
        cookie: bytes | None = None
        if cookie_kind == "valid" and self.cookies.get(mac):
            host_uniq, cookie = data.draw(st.sampled_from(self.cookies[mac]))
        elif cookie_kind == "other-mac":
            others = [c for m, cs in self.cookies.items() if m != mac for c in cs]
            if others:
                host_uniq, cookie = data.draw(st.sampled_from(others))
        elif cookie_kind == "forged":
            cookie = bytes(16)
        elif cookie_kind == "short":
            cookie = b"\x01"
        if other_host_uniq:
            host_uniq = b"not-the-one"
        packet = encode_discovery(DiscoveryPacket(Code.PADR, 0, tags(service, host_uniq, cookie)))
        self.send(mac, LOCAL, packet)

    @rule(data=st.data(), mac=st.sampled_from(CLIENTS), known=st.booleans())
    def padt(self, data: st.DataObject, mac: bytes, known: bool) -> None:
        mine = sorted(k.session_id for k in self.open if k.mac == mac)
        sid = (
            data.draw(st.sampled_from(mine))
            if known and mine
            else data.draw(st.integers(1, 0xFFFF))
        )
        self.send(mac, LOCAL, encode_discovery(DiscoveryPacket(Code.PADT, sid, ())))

    @rule(payload=st.sampled_from(MALFORMED), mac=st.sampled_from(CLIENTS))
    def malformed_packet(self, payload: bytes, mac: bytes) -> None:
        before = self.server.counters.get("malformed", 0)
        self.send(mac, BROADCAST, payload)
        assert self.server.counters.get("malformed", 0) == before + 1, payload
        self.malformed += 1

    @rule(src=st.sampled_from([b"\x01\x00\x5e\x00\x00\x01", b"\xff" * 6, bytes(6), b"\x02"]))
    def bad_source(self, src: bytes) -> None:
        before = self.server.counters.get("bad_src", 0)
        packet = encode_discovery(DiscoveryPacket(Code.PADI, 0, tags("", None, None)))
        self.send(src, BROADCAST, packet)
        assert self.server.counters.get("bad_src", 0) == before + 1

    # -- the broker ------------------------------------------------------------------------
    @rule(data=st.data(), how=st.sampled_from(["done", "terminate", "unknown"]))
    def broker_acts(self, data: st.DataObject, how: str) -> None:
        if how == "unknown" or not self.open:
            self.server.terminate(PppoeSessionKey(IFACE, CLIENTS[0], 0xFFFF), "x", self.now)
        else:
            key = data.draw(st.sampled_from(sorted(self.open, key=repr)))
            if how == "done":
                self.server.setup_done(key)
            else:
                self.server.terminate(key, "admin", self.now)
        self.collect()

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 5.0, 12.0, 25.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        assert self.server.get_timer() is None
        self.server.handle_timer(self.now)
        self.collect()

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def bounded_and_consistent(self) -> None:
        s = self.server
        assert s.counters.get("malformed", 0) == self.malformed
        assert s.sessions == len(self.open) <= CONFIG.max_sessions
        assert 0 <= s.setups <= CONFIG.max_setups
        assert s.setups == sum(1 for x in s._sessions.values() if x.in_setup)
        assert len(s._setup_index) <= s.setups
        per_mac: dict[tuple[str, bytes], int] = {}
        for key in s._sessions:
            per_mac[(key.interface, key.mac)] = per_mac.get((key.interface, key.mac), 0) + 1
        assert per_mac == s._per_mac
        assert all(n <= CONFIG.max_sessions_per_mac for n in per_mac.values())
        assert len(s._padi_rates.table) <= CONFIG.rate_table_size
        assert set(s._sessions) == self.open
        assert not s.frames_to_send() and s.next_event() is None  # drained after each rule


DiscoveryAdversary.TestCase.settings = settings(
    derandomize=True, max_examples=60, stateful_step_count=40, deadline=None
)
TestDiscoveryAdversary = DiscoveryAdversary.TestCase
