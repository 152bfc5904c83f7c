"""Non-blocking Redis on the reactor: pipelined script calls over one connection.

The hot path of call set-up (``reserve_first`` and ``release``) must not wait for a pool thread
nor wake the reactor through ``callFromThread`` once per reply. :class:`ReactorRedis` keeps one
TCP or unix connection to the same server the synchronous redis-py client uses and writes every
call at once (Redis answers in order, so replies complete the oldest waiting Deferred). The
wire format (RESP) is encoded and parsed by ``hiredis``, redis-py's C protocol parser.

Failure model: a lost connection, or a reply older than ``timeout``, fails every waiting call
with ``redis.ConnectionError`` / ``redis.TimeoutError`` (the store then switches to its local
view, as for the synchronous path) and the connection is re-opened on the next call while the
store is healthy. A script the server no longer knows (``NOSCRIPT``) is re-sent as ``EVAL``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis
from redis.commands.core import Script
from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="broker.state.redis")

#: ``("tcp", host, port)`` or ``("unix", path, 0)``; with the AUTH/SELECT to send first.
Address = tuple[str, str, int]


class _Resp(Protocol):
    """One connection: requests written at once, replies matched in order."""

    def __init__(self, owner: ReactorRedis) -> None:
        self.owner = owner
        self.reader = hiredis.Reader(encoding="utf-8")
        self.waiting: deque[tuple[Deferred[Any], float]] = deque()
        self.closed = False

    def connectionMade(self) -> None:
        self.owner._connected(self)

    def send(self, args: Sequence[Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        if self.closed:
            d.errback(redis.ConnectionError("redis connection closed"))
            return d
        transport: Any = self.transport
        transport.write(hiredis.pack_command(tuple(args)))
        self.waiting.append((d, self.owner.clock()))
        self.owner._watch()
        return d

    def dataReceived(self, data: bytes) -> None:
        reader = self.reader
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                if not self.waiting:
                    raise hiredis.ProtocolError("reply without a request")
                d, _ = self.waiting.popleft()
                if isinstance(reply, hiredis.ReplyError):
                    d.errback(redis.ResponseError(str(reply)))
                else:
                    d.callback(reply)
        except hiredis.ProtocolError as exc:
            log.warn("redis protocol error ({error}); reconnecting", error=str(exc))
            self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abortConnection()

    def fail_all(self, exc: Exception) -> None:
        while self.waiting:
            d, _ = self.waiting.popleft()
            d.errback(exc)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        why = reason.getErrorMessage() if reason is not None else "closed"
        self.fail_all(redis.ConnectionError(f"redis connection lost: {why}"))
        self.owner._lost(self)


class _Factory(ClientFactory):
    def __init__(self, owner: ReactorRedis) -> None:
        self.owner = owner

    def buildProtocol(self, addr: Any) -> _Resp:
        return _Resp(self.owner)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.owner._failed(reason)


class ReactorRedis:
    """Pipelined EVALSHA calls from the reactor thread; ``ready`` once connected.

    ``locate`` returns (in a Deferred, since finding a Sentinel's master blocks) the address
    and the connection's preamble (AUTH, SELECT). ``timeout`` bounds how long the oldest call
    may wait for its reply.
    """

    def __init__(
        self,
        reactor: Any,
        locate: Callable[[], Deferred[tuple[Address, list[tuple[Any, ...]]]]],
        timeout: float = 0.5,
    ) -> None:
        self.reactor = reactor
        self.locate = locate
        self.timeout = timeout
        self.clock: Callable[[], float] = reactor.seconds
        self.proto: _Resp | None = None
        self.connecting = False
        self._watchdog: Any = None
        self._preamble: list[tuple[Any, ...]] = []
        self.counters = {"connects": 0, "connect_failures": 0, "timeouts": 0, "noscript": 0}

    @property
    def ready(self) -> bool:
        return self.proto is not None and not self.proto.closed

    def connect(self) -> None:
        """Start connecting unless connected or already connecting."""
        if self.ready or self.connecting:
            return
        self.connecting = True
        d = self.locate()
        d.addCallbacks(self._dial, self._failed)

    def _dial(self, located: tuple[Address, list[tuple[Any, ...]]]) -> None:
        (kind, where, port), self._preamble = located
        factory = _Factory(self)
        if kind == "unix":
            self.reactor.connectUNIX(where, factory, timeout=self.timeout * 4)
        else:
            self.reactor.connectTCP(where, port, factory, timeout=self.timeout * 4)

    def _connected(self, proto: _Resp) -> None:
        for command in self._preamble:
            proto.send(command).addErrback(self._preamble_failed, proto)
        self.proto = proto
        self.connecting = False
        self.counters["connects"] += 1

    def _preamble_failed(self, failure: Failure, proto: _Resp) -> None:
        log.warn("redis connection set-up refused: {error}", error=failure.getErrorMessage())
        proto.abort()

    def _failed(self, reason: Failure) -> None:
        self.connecting = False
        self.counters["connect_failures"] += 1

    def _lost(self, proto: _Resp) -> None:
        if self.proto is proto:
            self.proto = None

    def _watch(self) -> None:
        if self._watchdog is None or not self._watchdog.active():
            self._watchdog = self.reactor.callLater(self.timeout, self._check)

    def _check(self) -> None:
        proto = self.proto
        if proto is None or not proto.waiting:
            return
        oldest = proto.waiting[0][1]
        if self.clock() - oldest >= self.timeout:
            self.counters["timeouts"] += 1
            proto.fail_all(redis.TimeoutError("redis reply timed out"))
            proto.abort()
            return
        self._watchdog = self.reactor.callLater(oldest + self.timeout - self.clock(), self._check)

    def call(self, script: Script, args: Sequence[Any]) -> Deferred[Any]:
        """EVALSHA ``script`` with no keys and ``args``; ``EVAL`` if the server lost it."""
        proto = self.proto
        if proto is None or proto.closed:
            return fail(redis.ConnectionError("redis not connected"))
        d = proto.send(("EVALSHA", script.sha, 0, *args))

        def noscript(failure: Failure) -> Any:
            exc = failure.value
            if isinstance(exc, redis.ResponseError) and str(exc).startswith("NOSCRIPT"):
                self.counters["noscript"] += 1
                return proto.send(("EVAL", script.script, 0, *args))
            return failure

        d.addErrback(noscript)
        return d

    def close(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        if self.proto is not None:
            self.proto.abort()


def locate_for(client: redis.Redis) -> Callable[[], tuple[Address, list[tuple[Any, ...]]]]:
    """Blocking: where ``client`` connects (the Sentinel's current master for sentinel pools)
    and what to send first (AUTH, SELECT) so both clients see the same database."""

    def locate() -> tuple[Address, list[tuple[Any, ...]]]:
        pool = client.connection_pool
        kw = pool.connection_kwargs
        preamble: list[tuple[Any, ...]] = []
        if kw.get("password"):
            user = kw.get("username")
            preamble.append(("AUTH", user, kw["password"]) if user else ("AUTH", kw["password"]))
        if int(kw.get("db") or 0):
            preamble.append(("SELECT", int(kw["db"])))
        master = getattr(pool, "get_master_address", None)
        if master is not None:
            host, port = master()
            return ("tcp", str(host), int(port)), preamble
        if kw.get("path"):
            return ("unix", str(kw["path"]), 0), preamble
        return ("tcp", str(kw.get("host", "127.0.0.1")), int(kw.get("port", 6379))), preamble

    return locate
