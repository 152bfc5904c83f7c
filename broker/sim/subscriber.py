"""One emulated PPPoE subscriber (CPE) as a sans-I/O engine: discovery, PPP, ping, churn.

:class:`Subscriber` chains :class:`~broker.sim.discovery_client.DiscoveryClient` (RFC 2516 §5)
and :class:`~broker.sim.ppp_client.PppClient` (RFC 1661 LCP, RFC 1334 PAP, RFC 1994 CHAP,
RFC 1332 IPCP) over PPPoE session frames (RFC 2516 §6). Once IPCP is up it can send ICMP echo
requests (RFC 792) as IPv4 (RFC 791) in PPP protocol 0x0021 and match the replies. Churn
commands: :meth:`Subscriber.padt`, :meth:`Subscriber.power_off` (silence, no PADT) and
:meth:`Subscriber.lcp_terminate`.

Events: :class:`SubscriberUp`, :class:`SubscriberFailed` (setup never completed),
:class:`SubscriberDown` (an up session ended), :class:`PingsCompleted`.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.ppp.constants import PppProtocol
from broker.pppoe.codec import decode_session_frame, encode_session_frame
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.sim.discovery_client import (
    ClientFrame,
    ClientState,
    DiscoveryClient,
    DiscoveryClientConfig,
    DiscoveryCompleted,
    DiscoveryFailed,
    SessionEnded,
)
from broker.sim.ppp_client import (
    ClientAuthenticated,
    ClientAuthFailed,
    ClientConfig,
    ClientIpcpUp,
    ClientLcpOpened,
    ClientTerminated,
    PppClient,
)
from broker.wire import RemoteProtocolError

__all__ = [
    "PingsCompleted",
    "Subscriber",
    "SubscriberConfig",
    "SubscriberDown",
    "SubscriberEvent",
    "SubscriberFailed",
    "SubscriberUp",
    "build_icmp_echo",
    "parse_icmp_echo",
]

_IPV4_PROTO = PppProtocol.IPV4.to_bytes(2, "big")
_HDLC = b"\xff\x03"
#: RFC 792: ICMP types.
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
_IP_HDR = struct.Struct("!BBHHHBBH4s4s")
_ICMP_HDR = struct.Struct("!BBHHH")


def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_icmp_echo(
    src: bytes, dst: bytes, ident: int, seq: int, payload: bytes = b"", *, reply: bool = False
) -> bytes:
    """An IPv4 packet (RFC 791, no options) carrying an ICMP echo request or reply (RFC 792)."""
    kind = ICMP_ECHO_REPLY if reply else ICMP_ECHO_REQUEST
    icmp = _ICMP_HDR.pack(kind, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + inet_checksum(icmp).to_bytes(2, "big") + icmp[4:]
    total = 20 + len(icmp)
    hdr = _IP_HDR.pack(0x45, 0, total, seq, 0, 64, 1, 0, src, dst)
    hdr = hdr[:10] + inet_checksum(hdr).to_bytes(2, "big") + hdr[12:]
    return hdr + icmp


@dataclass(frozen=True, slots=True)
class IcmpEcho:
    src: bytes
    dst: bytes
    reply: bool
    ident: int
    seq: int
    payload: bytes


def parse_icmp_echo(packet: bytes) -> IcmpEcho | None:
    """The ICMP echo request/reply in an IPv4 packet, None for anything else or malformed."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = int.from_bytes(packet[2:4], "big")
    if ihl < 20 or total > len(packet) or total < ihl + 8 or packet[9] != 1:
        return None
    if int.from_bytes(packet[6:8], "big") & 0x3FFF:
        return None  # a fragment
    kind, code, _csum, ident, seq = _ICMP_HDR.unpack_from(packet, ihl)
    if kind not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY) or code != 0:
        return None
    if inet_checksum(packet[ihl:total]) != 0:
        return None
    return IcmpEcho(
        packet[12:16],
        packet[16:20],
        kind == ICMP_ECHO_REPLY,
        ident,
        seq,
        packet[ihl + 8 : total],
    )


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriberUp:
    address: str
    peer_address: str
    latency: float


@dataclass(frozen=True, slots=True)
class SubscriberFailed:
    """Setup did not complete: 'no-pado', 'no-pads', 'pads-error', 'auth-failed',
    'lcp-failed', 'padt-during-setup', 'timeout-<phase>', 'stopped'."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SubscriberDown:
    """An up session ended: 'padt' (from the AC), 'peer-terminate', 'echo-timeout',
    'local-padt', 'power-off', 'lcp-terminate'."""

    reason: str


@dataclass(frozen=True, slots=True)
class PingsCompleted:
    sent: int
    received: int


SubscriberEvent = SubscriberUp | SubscriberFailed | SubscriberDown | PingsCompleted


@dataclass(frozen=True, slots=True)
class SubscriberConfig:
    username: str
    password: str
    #: Methods the CPE agrees to authenticate with: ("chap",), ("pap",) or both.
    auth: tuple[str, ...] = ("chap", "pap")
    discovery: DiscoveryClientConfig = field(default_factory=DiscoveryClientConfig)
    ppp: ClientConfig = field(default_factory=ClientConfig)
    #: Whole setup (PADI to IPCP up) must finish within this many seconds.
    setup_timeout: float = 30.0
    #: ICMP echo target once up: an IPv4 address, "peer" (the IPCP peer address) or None.
    ping_target: str | None = None
    ping_count: int = 1
    ping_interval: float = 1.0
    #: Wait for replies this long after the last request.
    ping_timeout: float = 3.0
    ping_size: int = 56


class Subscriber:
    """One CPE on Ethernet address ``mac`` (a locally administered unicast MAC)."""

    def __init__(
        self,
        mac: bytes,
        config: SubscriberConfig,
        *,
        rand_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.mac = mac
        self.config = config
        self.rand_bytes = rand_bytes
        self.discovery = DiscoveryClient(mac, config.discovery, rand_bytes=rand_bytes)
        self.ppp: PppClient | None = None
        self.phase = "idle"  # discovery, ppp, up, closing, failed, down
        self.started_at: float | None = None
        self.up_at: float | None = None
        self.address: str | None = None
        self.peer_address: str | None = None
        self.counters: dict[str, int] = {}
        self.pings_sent = 0
        self.pings_received = 0
        self.ping_rtts: list[float] = []
        self._ping_ident = int.from_bytes(rand_bytes(2), "big")
        self._ping_outstanding: dict[int, float] = {}
        self._ping_next: float | None = None
        self._ping_done_at: float | None = None
        self._ping_dst = b""
        self._out: list[ClientFrame] = []
        self._events: deque[SubscriberEvent] = deque()
        self._deadline: float | None = None
        self._closing_reason = ""
        self._early: list[bytes] = []

    @property
    def session_id(self) -> int:
        return self.discovery.session_id

    @property
    def finished(self) -> bool:
        return self.phase in ("failed", "down")

    # -- commands --------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.phase != "idle":
            return
        self.phase = "discovery"
        self.started_at = now
        self._deadline = now + self.config.setup_timeout
        self.discovery.start(now)
        self._pump(now)

    def padt(self, now: float) -> None:
        """Hang up with a PADT (no LCP Terminate first)."""
        if self.finished:
            return
        self.discovery.padt(now)
        self._end(now, "local-padt", send_padt=False)
        self._pump(now)

    def power_off(self, now: float) -> None:
        """Go silent: no PADT, no LCP; the AC must notice by echo loss."""
        if self.finished:
            return
        self.discovery.close()
        self._end(now, "power-off", send_padt=False)

    def lcp_terminate(self, now: float) -> None:
        """LCP Terminate-Request; PADT follows once LCP has finished."""
        if self.finished:
            return
        if self.ppp is None or self.phase not in ("ppp", "up"):
            self.padt(now)
            return
        self._closing_reason = "lcp-terminate"
        self.phase = "closing"
        self.ppp.terminate(now)
        self._pump(now)

    # -- engine contract -------------------------------------------------------------------
    def receive_frame(self, src: bytes, ethertype: int, payload: bytes, now: float) -> None:
        if self.finished:
            self._count("ignored-after-end")
            return
        if ethertype == ETH_P_PPP_DISC:
            self.discovery.receive_discovery(src, payload, now)
        elif ethertype == ETH_P_PPP_SES:
            self._session_frame(src, payload, now)
        else:
            self._count("wrong-ethertype")
        self._pump(now)

    def frames_to_send(self) -> list[ClientFrame]:
        out = self.discovery.frames_to_send()
        if self._out:
            out.extend(self._out)
            self._out = []
        return out

    def next_event(self) -> SubscriberEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        if self.finished:
            return None
        best = self._deadline
        for t in (
            self.discovery.get_timer(),
            self.ppp.get_timer() if self.ppp is not None else None,
            self._ping_next,
            self._ping_done_at,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        if self.finished:
            return
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            if self.phase != "up":
                self._fail(now, f"timeout-{self.phase}")
                self._pump(now)
                return
        self.discovery.handle_timer(now)
        if self.ppp is not None:
            self.ppp.handle_timer(now)
        if self._ping_next is not None and now >= self._ping_next:
            self._send_ping(now)
        if self._ping_done_at is not None and now >= self._ping_done_at:
            self._pings_finished()
        self._pump(now)

    # -- internals -------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _session_frame(self, src: bytes, payload: bytes, now: float) -> None:
        if src != self.discovery.ac_mac:
            self._count("session-unexpected")
            return
        if self.ppp is None:
            # The AC's first LCP request can overtake its PADS (two sockets, one busy):
            # keep a few session frames and replay them once the PADS is in.
            if self.discovery.state is ClientState.REQUESTING and len(self._early) < 4:
                self._early.append(payload)
                self._count("session-early")
            else:
                self._count("session-unexpected")
            return
        try:
            session_id, ppp = decode_session_frame(payload)
        except RemoteProtocolError:
            self._count("malformed-session")
            return
        if session_id != self.discovery.session_id:
            self._count("session-foreign")
            return
        if ppp[:2] == _HDLC:
            ppp = ppp[2:]  # be lenient with an AC that leaks HDLC framing
        if ppp[:2] == _IPV4_PROTO:
            self._ipv4(ppp[2:], now)
            return
        self.ppp.receive_frame(ppp, now)

    def _ipv4(self, packet: bytes, now: float) -> None:
        echo = parse_icmp_echo(packet)
        if echo is None or not echo.reply or echo.ident != self._ping_ident:
            self._count("ipv4-other")
            return
        sent = self._ping_outstanding.pop(echo.seq, None)
        if sent is None:
            self._count("ping-unmatched")
            return
        self.pings_received += 1
        self.ping_rtts.append(now - sent)
        if (
            self._ping_next is None
            and not self._ping_outstanding
            and self.pings_sent >= self.config.ping_count
        ):
            self._pings_finished()

    def _start_pings(self, now: float) -> None:
        target = self.config.ping_target
        if target is None or self.config.ping_count <= 0:
            return
        addr = self.peer_address if target == "peer" else target
        try:
            self._ping_dst = ipaddress.IPv4Address(addr or "").packed
        except ValueError:
            self._count("ping-bad-target")
            return
        self._ping_next = now

    def _send_ping(self, now: float) -> None:
        if self.phase != "up" or self.address is None or self.discovery.ac_mac is None:
            self._ping_next = None
            return
        seq = self.pings_sent & 0xFFFF
        self.pings_sent += 1
        src = ipaddress.IPv4Address(self.address).packed
        data = bytes(self.config.ping_size)
        packet = build_icmp_echo(src, self._ping_dst, self._ping_ident, seq, data)
        self._send_ppp(_IPV4_PROTO + packet)
        self._ping_outstanding[seq] = now
        if self.pings_sent < self.config.ping_count:
            self._ping_next = now + self.config.ping_interval
        else:
            self._ping_next = None
            self._ping_done_at = now + self.config.ping_timeout

    def _pings_finished(self) -> None:
        self._ping_done_at = None
        self._ping_next = None
        self._ping_outstanding.clear()
        self._events.append(PingsCompleted(self.pings_sent, self.pings_received))

    def _send_ppp(self, ppp: bytes) -> None:
        ac = self.discovery.ac_mac
        if ac is None or self.discovery.state is not ClientState.SESSION:
            return
        self._out.append(
            ClientFrame(ac, ETH_P_PPP_SES, encode_session_frame(self.discovery.session_id, ppp))
        )

    def _fail(self, now: float, reason: str, detail: str = "") -> None:
        if self.finished:
            return
        self.discovery.padt(now)
        self.phase = "failed"
        self._stop_timers()
        self._events.append(SubscriberFailed(reason, detail))

    def _end(self, now: float, reason: str, *, send_padt: bool = True) -> None:
        if self.finished:
            return
        if send_padt:
            self.discovery.padt(now)
        if self.phase in ("up", "closing") and self.up_at is not None:
            self.phase = "down"
            self._events.append(SubscriberDown(reason))
        else:
            self.phase = "failed"
            self._events.append(SubscriberFailed("stopped", reason))
        self._stop_timers()

    def _stop_timers(self) -> None:
        self._deadline = None
        self._ping_next = None
        if self._ping_done_at is not None:
            self._pings_finished()

    def _pump(self, now: float) -> None:
        while (dev := self.discovery.next_event()) is not None:
            if isinstance(dev, DiscoveryCompleted):
                self.phase = "ppp"
                self.ppp = PppClient(
                    self.config.username,
                    self.config.password,
                    self.config.auth,
                    self.config.ppp,
                    rand_bytes=self.rand_bytes,
                )
                self.ppp.start(now)
                early, self._early = self._early, []
                for payload in early:
                    self._session_frame(self.discovery.ac_mac or b"", payload, now)
            elif isinstance(dev, DiscoveryFailed):
                reason = "pads-error" if dev.reason.startswith("pads-error") else dev.reason
                self._fail(now, reason, dev.reason)
            elif isinstance(dev, SessionEnded):
                if self.phase in ("up", "closing") and self.up_at is not None:
                    self._end(now, "padt", send_padt=False)
                else:
                    self._fail(now, "padt-during-setup", dev.reason)
        ppp = self.ppp
        if ppp is None:
            return
        while (pev := ppp.next_event()) is not None:
            if isinstance(pev, ClientIpcpUp):
                if self.phase == "ppp":
                    self.phase = "up"
                    self.up_at = now
                    self._deadline = None
                    self.address = pev.address
                    self.peer_address = pev.peer_address
                    latency = now - (self.started_at if self.started_at is not None else now)
                    self._events.append(SubscriberUp(pev.address, pev.peer_address, latency))
                    self._start_pings(now)
            elif isinstance(pev, ClientAuthFailed):
                self._fail(now, "auth-failed", pev.message)
            elif isinstance(pev, ClientTerminated):
                if self.phase == "closing":
                    self._end(now, self._closing_reason or "lcp-terminate")
                elif self.phase == "up":
                    self._end(now, pev.reason)
                else:
                    self._fail(now, "lcp-failed" if pev.reason == "lcp-failed" else pev.reason)
            elif isinstance(pev, ClientLcpOpened | ClientAuthenticated):
                self._count(type(pev).__name__)
        if not self.finished or self.phase == "down":
            for frame in ppp.frames_to_send():
                self._send_ppp(frame)
