"""DiscoveryServer: the Access Concentrator side of PPPoE Discovery (RFC 2516 §5), sans-I/O.

- PADI -> PADO with a stateless AC-Cookie (:mod:`broker.pppoe.cookie`); no state is kept
  per PADI except a bounded per-MAC token bucket (rate limit) and one global PADO bucket.
- PADR with a valid cookie -> PADS with an unpredictable non-zero session id, unique per
  (interface, client MAC); a retransmitted PADR for a session still being set up gets the
  same PADS again. Service-Name-Error / AC-System-Error PADS (session id 0) on refusal.
- Host-Uniq and Relay-Session-Id are echoed (RFC 2516 Appendix A); PPP-Max-Payload is
  echoed when the interface MTU allows it (RFC 4638 §4).
- PADT from the client -> :class:`SessionTerminated`; :meth:`DiscoveryServer.terminate`
  sends a PADT (RFC 2516 §5.5), paced by a token bucket (``padt_per_s``, burst of one
  second's worth): when a lost tunnel ends thousands of sessions in one pass, the PADTs above
  the rate wait in a FIFO queue (bounded by ``max_sessions``) and leave on
  :meth:`~DiscoveryServer.handle_timer`, so the access network does not drop the burst. The
  session is forgotten at once (the call flow moves on), but its id is not given out again on
  that (interface, MAC) while its PADT is still queued.

Input is never trusted: malformed packets are counted in ``counters`` and dropped;
``receive_discovery`` never raises on peer input.
"""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.pppoe.codec import DiscoveryPacket, Tag, decode_discovery, encode_discovery
from broker.pppoe.constants import DEFAULT_MAX_PAYLOAD, ETH_P_PPP_DISC, HEADER_LEN, Code, TagType
from broker.pppoe.cookie import issue_cookie, verify_cookie
from broker.pppoe.tags import LineInfo
from broker.wire import MacAddress, RemoteProtocolError

_BROADCAST = b"\xff" * 6
#: PPP protocol field, counted against the Ethernet MTU with the PPPoE header (RFC 4638 §4).
_PPP_PROTO_LEN = 2
_MAX_ID_TRIES = 64


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    ac_name: str
    cookie_secret: bytes
    #: Offered Service-Names; empty = serve any requested name.
    service_names: tuple[str, ...] = ()
    max_sessions: int = 65000
    #: Sessions opened but not yet reported done by the call flow (``setup_done``).
    max_setups: int = 2000
    padi_per_mac_per_s: float = 2.0
    padi_burst: int = 5
    pado_per_s: float = 1000.0
    #: PADTs sent per second (token bucket, burst of one second): when a lost tunnel ends
    #: many sessions at once, the PADTs are paced, not dropped.
    padt_per_s: float = 5000.0
    #: Cookie time bucket; a cookie is accepted for 1 to 2 lifetimes.
    cookie_lifetime: float = 60.0
    #: Ethernet MTU of the access interfaces (PPP payload = mtu - 8).
    mtu: int = 1500
    #: Bound on the per-MAC rate-limit table (least recently seen MAC forgotten first).
    rate_table_size: int = 8192
    #: Sessions one client MAC may hold on one interface (0 = no limit); more -> AC-System-Error.
    max_sessions_per_mac: int = 0

    def __post_init__(self) -> None:
        if len(self.cookie_secret) < 16:
            raise ValueError("cookie_secret must be at least 16 octets")
        if not self.ac_name or len(self.ac_name.encode()) > 255:
            raise ValueError("ac_name must be 1..255 octets")
        if (
            min(self.cookie_lifetime, self.pado_per_s, self.padi_per_mac_per_s, self.padt_per_s)
            <= 0
        ):
            raise ValueError(
                "cookie_lifetime, pado_per_s, padi_per_mac_per_s and padt_per_s must be > 0"
            )
        if min(self.padi_burst, self.rate_table_size, self.max_sessions, self.max_setups) < 1:
            raise ValueError("padi_burst, rate_table_size, max_sessions, max_setups must be >= 1")
        if self.max_sessions_per_mac < 0:
            raise ValueError("max_sessions_per_mac must be >= 0")
        if not 68 <= self.mtu <= 65535:
            raise ValueError("mtu must be 68..65535")


@dataclass(frozen=True, slots=True)
class PppoeSessionKey:
    interface: str
    mac: MacAddress
    session_id: int


@dataclass(frozen=True, slots=True)
class OutFrame:
    interface: str
    dst: MacAddress
    ethertype: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SessionOpened:
    key: PppoeSessionKey
    host_uniq: bytes | None
    service_name: str
    line_info: LineInfo
    max_payload: int | None
    relay_session_id: bytes | None


@dataclass(frozen=True, slots=True)
class SessionTerminated:
    key: PppoeSessionKey
    by_peer: bool
    reason: str


Event = SessionOpened | SessionTerminated


@dataclass(slots=True)
class _Session:
    key: PppoeSessionKey
    host_uniq: bytes | None
    relay_session_id: bytes | None
    pads: bytes | None  # kept while being set up, for PADR retransmissions
    in_setup: bool = True


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


#: Queued PADTs leave in batches of about this many seconds' worth (one timer per batch, not
#: one per frame).
_PADT_TICK = 0.01


@dataclass(slots=True)
class _PadtPacer:
    """One token bucket (burst = one second's worth) and the FIFO of PADTs above the rate."""

    rate: float
    burst: float
    tokens: float
    stamp: float | None = None
    queue: deque[OutFrame] = field(default_factory=deque)
    queued_keys: dict[PppoeSessionKey, int] = field(default_factory=dict)  # key -> times queued

    def refill(self, now: float) -> None:
        if self.stamp is not None and now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now

    def take(self) -> bool:
        # The epsilon: a refill computed for exactly one token may round to 0.999...; the
        # timer then fires at that instant and must release (else it would re-arm for ~0 s).
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def due(self) -> float | None:
        if not self.queue or self.stamp is None:
            return None
        want = min(len(self.queue), max(1.0, self.rate * _PADT_TICK))
        return self.stamp + max(0.0, want - self.tokens) / self.rate


@dataclass(slots=True)
class _RateTable:
    """Token buckets per key, in last-use order, of bounded size (LRU eviction).

    A bucket unused for burst/rate seconds is full again, the same as a new one: those are
    dropped from the front, so the table holds the keys seen in the last burst/rate seconds,
    not the last ``cap`` keys ever seen (subscribers redial with new MACs: 8192 buckets that
    no longer limit anything were ~1.8 MB). An OrderedDict: a plain dict's first key is found
    by skipping the slots of the keys deleted before it, a scan that grows under a flood."""

    rate: float
    burst: float
    cap: int
    table: OrderedDict[object, _Bucket] = field(default_factory=OrderedDict)

    def allow(self, key: object, now: float) -> bool:
        table = self.table
        b = table.pop(key, None)
        idle = self.burst / self.rate
        while table:
            first, oldest = next(iter(table.items()))
            if now - oldest.stamp < idle and (b is not None or len(table) < self.cap):
                break
            del table[first]
        if b is None:
            b = _Bucket(self.burst, now)
        else:
            b.tokens = min(self.burst, b.tokens + max(0.0, now - b.stamp) * self.rate)
            b.stamp = now
        table[key] = b
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return True
        return False


class DiscoveryServer:
    """PPPoE Access Concentrator discovery engine (RFC 2516 §5)."""

    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        rand_bytes: Callable[[int], bytes] = os.urandom,
        local_mac: dict[str, MacAddress] | None = None,
    ) -> None:
        self.config = config
        self._rand = rand_bytes
        self._local_mac: dict[str, MacAddress] = dict(local_mac or {})
        self._sessions: dict[PppoeSessionKey, _Session] = {}
        self._setup_index: dict[tuple[str, bytes, bytes | None], PppoeSessionKey] = {}
        self._setups = 0
        self._per_mac: dict[tuple[str, bytes], int] = {}
        self._frames: list[OutFrame] = []
        self._events: deque[Event] = deque()
        self._padi_rates = _RateTable(
            config.padi_per_mac_per_s, float(config.padi_burst), config.rate_table_size
        )
        self._pado_rate = _RateTable(config.pado_per_s, max(1.0, config.pado_per_s), 1)
        burst = max(1.0, config.padt_per_s)
        self._padt = _PadtPacer(config.padt_per_s, burst, burst)
        self._max_payload = config.mtu - HEADER_LEN - _PPP_PROTO_LEN
        self.counters: dict[str, int] = {}

    # -- public API ----------------------------------------------------------------------
    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def setups(self) -> int:
        return self._setups

    def has_session(self, key: PppoeSessionKey) -> bool:
        return key in self._sessions

    def set_local_mac(self, interface: str, mac: MacAddress) -> None:
        self._local_mac[interface] = mac

    def receive_discovery(
        self, interface: str, src: MacAddress, dst: MacAddress, payload: bytes, now: float
    ) -> None:
        """Feed one Discovery payload (after the Ethernet header). Never raises on bad input."""
        self._count("rx")
        if len(src) != 6 or src[0] & 1 or src == b"\x00" * 6:
            self._count("bad_src")
            return
        try:
            packet = decode_discovery(payload)
            if packet.code is Code.PADI:
                self._on_padi(interface, src, dst, packet, now)
            elif packet.code is Code.PADR:
                self._on_padr(interface, src, dst, packet, now)
            elif packet.code is Code.PADT:
                self._on_padt(interface, src, dst, packet)
            else:
                self._count("unexpected_code")
        except RemoteProtocolError:
            self._count("malformed")

    def frames_to_send(self) -> list[OutFrame]:
        out, self._frames = self._frames, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def padts_queued(self) -> int:
        """PADTs waiting for the pacer (their session ids are not reused meanwhile)."""
        return len(self._padt.queue)

    def get_timer(self) -> float | None:
        """When queued PADTs may leave (``None``: nothing queued; discovery is otherwise
        stateless per PADI and keeps no timers)."""
        return self._padt.due()

    def handle_timer(self, now: float) -> None:
        """Release the queued PADTs the bucket allows now, oldest first."""
        pacer = self._padt
        if not pacer.queue:
            return
        pacer.refill(now)
        while pacer.queue and pacer.take():
            self._release_padt(pacer.queue.popleft())

    def flush_padts(self) -> int:
        """Send every queued PADT now, unpaced (shutdown: the process is going away)."""
        n = len(self._padt.queue)
        while self._padt.queue:
            self._release_padt(self._padt.queue.popleft())
        return n

    def setup_done(self, key: PppoeSessionKey) -> None:
        """The call flow says this session left the set-up phase (frees a ``max_setups`` slot)."""
        s = self._sessions.get(key)
        if s is not None and s.in_setup:
            self._leave_setup(s)

    def terminate(self, key: PppoeSessionKey, reason: str, now: float) -> None:
        """Send a PADT for ``key`` and forget the session (RFC 2516 §5.5)."""
        s = self._sessions.get(key)
        if s is None:
            self._count("terminate_unknown")
            return
        self._forget(s)
        tags = []
        if s.relay_session_id is not None:
            tags.append(Tag(TagType.RELAY_SESSION_ID, s.relay_session_id))
        if reason:
            tags.append(Tag(TagType.GENERIC_ERROR, reason.encode()[:256]))
        payload = encode_discovery(DiscoveryPacket(Code.PADT, key.session_id, tuple(tags)))
        frame = OutFrame(key.interface, key.mac, ETH_P_PPP_DISC, payload)
        pacer = self._padt
        pacer.refill(now)
        if not pacer.queue and pacer.take():
            self._frames.append(frame)
            self._count("tx_padt")
        elif len(pacer.queue) >= self.config.max_sessions:
            self._count("padt_queue_full")  # never more queued than sessions: send unpaced
            self._frames.append(frame)
            self._count("tx_padt")
        else:
            pacer.queue.append(frame)
            pacer.queued_keys[key] = pacer.queued_keys.get(key, 0) + 1
            self._count("padt_queued")
        self._events.append(SessionTerminated(key, by_peer=False, reason=reason))

    # -- handlers ------------------------------------------------------------------------
    def _on_padi(
        self, interface: str, src: MacAddress, dst: MacAddress, p: DiscoveryPacket, now: float
    ) -> None:
        self._count("rx_padi")
        if dst != _BROADCAST and not self._is_local(interface, dst):
            self._count("wrong_dst")
            return
        if p.count(TagType.SERVICE_NAME) != 1:
            self._count("bad_service_name_tag")  # RFC 2516 §5.1: exactly one
            return
        if not self._padi_rates.allow((interface, src), now):
            self._count("padi_rate_limited")
            return
        if self._full():
            self._count("padi_full")  # RFC 2516 §5.2: can't serve -> MUST NOT send PADO
            return
        offered = self._offer(p.service_names[0])
        if offered is None:
            self._count("service_unavailable")
            return
        if not self._pado_rate.allow(None, now):
            self._count("pado_rate_limited")
            return
        c = self.config
        tags = [Tag(TagType.AC_NAME, c.ac_name.encode())]
        tags += [Tag(TagType.SERVICE_NAME, name.encode()) for name in offered]
        cookie = issue_cookie(c.cookie_secret, interface, src, p.host_uniq, now, c.cookie_lifetime)
        tags.append(Tag(TagType.AC_COOKIE, cookie))
        tags += self._echo_tags(p)
        self._send(interface, src, DiscoveryPacket(Code.PADO, 0, tuple(tags)))
        self._count("tx_pado")

    def _on_padr(
        self, interface: str, src: MacAddress, dst: MacAddress, p: DiscoveryPacket, now: float
    ) -> None:
        self._count("rx_padr")
        if not self._is_local(interface, dst, unknown_ok=True):
            self._count("wrong_dst")
            return
        if p.count(TagType.SERVICE_NAME) != 1:
            self._count("bad_service_name_tag")  # RFC 2516 §5.3: exactly one
            return
        c = self.config
        cookie = p.ac_cookie
        if cookie is None or not verify_cookie(
            cookie, c.cookie_secret, interface, src, p.host_uniq, now, c.cookie_lifetime
        ):
            self._count("bad_cookie")
            return
        try:
            line_info = p.line_info or LineInfo()
        except RemoteProtocolError:
            # A broken tag from the access node's intermediate agent: serve the subscriber
            # anyway, without line identification.
            self._count("bad_line_info")
            line_info = LineInfo()
        existing = self._setup_index.get((interface, src, p.host_uniq))
        if existing is not None:
            s = self._sessions[existing]
            if s.pads is not None:
                self._count("padr_retransmit")
                self._frames.append(OutFrame(interface, src, ETH_P_PPP_DISC, s.pads))
                self._count("tx_pads")
                return
        echo = self._echo_tags(p)
        requested = p.service_names[0]
        offered = self._offer(requested)
        if offered is None:
            self._count("service_name_error")
            err = Tag(TagType.SERVICE_NAME_ERROR, b"service not offered")
            self._refuse(interface, src, [Tag(TagType.SERVICE_NAME, requested.encode()), err], echo)
            return
        cap = c.max_sessions_per_mac
        if cap and self._per_mac.get((interface, src), 0) >= cap:
            self._count("per_mac_limit")
            session_id = None
        else:
            session_id = self._allocate_id(interface, src) if not self._full() else None
        if session_id is None:
            self._count("system_error")
            err = Tag(TagType.AC_SYSTEM_ERROR, b"no resources")
            self._refuse(interface, src, [Tag(TagType.SERVICE_NAME, requested.encode()), err], echo)
            return
        service = offered[0] if requested == "" and offered else requested
        key = PppoeSessionKey(interface, src, session_id)
        tags = [Tag(TagType.SERVICE_NAME, service.encode()), *echo]
        pads = encode_discovery(DiscoveryPacket(Code.PADS, session_id, tuple(tags)))
        s = _Session(key, p.host_uniq, p.relay_session_id, pads)
        self._sessions[key] = s
        self._setup_index[(interface, src, p.host_uniq)] = key
        self._setups += 1
        self._per_mac[(interface, src)] = self._per_mac.get((interface, src), 0) + 1
        self._frames.append(OutFrame(interface, src, ETH_P_PPP_DISC, pads))
        self._count("tx_pads")
        self._count("sessions_opened")
        self._events.append(
            SessionOpened(
                key=key,
                host_uniq=p.host_uniq,
                service_name=service,
                line_info=line_info,
                max_payload=self._accepted_max_payload(p),
                relay_session_id=p.relay_session_id,
            )
        )

    def _on_padt(
        self, interface: str, src: MacAddress, dst: MacAddress, p: DiscoveryPacket
    ) -> None:
        self._count("rx_padt")
        if not self._is_local(interface, dst, unknown_ok=True):
            self._count("wrong_dst")
            return
        key = PppoeSessionKey(interface, src, p.session_id)
        s = self._sessions.get(key)
        if s is None:
            self._count("padt_unknown")
            return
        self._forget(s)
        errors = p.errors
        reason = f"PADT: {errors[0][1]}" if errors else "PADT"
        self._events.append(SessionTerminated(key, by_peer=True, reason=reason))

    # -- helpers -------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _is_local(self, interface: str, dst: bytes, *, unknown_ok: bool = False) -> bool:
        mine = self._local_mac.get(interface)
        if mine is None:
            return unknown_ok or not dst[:1] or not dst[0] & 1
        return dst == mine

    def _full(self) -> bool:
        c = self.config
        return len(self._sessions) >= c.max_sessions or self._setups >= c.max_setups

    def _offer(self, requested: str) -> list[str] | None:
        names = self.config.service_names
        if not names:
            return [requested]
        if requested == "":
            return list(names)
        return [requested] if requested in names else None

    def _accepted_max_payload(self, p: DiscoveryPacket) -> int | None:
        mp = p.max_payload
        if mp is None or mp <= DEFAULT_MAX_PAYLOAD or mp > self._max_payload:
            return None
        return mp

    def _echo_tags(self, p: DiscoveryPacket) -> list[Tag]:
        tags = []
        if p.host_uniq is not None:
            tags.append(Tag(TagType.HOST_UNIQ, p.host_uniq))
        if p.relay_session_id is not None:
            tags.append(Tag(TagType.RELAY_SESSION_ID, p.relay_session_id))
        mp = self._accepted_max_payload(p)
        if mp is not None:
            tags.append(Tag(TagType.PPP_MAX_PAYLOAD, mp.to_bytes(2, "big")))
        return tags

    def _refuse(self, interface: str, dst: MacAddress, tags: list[Tag], echo: list[Tag]) -> None:
        # RFC 2516 §5.4: a refusing PADS carries SESSION_ID 0.
        self._send(interface, dst, DiscoveryPacket(Code.PADS, 0, (*tags, *echo)))
        self._count("tx_pads")

    def _allocate_id(self, interface: str, mac: MacAddress) -> int | None:
        for _ in range(_MAX_ID_TRIES):
            sid = int.from_bytes(self._rand(2), "big")
            key = PppoeSessionKey(interface, mac, sid)
            if sid != 0 and key not in self._sessions and key not in self._padt.queued_keys:
                return sid
        return None

    def _release_padt(self, frame: OutFrame) -> None:
        # The session id is the PADT's SESSION_ID field (RFC 2516 §5.5), octets 2-3.
        key = PppoeSessionKey(frame.interface, frame.dst, int.from_bytes(frame.payload[2:4]))
        queued = self._padt.queued_keys
        left = queued.pop(key, 1) - 1
        if left > 0:
            queued[key] = left
        self._frames.append(frame)
        self._count("tx_padt")
        self._count("padt_paced")

    def _leave_setup(self, s: _Session) -> None:
        s.in_setup = False
        s.pads = None
        self._setups -= 1
        idx = (s.key.interface, s.key.mac, s.host_uniq)
        if self._setup_index.get(idx) == s.key:
            del self._setup_index[idx]

    def _forget(self, s: _Session) -> None:
        if s.in_setup:
            self._leave_setup(s)
        del self._sessions[s.key]
        mac_key = (s.key.interface, s.key.mac)
        left = self._per_mac.pop(mac_key) - 1
        if left:
            self._per_mac[mac_key] = left

    def _send(self, interface: str, dst: MacAddress, packet: DiscoveryPacket) -> None:
        self._frames.append(OutFrame(interface, dst, ETH_P_PPP_DISC, encode_discovery(packet)))
