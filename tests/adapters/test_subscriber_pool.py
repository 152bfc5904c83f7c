"""Subscriber pool: many subscribers on one (fake) raw interface, one timer, MAC demux."""

from __future__ import annotations

import hashlib
import random
from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from broker.adapters.rawether import PACKET_OUTGOING
from broker.adapters.subscriber_pool import SubscriberPool, random_local_mac
from broker.ppp import LinkConfig, PppLink
from broker.ppp.events import ChapCredentials, CredentialsReceived, PapCredentials
from broker.ppp.lcp import RestartConfig
from broker.pppoe import (
    DiscoveryConfig,
    DiscoveryServer,
    SessionOpened,
    decode_session_frame,
    encode_session_frame,
)
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.sim.lns import LnsPppSession
from broker.sim.subscriber import (
    PingsCompleted,
    Subscriber,
    SubscriberConfig,
    SubscriberEvent,
    SubscriberFailed,
    SubscriberUp,
)
from broker.wire import MacAddress

AC_MAC = MacAddress(bytes.fromhex("020000000001"))
PASSWORD = b"pw"


class Wire:
    """The access network: the pool's two fake sockets and an AC answering on them."""

    def __init__(self, *, ac: bool = True) -> None:
        self.sockets: dict[int, FakeSocket] = {}
        self.ac = FakeAc(self) if ac else None
        self.sent = 0

    def transmit(self, frame: bytes) -> None:
        self.sent += 1
        for sock in self.sockets.values():  # a packet tap sees our own frames too
            sock.inbox.append((frame, ("eth9", sock.ethertype, PACKET_OUTGOING)))
        if self.ac is not None:
            self.ac.receive(frame)

    def deliver(self, frame: bytes) -> None:
        ethertype = int.from_bytes(frame[12:14], "big")
        sock = self.sockets.get(ethertype)
        if sock is not None:
            sock.inbox.append((frame, ("eth9", ethertype, 3)))


class FakeSocket:
    def __init__(self, wire: Wire, ethertype: int) -> None:
        self.wire, self.ethertype = wire, ethertype
        self.inbox: deque[tuple[bytes, Any]] = deque()
        self.closed = False

    def fileno(self) -> int:
        return 100 + self.ethertype % 7

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.popleft()

    def send(self, data: bytes, /) -> int:
        self.wire.transmit(data)
        return len(data)

    def close(self) -> None:
        self.closed = True


class FakeSockets:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def open(self, interface: str, ethertype: int) -> FakeSocket:
        sock = FakeSocket(self.wire, ethertype)
        self.wire.sockets[ethertype] = sock
        return sock

    def mac_address(self, interface: str) -> MacAddress:
        return MacAddress(bytes(6))


class FakeAc:
    """DiscoveryServer + PppLink until authentication, then the LNS emulator's PPP."""

    def __init__(self, wire: Wire) -> None:
        r = random.Random(9)
        self.rand = r.randbytes
        self.wire = wire
        self.disc = DiscoveryServer(
            DiscoveryConfig("ac", b"k" * 16, padi_per_mac_per_s=100, pado_per_s=1e6),
            rand_bytes=self.rand,
            local_mac={"eth0": AC_MAC},
        )
        self.links: dict[tuple[bytes, int], PppLink] = {}
        self.lns: dict[tuple[bytes, int], LnsPppSession] = {}
        self.next_host = 2

    def receive(self, frame: bytes) -> None:
        dst, src, ethertype = frame[:6], frame[6:12], int.from_bytes(frame[12:14], "big")
        payload, now = frame[14:], 0.0
        if ethertype == ETH_P_PPP_DISC:
            self.disc.receive_discovery("eth0", MacAddress(src), MacAddress(dst), payload, now)
        elif dst == AC_MAC:
            sid, ppp = decode_session_frame(payload)
            key = (src, sid)
            if key in self.lns:
                self.lns[key].receive_frame(ppp, now)
            elif key in self.links:
                self.links[key].receive_frame(ppp, now)
        self.pump(now)

    def pump(self, now: float) -> None:
        for f in self.disc.frames_to_send():
            self.wire.deliver(f.dst + AC_MAC + f.ethertype.to_bytes(2, "big") + f.payload)
        while (ev := self.disc.next_event()) is not None:
            if isinstance(ev, SessionOpened):
                link = PppLink(LinkConfig(echo_interval=0.0), rand_bytes=self.rand)
                self.links[(ev.key.mac, ev.key.session_id)] = link
                link.start(now)
        for (mac, sid), link in list(self.links.items()):
            while (lev := link.next_event()) is not None:
                if isinstance(lev, CredentialsReceived) and self._ok(lev):
                    link.accept("ok", now)
                    link.hand_over()
                    self._send(mac, sid, link.frames_to_send())
                    own = bytes([198, 51, 100, 1])
                    host = bytes([198, 51, 100 + self.next_host // 250, self.next_host % 250])
                    self.next_host += 1
                    lns = LnsPppSession(own, host, proxy_lcp=True, restart=RestartConfig())
                    self.lns[(mac, sid)] = lns
                    lns.start(now)
            self._send(mac, sid, link.frames_to_send())
        for (mac, sid), lns in self.lns.items():
            self._send(mac, sid, lns.frames_to_send())

    @staticmethod
    def _ok(ev: CredentialsReceived) -> bool:
        c = ev.auth
        if isinstance(c, PapCredentials):
            return c.password == PASSWORD
        if isinstance(c, ChapCredentials):
            return c.response == hashlib.md5(bytes((c.ident,)) + PASSWORD + c.challenge).digest()
        return False

    def _send(self, mac: bytes, sid: int, frames: list[bytes]) -> None:
        for ppp in frames:
            payload = encode_session_frame(sid, ppp)
            self.wire.deliver(mac + AC_MAC + ETH_P_PPP_SES.to_bytes(2, "big") + payload)


class FakeReactor(Clock):
    """task.Clock plus the IReactorFDSet calls the pool makes."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: list[Any] = []

    def addReader(self, reader: Any) -> None:  # Twisted's name
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:  # Twisted's name
        self.readers.remove(reader)

    def spin(self, wire: Wire) -> None:
        """Deliver queued frames until the wire is quiet."""
        for _ in range(10_000):
            busy = [r for r in self.readers if wire.sockets[r.ethertype].inbox]
            if not busy:
                return
            for r in busy:
                r.doRead()


def setup(count: int, *, ac: bool = True, seed: int = 1, **kw: Any) -> tuple[Any, ...]:
    wire = Wire(ac=ac)
    reactor = FakeReactor()
    events: list[tuple[Subscriber, SubscriberEvent]] = []
    pool = SubscriberPool(
        "eth9", reactor, sockets=FakeSockets(wire), on_event=lambda s, e: events.append((s, e))
    )
    pool.open()
    rand = random.Random(seed).randbytes
    subs = []
    for i in range(count):
        auth = ("chap",) if i % 2 else ("pap",)
        cfg = SubscriberConfig(f"user{i}@isp.example", PASSWORD.decode(), auth=auth, **kw)
        sub = Subscriber(random_local_mac(rand), cfg, rand_bytes=rand)
        pool.add(sub)
        subs.append(sub)
    return wire, reactor, pool, subs, events


def test_many_subscribers_come_up_on_one_interface_and_ping() -> None:
    wire, reactor, pool, subs, events = setup(200, ping_target="peer")
    for sub in subs:
        pool.start(sub)
    reactor.spin(wire)
    for _ in range(10):
        reactor.advance(0.5)
        reactor.spin(wire)
    ups = [s for s, e in events if isinstance(e, SubscriberUp)]
    assert len(ups) == 200 and len({s.mac for s in ups}) == 200
    addresses = {e.address for _, e in events if isinstance(e, SubscriberUp)}
    assert len(addresses) == 200
    pings = [e for _, e in events if isinstance(e, PingsCompleted)]
    assert pings == [PingsCompleted(1, 1)] * 200
    assert pool.counters["rx_frames"] > 0
    assert "frame_errors" not in pool.counters and "timer_errors" not in pool.counters
    # our own transmissions seen by the tap were skipped, not counted as foreign
    assert "not_ours" not in pool.counters


def test_one_delayed_call_for_all_deadlines_and_discovery_timeouts() -> None:
    wire, reactor, pool, subs, events = setup(300, ac=False)
    for sub in subs:
        pool.start(sub)
    assert len(reactor.getDelayedCalls()) == 1
    reactor.spin(wire)
    reactor.pump([1.0] * 20)
    fails = [e for _, e in events if isinstance(e, SubscriberFailed)]
    assert len(fails) == 300 and {f.reason for f in fails} == {"no-pado"}
    assert reactor.getDelayedCalls() == []
    # 4 PADIs each, all broadcast
    assert wire.sent == 300 * 4


def test_frames_for_other_macs_and_garbage_are_counted() -> None:
    wire, reactor, pool, subs, _ = setup(1, ac=False)
    wire.deliver(bytes.fromhex("02ffffffff01") + AC_MAC + b"\x88\x63" + b"\x11\x07\x00\x00\x00\x00")
    wire.deliver(b"\x01\x02")
    wire.deliver(subs[0].mac + AC_MAC + b"\x88\x63" + b"garbage")
    reactor.spin(wire)
    assert pool.counters["not_ours"] == 1
    assert subs[0].discovery.counters["malformed"] == 1


def test_close_removes_readers_and_timer() -> None:
    wire, reactor, pool, subs, _ = setup(3, ac=False)
    for sub in subs:
        pool.start(sub)
    pool.close()
    assert reactor.readers == [] and reactor.getDelayedCalls() == []
    assert all(s.closed for s in wire.sockets.values())


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=6, max_size=6))
def test_random_local_mac_is_locally_administered_unicast(raw: bytes) -> None:
    mac = random_local_mac(lambda n: raw[:n])
    assert len(mac) == 6 and mac[0] & 0x02 and not mac[0] & 0x01
    assert mac[1:] == raw[1:]
