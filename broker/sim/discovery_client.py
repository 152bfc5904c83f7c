"""The host (client) side of PPPoE Discovery (RFC 2516 §5) as a sans-I/O engine.

PADI (broadcast, Service-Name, Host-Uniq) -> PADO from an AC -> PADR to that AC with its
AC-Cookie and Relay-Session-Id echoed (RFC 2516 Appendix A) -> PADS with the session id.
PADI and PADR are retransmitted on a configurable schedule (RFC 2516 §5.1: "the Host SHOULD
retransmit ... doubling the waiting period"); PADT is sent by :meth:`DiscoveryClient.padt`
and accepted from the AC (§5.5). Input is never trusted: malformed packets are counted in
``counters`` and dropped.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from broker.pppoe.codec import DiscoveryPacket, Tag, decode_discovery, encode_discovery
from broker.pppoe.constants import ETH_P_PPP_DISC, Code, TagType
from broker.wire import RemoteProtocolError

BROADCAST = b"\xff" * 6


class ClientState(Enum):
    IDLE = "idle"
    SELECTING = "selecting"  # PADI sent, waiting for a PADO
    REQUESTING = "requesting"  # PADR sent, waiting for the PADS
    SESSION = "session"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """One Ethernet frame to send: destination MAC, ethertype, payload after the header."""

    dst: bytes
    ethertype: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class DiscoveryCompleted:
    ac_mac: bytes
    session_id: int
    ac_name: str | None


@dataclass(frozen=True, slots=True)
class DiscoveryFailed:
    """reason: 'no-pado', 'no-pads', 'pads-error: ...'."""

    reason: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The AC sent a PADT for our session (reason: its Generic-Error text, or 'padt')."""

    reason: str


DiscoveryEvent = DiscoveryCompleted | DiscoveryFailed | SessionEnded


@dataclass(frozen=True, slots=True)
class DiscoveryClientConfig:
    service_name: str = ""
    #: Waits after each PADI (the last wait ends the attempt); RFC 2516 §5.1 doubling.
    padi_schedule: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    padr_schedule: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    #: Only accept a PADO whose AC-Name is this (None: the first PADO wins).
    ac_name: str | None = None


class DiscoveryClient:
    """One host's PPPoE discovery; ``mac`` is the host's own MAC."""

    def __init__(
        self,
        mac: bytes,
        config: DiscoveryClientConfig | None = None,
        *,
        rand_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.mac = mac
        self.config = config or DiscoveryClientConfig()
        self.host_uniq = rand_bytes(8)
        self.state = ClientState.IDLE
        self.ac_mac: bytes | None = None
        self.ac_name: str | None = None
        self.session_id = 0
        self.counters: dict[str, int] = {}
        self._out: list[ClientFrame] = []
        self._events: deque[DiscoveryEvent] = deque()
        self._deadline: float | None = None
        self._step = 0
        self._padr: bytes = b""

    # -- commands --------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.state is not ClientState.IDLE:
            return
        self.state = ClientState.SELECTING
        self._step = 0
        self._send_padi(now)

    def padt(self, now: float, reason: str = "") -> None:
        """Send a PADT for the session (if any) and close."""
        if self.state is ClientState.SESSION and self.ac_mac is not None:
            tags = (Tag(TagType.GENERIC_ERROR, reason.encode()),) if reason else ()
            payload = encode_discovery(DiscoveryPacket(Code.PADT, self.session_id, tags))
            self._out.append(ClientFrame(self.ac_mac, ETH_P_PPP_DISC, payload))
        self.close()

    def close(self) -> None:
        """Stop silently (no PADT): power-off, or after the session ended."""
        self.state = ClientState.CLOSED
        self._deadline = None

    # -- engine contract -------------------------------------------------------------------
    def receive_discovery(self, src: bytes, payload: bytes, now: float) -> None:
        try:
            packet = decode_discovery(payload)
        except RemoteProtocolError:
            self._count("malformed")
            return
        if packet.code is Code.PADO:
            self._pado(src, packet, now)
        elif packet.code is Code.PADS:
            self._pads(src, packet)
        elif packet.code is Code.PADT:
            self._padt(src, packet)
        else:
            self._count(f"ignored-{packet.code.name.lower()}")

    def frames_to_send(self) -> list[ClientFrame]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> DiscoveryEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        return self._deadline

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._step += 1
        if self.state is ClientState.SELECTING:
            if self._step < len(self.config.padi_schedule):
                self._count("padi-retransmits")
                self._send_padi(now)
            else:
                self._fail("no-pado")
        elif self.state is ClientState.REQUESTING:
            if self._step < len(self.config.padr_schedule):
                self._count("padr-retransmits")
                self._out.append(ClientFrame(self.ac_mac or BROADCAST, ETH_P_PPP_DISC, self._padr))
                self._deadline = now + self.config.padr_schedule[self._step]
            else:
                self._fail("no-pads")
        else:
            self._deadline = None

    # -- internals -------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _fail(self, reason: str) -> None:
        self.state = ClientState.CLOSED
        self._deadline = None
        self._events.append(DiscoveryFailed(reason))

    def _send_padi(self, now: float) -> None:
        tags = (
            Tag(TagType.SERVICE_NAME, self.config.service_name.encode()),
            Tag(TagType.HOST_UNIQ, self.host_uniq),
        )
        payload = encode_discovery(DiscoveryPacket(Code.PADI, 0, tags))
        self._out.append(ClientFrame(BROADCAST, ETH_P_PPP_DISC, payload))
        self._deadline = now + self.config.padi_schedule[self._step]

    def _pado(self, src: bytes, packet: DiscoveryPacket, now: float) -> None:
        if self.state is not ClientState.SELECTING:
            self._count("pado-unexpected")
            return
        if packet.host_uniq != self.host_uniq:
            self._count("pado-foreign")
            return
        if packet.ac_name is None or packet.count(TagType.SERVICE_NAME) == 0:
            # RFC 2516 §5.2: a PADO carries exactly one AC-Name and the Service-Names.
            self._count("pado-incomplete")
            return
        if self.config.ac_name is not None and packet.ac_name != self.config.ac_name:
            self._count("pado-other-ac")
            return
        if packet.errors:
            self._count("pado-error")
            return
        self.ac_mac = src
        self.ac_name = packet.ac_name
        tags = [
            Tag(TagType.SERVICE_NAME, self.config.service_name.encode()),
            Tag(TagType.HOST_UNIQ, self.host_uniq),
        ]
        cookie = packet.ac_cookie
        if cookie is not None:
            tags.append(Tag(TagType.AC_COOKIE, cookie))
        relay = packet.relay_session_id
        if relay is not None:
            tags.append(Tag(TagType.RELAY_SESSION_ID, relay))
        self._padr = encode_discovery(DiscoveryPacket(Code.PADR, 0, tuple(tags)))
        self._out.append(ClientFrame(src, ETH_P_PPP_DISC, self._padr))
        self.state = ClientState.REQUESTING
        self._step = 0
        self._deadline = now + self.config.padr_schedule[0]

    def _pads(self, src: bytes, packet: DiscoveryPacket) -> None:
        if self.state is not ClientState.REQUESTING or src != self.ac_mac:
            self._count("pads-unexpected")
            return
        if packet.host_uniq != self.host_uniq:
            self._count("pads-foreign")
            return
        if packet.session_id == 0 or packet.errors:
            text = "; ".join(msg or kind.name for kind, msg in packet.errors) or "session id 0"
            self._fail(f"pads-error: {text}")
            return
        self.session_id = packet.session_id
        self.state = ClientState.SESSION
        self._deadline = None
        self._events.append(DiscoveryCompleted(src, packet.session_id, self.ac_name))

    def _padt(self, src: bytes, packet: DiscoveryPacket) -> None:
        if (
            self.state is not ClientState.SESSION
            or src != self.ac_mac
            or packet.session_id != self.session_id
        ):
            self._count("padt-unexpected")
            return
        errors = packet.errors
        reason = errors[0][1] if errors and errors[0][1] else "padt"
        self.close()
        self._events.append(SessionEnded(reason))
