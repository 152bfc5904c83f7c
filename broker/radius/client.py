"""Sans-I/O RADIUS authentication client: failover, dead servers, Status-Server revival.

RFC 2865 sections 2.4-2.5 and 4.1-4.4 (Access-Request, retransmission with the same
Identifier and Request Authenticator, replies matched by source, socket and Identifier),
RFC 3579 section 3.2 (Message-Authenticator in every request, required in every reply: the
BlastRADIUS rule, CVE-2024-3596), RFC 5080 section 2.2.1 (a new Identifier for new content),
RFC 5997 (Status-Server probes of dead servers).

The engine never reads a clock or touches a socket: :meth:`RadiusClient.authenticate`,
:meth:`receive_datagram` and :meth:`handle_timer` take ``now``; the adapter sends what
:meth:`datagrams_to_send` returns from the socket named by ``socket_index`` and re-arms one
timer from :meth:`get_timer`. Events come from :meth:`next_event`.

Servers are tried in configured order, alive ones first. When a request exhausts its
``timeout`` tuple on a server, that server is dead for ``dead_time`` seconds (ServerDead) and
the request fails over to the next untried server; calls still waiting on a server another call
found dead move on at their next expiry instead of retrying. Dead servers get a Status-Server
every ``probe_interval`` and come back on any authenticated answer (ServerRevived
"status-server"/"reply") or when ``dead_time`` ends ("dead-time"). With every server dead,
requests still try them in order rather than fail at once.

Identifiers: each (source socket, server) pair has its own 256 Identifiers starting at a
random value, so many sockets (``sockets=16``) give 4096 requests in flight per server and a
dead server holding its Identifiers until they time out never starves another server.
"""

from __future__ import annotations

import functools
import heapq
import ipaddress
import os
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from itertools import count

from broker.radius import packet as _packet
from broker.radius.constants import AUTH_PORT, Attr, Code, FramedProtocol, NasPortType, ServiceType
from broker.radius.tunnel import SkippedTunnel, TunnelCandidate, parse_tunnels
from broker.wire import LocalProtocolError

__all__ = [
    "AccessAccepted",
    "AccessRejected",
    "AccessTimedOut",
    "AuthRequest",
    "ChapCredentials",
    "Datagram",
    "Event",
    "RadiusClient",
    "RadiusServer",
    "ServerDead",
    "ServerRevived",
]

RawAttribute = tuple[int, bytes]
RandBytes = Callable[[int], bytes]


# -- configuration and requests ----------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _ipv4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


_PROXY_STATE = int(Attr.PROXY_STATE)


@dataclass(frozen=True, slots=True)
class RadiusServer:
    """One RADIUS authentication server. ``timeout`` is one wait per try (retries = len - 1)."""

    name: str
    address: str
    port: int = AUTH_PORT
    secret: bytes = b""
    timeout: tuple[float, ...] = (2.0, 2.0, 3.0)
    dead_time: float = 30.0
    #: Seconds between Status-Server probes while the server is dead.
    probe_interval: float = 5.0

    def __post_init__(self) -> None:
        if not self.timeout or any(t <= 0 for t in self.timeout):
            raise ValueError(f"server {self.name}: timeout must be positive seconds per try")
        if not self.secret:
            raise ValueError(f"server {self.name}: empty shared secret")


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """CHAP-MD5 material from the PPP authenticator (RFC 1994)."""

    ident: int
    challenge: bytes
    response: bytes


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What the broker knows about a subscriber when it asks RADIUS."""

    user_name: str
    pap_password: bytes | None = None
    chap: ChapCredentials | None = None
    nas_ip: str | None = None
    nas_identifier: str | None = None
    #: 5 Virtual (RFC 2865 5.41), 16 xDSL, 32 PPPoEoE, 33 PPPoEoVLAN (RFC 4603): configurable.
    nas_port_type: int | None = NasPortType.VIRTUAL
    nas_port: int | None = None
    nas_port_id: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    service_type: int | None = ServiceType.FRAMED_USER
    framed_protocol: int | None = FramedProtocol.PPP
    #: Further raw attributes (e.g. DSL Forum Agent-Circuit-Id via ``packet.attribute``).
    extra: tuple[RawAttribute, ...] = ()

    def attributes(self, *, with_password: bool = True) -> list[RawAttribute]:
        """The request's attributes, User-Password still in clear (hidden per server; left
        out with ``with_password=False``: the client adds it per server)."""
        if (self.pap_password is None) == (self.chap is None):
            raise LocalProtocolError("an AuthRequest needs exactly one of PAP or CHAP")
        attrs: list[RawAttribute] = [(Attr.USER_NAME, self.user_name.encode())]
        if self.pap_password is not None:
            if with_password:
                attrs.append((Attr.USER_PASSWORD, self.pap_password))
        elif self.chap is not None:
            attrs.append(
                (Attr.CHAP_PASSWORD, _packet.chap_password(self.chap.ident, self.chap.response))
            )
            attrs.append((Attr.CHAP_CHALLENGE, self.chap.challenge))
        if self.nas_ip is not None:
            attrs.append((Attr.NAS_IP_ADDRESS, _ipv4(self.nas_ip)))
        if self.nas_identifier is not None:
            attrs.append((Attr.NAS_IDENTIFIER, self.nas_identifier.encode()))
        ints = (
            (Attr.NAS_PORT, self.nas_port),
            (Attr.NAS_PORT_TYPE, self.nas_port_type),
            (Attr.SERVICE_TYPE, self.service_type),
            (Attr.FRAMED_PROTOCOL, self.framed_protocol),
        )
        attrs += [(t, v.to_bytes(4, "big")) for t, v in ints if v is not None]
        texts = (
            (Attr.NAS_PORT_ID, self.nas_port_id),
            (Attr.CALLING_STATION_ID, self.calling_station_id),
            (Attr.CALLED_STATION_ID, self.called_station_id),
        )
        attrs += [(t, v.encode()) for t, v in texts if v is not None]
        attrs += self.extra
        return attrs


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP payload to send from source socket ``socket_index`` to ``addr``."""

    server_name: str
    addr: tuple[str, int]
    payload: bytes
    socket_index: int


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessAccepted:
    key: Hashable
    attributes: tuple[RawAttribute, ...]
    tunnels: tuple[TunnelCandidate, ...]
    skipped: tuple[SkippedTunnel, ...]
    reply_message: str | None
    session_timeout: int | None
    class_attr: bytes | None
    server: str
    latency: float


@dataclass(frozen=True, slots=True)
class AccessRejected:
    key: Hashable
    reply_message: str | None
    server: str
    #: True when the server sent Access-Challenge (not supported for PAP/CHAP: a reject).
    challenged: bool = False


@dataclass(frozen=True, slots=True)
class AccessTimedOut:
    """Every server was tried and none answered."""

    key: Hashable


@dataclass(frozen=True, slots=True)
class ServerDead:
    server: str


@dataclass(frozen=True, slots=True)
class ServerRevived:
    server: str
    #: "status-server", "reply" or "dead-time".
    reason: str


Event = AccessAccepted | AccessRejected | AccessTimedOut | ServerDead | ServerRevived


# -- internal state ----------------------------------------------------------------------------


class _IdPool:
    __slots__ = ("next", "used")

    def __init__(self, start: int) -> None:
        self.next = start
        self.used: set[int] = set()

    def take(self) -> int | None:
        if len(self.used) >= 256:
            return None
        ident = self.next
        while ident in self.used:
            ident = (ident + 1) & 0xFF
        self.used.add(ident)
        self.next = (ident + 1) & 0xFF
        return ident


@dataclass(slots=True, eq=False)
class _Call:
    key: Hashable
    #: the request's attributes except User-Password, encoded once for every server
    encoded: bytes
    password: bytes | None
    started: float
    tried: list[int] = field(default_factory=list)
    server: int = -1
    socket: int = -1
    ident: int = -1
    authenticator: bytes = b""
    payload: bytes = b""
    tries: int = 0
    deadline: float = 0.0
    timer_seq: int = -1
    probe: bool = False


@dataclass(slots=True, eq=False)
class _ServerState:
    alive: bool = True
    dead_until: float = 0.0
    next_probe: float = 0.0
    timer_seq: int = -1


class RadiusClient:
    """Authentication client engine for several servers (sans-I/O)."""

    def __init__(
        self,
        servers: Sequence[RadiusServer],
        *,
        sockets: int = 16,
        nas_identifier: str | None = None,
        rand_bytes: RandBytes = os.urandom,
    ) -> None:
        if not servers:
            raise ValueError("at least one RADIUS server is needed")
        if sockets < 1:
            raise ValueError("at least one source socket is needed")
        self.servers: tuple[RadiusServer, ...] = tuple(servers)
        self.sockets = sockets
        self._nas_identifier = nas_identifier
        self._rand = rand_bytes
        self._by_addr = {(s.address, s.port): i for i, s in enumerate(self.servers)}
        self._state = [_ServerState() for _ in self.servers]
        self._pools: dict[tuple[int, int], _IdPool] = {}
        self._inflight: dict[tuple[int, int, int], _Call] = {}
        self._calls: dict[Hashable, _Call] = {}
        self._waiting: deque[_Call] = deque()
        self._out: list[Datagram] = []
        self._events: deque[Event] = deque()
        self._heap: list[tuple[float, int, _Call | int]] = []
        self._seq = count()
        self._rr = 0
        self.counters: dict[str, int] = {
            "requests": 0,
            "accepts": 0,
            "rejects": 0,
            "challenges": 0,
            "timeouts": 0,
            "retransmits": 0,
            "failovers": 0,
            "forged_replies": 0,
            "proxy_state_mismatch": 0,
            "unknown_reply": 0,
            "malformed": 0,
            "unexpected_code": 0,
            "probes_sent": 0,
            "queued": 0,
        }

    # -- commands ------------------------------------------------------------------------------

    def authenticate(self, key: Hashable, request: AuthRequest, now: float) -> None:
        """Start an Access-Request; the answer is an AccessAccepted/Rejected/TimedOut event."""
        if key in self._calls:
            raise LocalProtocolError(f"request {key!r} already in progress")
        call = _Call(
            key=key,
            encoded=_packet.encode_attributes(request.attributes(with_password=False)),
            password=request.pap_password,
            started=now,
        )
        self._calls[key] = call
        self.counters["requests"] += 1
        self._start_on(call, self._pick_server(call) or 0, now)

    def cancel(self, key: Hashable) -> None:
        """Forget a request (the subscriber went away); a late reply is ignored."""
        call = self._calls.pop(key, None)
        if call is None:
            return
        if call in self._waiting:
            self._waiting.remove(call)
        self._release(call)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def server_alive(self, name: str) -> bool:
        return next(
            st.alive for s, st in zip(self.servers, self._state, strict=True) if s.name == name
        )

    # -- sans-I/O plumbing ---------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        heap = self._heap
        while heap:
            _, seq, ref = heap[0]
            if self._timer_live(seq, ref):
                return heap[0][0]
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, seq, ref = heapq.heappop(heap)
            if not self._timer_live(seq, ref):
                continue
            if isinstance(ref, _Call):
                self._expire(ref, now)
            else:
                self._server_timer(ref, now)

    def receive_datagram(
        self, payload: bytes, addr: tuple[str, int], socket_index: int, now: float
    ) -> None:
        """Feed a datagram received on ``socket_index`` from ``addr`` (never raises)."""
        if len(payload) < 20:
            self.counters["malformed"] += 1
            return
        sidx = self._by_addr.get((addr[0], addr[1]))
        call = self._inflight.get((socket_index, sidx, payload[1])) if sidx is not None else None
        if call is None or sidx is None:
            self.counters["unknown_reply"] += 1
            return
        server = self.servers[sidx]
        # BlastRADIUS: authenticate the reply (Response Authenticator AND a valid
        # Message-Authenticator) before its code is looked at.
        reply = _packet.decode_verified_reply(payload, call.authenticator, server.secret)
        if reply is None:
            self.counters["forged_replies"] += 1
            return
        if reply.get(_PROXY_STATE) is not None:
            # We never send Proxy-State, so a reply carrying one was not built for us.
            self.counters["forged_replies"] += 1
            self.counters["proxy_state_mismatch"] += 1
            return
        if reply.code not in (Code.ACCESS_ACCEPT, Code.ACCESS_REJECT, Code.ACCESS_CHALLENGE):
            self.counters["unexpected_code"] += 1
            return
        self._release(call)
        state = self._state[sidx]
        if not state.alive:
            self._revive(sidx, "status-server" if call.probe else "reply")
        if call.probe:
            return
        del self._calls[call.key]
        self._finish(call, reply, server, now)
        self._drain_waiting(now)

    # -- internals -----------------------------------------------------------------------------

    def _timer_live(self, seq: int, ref: _Call | int) -> bool:
        if isinstance(ref, _Call):
            return ref.timer_seq == seq
        return self._state[ref].timer_seq == seq

    def _push_timer(self, when: float, ref: _Call | int) -> None:
        seq = next(self._seq)
        if isinstance(ref, _Call):
            ref.timer_seq = seq
        else:
            self._state[ref].timer_seq = seq
        heapq.heappush(self._heap, (when, seq, ref))

    def _pick_server(self, call: _Call) -> int | None:
        untried = [i for i in range(len(self.servers)) if i not in call.tried]
        for i in untried:
            if self._state[i].alive:
                return i
        return untried[0] if untried else None

    def _has_alive_untried(self, call: _Call) -> bool:
        return any(st.alive and i not in call.tried for i, st in enumerate(self._state))

    def _alloc(self, server: int) -> tuple[int, int] | None:
        for n in range(self.sockets):
            sock = (self._rr + n) % self.sockets
            pool = self._pools.get((sock, server))
            if pool is None:
                pool = self._pools[(sock, server)] = _IdPool(self._rand(1)[0])
            ident = pool.take()
            if ident is not None:
                self._rr = (sock + 1) % self.sockets
                return sock, ident
        return None

    def _release(self, call: _Call) -> None:
        if call.ident < 0:
            return
        self._inflight.pop((call.socket, call.server, call.ident), None)
        self._pools[(call.socket, call.server)].used.discard(call.ident)
        call.ident = -1
        call.timer_seq = -1

    def _start_on(self, call: _Call, server: int, now: float) -> None:
        call.server = server
        if server not in call.tried:
            call.tried.append(server)
        slot = self._alloc(server)
        if slot is None:
            if not call.probe:
                self.counters["queued"] += 1
                self._waiting.append(call)
            return
        call.socket, call.ident = slot
        srv = self.servers[server]
        call.authenticator = self._rand(16)
        code = Code.STATUS_SERVER if call.probe else Code.ACCESS_REQUEST
        call.payload = _packet.encode_access_request(
            call.ident, call.encoded, call.password, srv.secret, call.authenticator, code=code
        )
        call.tries = 0
        self._inflight[(call.socket, server, call.ident)] = call
        self._send(call, now)

    def _send(self, call: _Call, now: float) -> None:
        srv = self.servers[call.server]
        self._out.append(Datagram(srv.name, (srv.address, srv.port), call.payload, call.socket))
        call.deadline = now + srv.timeout[call.tries]
        self._push_timer(call.deadline, call)

    def _expire(self, call: _Call, now: float) -> None:
        srv = self.servers[call.server]
        if call.probe:
            self._release(call)
            return
        # Another call found this server dead meanwhile: move on instead of retrying.
        exhausted = call.tries + 1 >= len(srv.timeout)
        if not exhausted and (self._state[call.server].alive or not self._has_alive_untried(call)):
            call.tries += 1
            self.counters["retransmits"] += 1
            self._send(call, now)  # same Identifier and authenticator (RFC 5080 2.2.1)
            return
        self._release(call)
        if exhausted:
            self.counters["timeouts"] += 1
            self._mark_dead(call.server, now)
        nxt = self._pick_server(call)
        if nxt is None:
            del self._calls[call.key]
            self._events.append(AccessTimedOut(call.key))
        else:
            self.counters["failovers"] += 1
            self._start_on(call, nxt, now)
        self._drain_waiting(now)

    def _mark_dead(self, sidx: int, now: float) -> None:
        state = self._state[sidx]
        srv = self.servers[sidx]
        state.dead_until = now + srv.dead_time
        if state.alive:
            state.alive = False
            self._events.append(ServerDead(srv.name))
            state.next_probe = now + min(srv.probe_interval, srv.dead_time)
            self._schedule_server(sidx)

    def _schedule_server(self, sidx: int) -> None:
        state = self._state[sidx]
        self._push_timer(min(state.next_probe, state.dead_until), sidx)

    def _server_timer(self, sidx: int, now: float) -> None:
        state = self._state[sidx]
        if state.alive:
            return
        if now >= state.dead_until:
            self._revive(sidx, "dead-time")
            return
        if now >= state.next_probe:
            self._probe(sidx, now)
            state.next_probe = now + self.servers[sidx].probe_interval
        self._schedule_server(sidx)

    def _probe(self, sidx: int, now: float) -> None:
        attrs: list[RawAttribute] = []
        if self._nas_identifier is not None:
            attrs.append((Attr.NAS_IDENTIFIER, self._nas_identifier.encode()))
        probe = _Call(
            key=("status-server", sidx, now),
            encoded=_packet.encode_attributes(attrs),
            password=None,
            started=now,
            probe=True,
        )
        self.counters["probes_sent"] += 1
        self._start_on(probe, sidx, now)  # skipped when no Identifier is free

    def _revive(self, sidx: int, reason: str) -> None:
        state = self._state[sidx]
        state.alive = True
        state.timer_seq = -1
        self._events.append(ServerRevived(self.servers[sidx].name, reason))

    def _drain_waiting(self, now: float) -> None:
        if not self._waiting:
            return
        waiting = list(self._waiting)
        self._waiting.clear()
        for call in waiting:
            self._start_on(call, call.server, now)

    def _finish(
        self, call: _Call, reply: _packet.RadiusPacket, srv: RadiusServer, now: float
    ) -> None:
        messages = reply.get_all(Attr.REPLY_MESSAGE)
        message = b"".join(messages).decode("utf-8", "replace") if messages else None
        if reply.code == Code.ACCESS_ACCEPT:
            self.counters["accepts"] += 1
            tunnels = parse_tunnels(reply.attributes, srv.secret, call.authenticator)
            timeout = reply.get(Attr.SESSION_TIMEOUT)
            self._events.append(
                AccessAccepted(
                    key=call.key,
                    attributes=reply.attributes,
                    tunnels=tunnels.candidates,
                    skipped=tunnels.skipped,
                    reply_message=message,
                    session_timeout=(
                        int.from_bytes(timeout, "big")
                        if timeout is not None and len(timeout) == 4
                        else None
                    ),
                    class_attr=reply.get(Attr.CLASS),
                    server=srv.name,
                    latency=now - call.started,
                )
            )
        elif reply.code == Code.ACCESS_REJECT:
            self.counters["rejects"] += 1
            self._events.append(AccessRejected(call.key, message, srv.name))
        else:
            self.counters["challenges"] += 1
            self._events.append(AccessRejected(call.key, message, srv.name, challenged=True))
