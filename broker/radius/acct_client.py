"""Sans-I/O RADIUS accounting sender (RFC 2866, RFC 5080 section 2.2.1).

:class:`AccountingClient` takes spooled records (``submit(seq, record)``) and sends them as
Accounting-Requests until each one is acknowledged -- forever, with an exponential backoff per
record capped at the last step of ``backoff`` (default 1, 2, 4, ..., 60 s). At most ``window``
records are in flight; the rest wait in order.

Acct-Delay-Time is ``now - record.created`` at each transmission (RFC 2866 section 5.2), so
``now`` must be wall-clock seconds (the reactor's ``seconds()``). When the delay (or the
server) changed since the previous transmission, the content changed and the packet gets a
new Identifier and Request Authenticator (RFC 2866 section 3, RFC 5080 section 2.2.1); an
unchanged packet is retransmitted byte for byte. A reply to the previous transmission of a
record still acknowledges it.

Failover: servers are tried in order; a server with ``dead_after`` consecutive timeouts is
declared dead (:class:`ServerDead`) for ``dead_time`` seconds and records move to the next
live server. When every server is dead, records rotate over all of them so a returning server
is found; the first valid reply from a dead server emits :class:`ServerAlive` and retries
everything in flight to it at once. Replies whose Response Authenticator does not verify are
dropped and counted (``counters["forged"]``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from broker.radius.accounting import AcctRecord, InvalidRecord, encode_accounting_request
from broker.radius.constants import HEADER_LENGTH, Code
from broker.radius.packet import verify_response

Address = tuple[str, int]

DEFAULT_BACKOFF: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 60)


@dataclass(frozen=True, slots=True)
class AcctServer:
    name: str
    address: Address
    secret: bytes


@dataclass(frozen=True, slots=True)
class Datagram:
    server: str
    address: Address
    payload: bytes


@dataclass(frozen=True, slots=True)
class RecordAcknowledged:
    seq: int
    record_id: str
    server: str
    transmissions: int
    delay: int  #: Acct-Delay-Time of the acknowledged transmission


@dataclass(frozen=True, slots=True)
class RecordRejected:
    """The record cannot be encoded (see :class:`InvalidRecord`); it was dropped."""

    seq: int
    record_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ServerDead:
    server: str


@dataclass(frozen=True, slots=True)
class ServerAlive:
    server: str


Event = RecordAcknowledged | RecordRejected | ServerDead | ServerAlive


@dataclass(slots=True)
class _Transmission:
    server: int
    identifier: int
    authenticator: bytes
    payload: bytes
    delay: int


@dataclass(slots=True)
class _InFlight:
    seq: int
    record: AcctRecord
    attempt: int = 0  #: expiries so far (index into the backoff schedule)
    transmissions: int = 0
    next_retry: float | None = None  #: None: due now
    current: _Transmission | None = None
    previous: _Transmission | None = None


@dataclass(slots=True)
class _ServerState:
    spec: AcctServer
    timeouts: int = 0
    dead_until: float | None = None
    dead: bool = False
    next_id: int = 0
    in_use: dict[int, _InFlight] = field(default_factory=dict)


class AccountingClient:
    """Accounting-Request sender engine (see module docstring)."""

    def __init__(
        self,
        servers: list[AcctServer],
        *,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        window: int = 32,
        dead_after: int = 3,
        dead_time: float = 30.0,
        first_identifier: int = 0,
    ) -> None:
        if not servers:
            raise ValueError("at least one accounting server")
        if not backoff or any(b <= 0 for b in backoff):
            raise ValueError("backoff must be a non-empty tuple of positive seconds")
        if not 1 <= window <= 100:
            raise ValueError("window must be 1..100 (two identifiers per record, 256 per server)")
        self._servers = [_ServerState(s, next_id=first_identifier % 256) for s in servers]
        self._by_addr = {s.address: i for i, s in enumerate(servers)}
        self.backoff = backoff
        self.window = window
        self.dead_after = dead_after
        self.dead_time = dead_time
        self._queue: deque[tuple[int, AcctRecord]] = deque()
        self._queued: set[int] = set()
        self._inflight: dict[int, _InFlight] = {}
        self._events: deque[Event] = deque()
        self.counters: dict[str, int] = {
            "submitted": 0,
            "sent": 0,
            "retransmits": 0,
            "new_identifier": 0,
            "acked": 0,
            "timeouts": 0,
            "forged": 0,
            "unknown": 0,
            "malformed": 0,
            "rejected": 0,
        }

    # -- commands --------------------------------------------------------------------------
    def submit(self, seq: int, record: AcctRecord) -> None:
        """Queue a spooled record for sending (ignored if that seq is already queued)."""
        if seq in self._inflight or seq in self._queued:
            return
        self._queue.append((seq, record))
        self._queued.add(seq)
        self.counters["submitted"] += 1

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def server_dead(self, name: str) -> bool:
        return any(s.dead for s in self._servers if s.spec.name == name)

    # -- sans-I/O contract -----------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[Datagram]:
        while self._queue and len(self._inflight) < self.window:
            seq, record = self._queue.popleft()
            self._queued.discard(seq)
            self._inflight[seq] = _InFlight(seq, record)
        out: list[Datagram] = []
        for entry in list(self._inflight.values()):
            if entry.next_retry is None:
                try:
                    d = self._transmit(entry, now)
                except InvalidRecord as exc:
                    self._reject(entry, str(exc))
                    continue
                if d is not None:
                    out.append(d)
        return out

    def get_timer(self) -> float | None:
        times = [e.next_retry for e in self._inflight.values() if e.next_retry is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        for entry in self._inflight.values():
            if entry.next_retry is not None and entry.next_retry <= now:
                self.counters["timeouts"] += 1
                if entry.current is not None:
                    self._server_timeout(entry.current.server, now)
                entry.attempt += 1
                entry.next_retry = None

    def receive_datagram(self, payload: bytes, addr: Address, now: float) -> None:
        idx = self._by_addr.get(addr)
        if idx is None or len(payload) < HEADER_LENGTH:
            self.counters["unknown" if idx is None else "malformed"] += 1
            return
        if payload[0] != Code.ACCOUNTING_RESPONSE:
            self.counters["unknown"] += 1
            return
        server = self._servers[idx]
        entry = server.in_use.get(payload[1])
        if entry is None:
            self.counters["unknown"] += 1
            return
        tx = next(
            (
                t
                for t in (entry.current, entry.previous)
                if t is not None and t.server == idx and t.identifier == payload[1]
            ),
            None,
        )
        if tx is None:
            self.counters["unknown"] += 1
            return
        secret = server.spec.secret
        if not verify_response(
            payload, tx.authenticator, secret, require_message_authenticator=False
        ):
            self.counters["forged"] += 1
            return
        self._acknowledge(entry, tx, now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- internals ---------------------------------------------------------------------------
    def _choose_server(self, entry: _InFlight, now: float) -> int:
        for s in self._servers:
            if s.dead and s.dead_until is not None and s.dead_until <= now:
                s.dead_until = None  # dead time over: eligible again (still "dead" until a reply)
        for i, s in enumerate(self._servers):
            if not s.dead or s.dead_until is None:
                return i
        return (entry.seq + entry.attempt) % len(self._servers)

    def _allocate_id(self, server: _ServerState) -> int | None:
        for _ in range(256):
            ident = server.next_id
            server.next_id = (server.next_id + 1) % 256
            if ident not in server.in_use:
                return ident
        return None

    def _release(self, tx: _Transmission | None, entry: _InFlight) -> None:
        if tx is None:
            return
        s = self._servers[tx.server]
        if s.in_use.get(tx.identifier) is entry:
            del s.in_use[tx.identifier]

    def _transmit(self, entry: _InFlight, now: float) -> Datagram | None:
        idx = self._choose_server(entry, now)
        server = self._servers[idx]
        delay = max(0, int(now - entry.record.created))
        cur = entry.current
        if cur is not None and cur.server == idx and cur.delay == delay:
            self.counters["retransmits"] += 1
            tx = cur
        else:
            ident = self._allocate_id(server)
            if ident is None:  # cannot happen with window <= 100; retry on the next step
                entry.next_retry = now + self.backoff[0]
                return None
            payload = encode_accounting_request(
                entry.record, ident, server.spec.secret, delay=delay
            )
            tx = _Transmission(idx, ident, payload[4:20], payload, delay)
            if cur is not None:
                self.counters["new_identifier"] += 1
                self.counters["retransmits"] += 1
            self._release(entry.previous, entry)
            entry.previous = cur
            entry.current = tx
            server.in_use[ident] = entry
        entry.transmissions += 1
        self.counters["sent"] += 1
        step = self.backoff[min(entry.attempt, len(self.backoff) - 1)]
        entry.next_retry = now + step
        return Datagram(server.spec.name, server.spec.address, tx.payload)

    def _reject(self, entry: _InFlight, reason: str) -> None:
        self._release(entry.current, entry)
        self._release(entry.previous, entry)
        del self._inflight[entry.seq]
        self.counters["rejected"] += 1
        self._events.append(RecordRejected(entry.seq, entry.record.record_id, reason))

    def _server_timeout(self, idx: int, now: float) -> None:
        s = self._servers[idx]
        s.timeouts += 1
        if s.timeouts >= self.dead_after and not s.dead:
            s.dead = True
            s.dead_until = now + self.dead_time
            self._events.append(ServerDead(s.spec.name))
        elif s.dead and s.dead_until is None:
            s.dead_until = now + self.dead_time  # probed and still silent

    def _acknowledge(self, entry: _InFlight, tx: _Transmission, now: float) -> None:
        self._release(entry.current, entry)
        self._release(entry.previous, entry)
        del self._inflight[entry.seq]
        self.counters["acked"] += 1
        s = self._servers[tx.server]
        s.timeouts = 0
        if s.dead:
            s.dead = False
            s.dead_until = None
            self._events.append(ServerAlive(s.spec.name))
            for other in self._inflight.values():  # it is back: retry the rest now
                other.next_retry = None
                other.attempt = 0
        self._events.append(
            RecordAcknowledged(
                entry.seq, entry.record.record_id, s.spec.name, entry.transmissions, tx.delay
            )
        )
