"""Twisted UDP adapter for the RADIUS authentication client (RFC 2865 section 3).

:class:`RadiusUdpAdapter` binds ``engine.sockets`` UDP ports on one local address (ephemeral
ports: many source ports, each with its own 256 Identifiers per server), feeds every datagram
to :class:`broker.radius.client.RadiusClient` with the index of the socket it arrived on,
and once per reactor iteration (``callLater(0)``, so a burst of replies costs one flush)
writes what the engine wants sent from the socket it names, delivers events to ``on_event``
and to the Deferred returned by :meth:`RadiusUdpAdapter.authenticate`, and keeps one timer
re-armed from ``engine.get_timer()`` (:class:`broker.adapters.timer.EngineTimer`).

Nothing here logs a secret, a password or a packet payload.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from broker.adapters.faults import Faults
from broker.adapters.timer import EngineTimer
from broker.radius.client import (
    AccessAccepted,
    AccessRejected,
    AccessTimedOut,
    AuthRequest,
    Event,
    RadiusClient,
    ServerDead,
    ServerRevived,
)

__all__ = ["AuthResult", "RadiusUdpAdapter"]

_log = Logger(namespace="broker.adapters.radius_udp")

AuthResult = AccessAccepted | AccessRejected | AccessTimedOut


class _RadiusSocket(DatagramProtocol):
    def __init__(self, adapter: RadiusUdpAdapter, index: int) -> None:
        self.adapter = adapter
        self.index = index

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # Twisted's name
        self.adapter._received(datagram, (str(addr[0]), int(addr[1])), self.index)


class RadiusUdpAdapter:
    """Runs a :class:`RadiusClient` on ``engine.sockets`` UDP sockets."""

    def __init__(
        self,
        engine: RadiusClient,
        reactor: Any,  # IReactorUDP + IReactorTime
        local_address: str = "127.0.0.1",
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.local_address = local_address
        self.on_event = on_event
        self.timer = EngineTimer(engine, reactor, self.flush, name="radius")
        self._protocols = [_RadiusSocket(self, i) for i in range(engine.sockets)]
        self._ports: list[Any] = []
        self._waiters: dict[Hashable, Deferred[AuthResult]] = {}
        self._keys = itertools.count()
        self.counters: dict[str, int] = {
            "rx": 0,
            "tx": 0,
            "tx_errors": 0,
            "tx_dropped": 0,
            "engine_errors": 0,
            "callback_errors": 0,
        }
        self._note = Faults("radius adapter", self.counters)
        self._flush_call: Any = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the sockets (ephemeral ports on ``local_address``)."""
        for proto in self._protocols:
            self._ports.append(self.reactor.listenUDP(0, proto, interface=self.local_address))
        self.timer.rearm()

    def stop(self) -> Deferred[Any]:
        """Deliver what the engine already decided, then stop the timer and close the
        sockets; authentications still pending end as AccessTimedOut."""
        if self._ports:
            self.flush()
        self.timer.stop()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        ports, self._ports = self._ports, []
        waiters, self._waiters = self._waiters, {}
        for key, d in waiters.items():
            self.engine.cancel(key)
            d.callback(AccessTimedOut(key))
        results = [p.stopListening() for p in ports]
        return (
            DeferredList([r for r in results if isinstance(r, Deferred)])
            if results
            else (succeed(None))
        )

    @property
    def pending(self) -> int:
        """Authentications whose Deferred has not fired yet."""
        return len(self._waiters)

    @property
    def ports(self) -> list[int]:
        return [int(p.getHost().port) for p in self._ports]

    # -- commands -------------------------------------------------------------------------------

    def authenticate(
        self, request: AuthRequest, key: Hashable | None = None
    ) -> Deferred[AuthResult]:
        """Send an Access-Request; the Deferred fires with the outcome event (never errbacks
        for a protocol outcome; cancelling it cancels the request)."""
        if key is None:
            key = ("radius", next(self._keys))

        def cancel(_: Deferred[AuthResult]) -> None:
            self._waiters.pop(key, None)
            self.engine.cancel(key)

        d: Deferred[AuthResult] = Deferred(cancel)
        self._waiters[key] = d
        try:
            self.engine.authenticate(key, request, self.reactor.seconds())
        except Exception:
            del self._waiters[key]
            raise
        self._flush_soon()
        return d

    def submit(self, request: AuthRequest, key: Hashable) -> None:
        """Send an Access-Request whose outcome goes only to ``on_event`` (no Deferred: the
        shape of the daemon's call flow, which owns its RADIUS engine the same way)."""
        self.engine.authenticate(key, request, self.reactor.seconds())
        self._flush_soon()

    # -- plumbing -------------------------------------------------------------------------------

    def _received(self, data: bytes, addr: tuple[str, int], index: int) -> None:
        self.counters["rx"] += 1
        try:
            self.engine.receive_datagram(data, addr, index, self.reactor.seconds())
        except Exception as exc:  # the engine never raises on input; keep the reactor alive
            self._note("engine_errors", exc)
        self._flush_soon()

    def _flush_soon(self) -> None:
        """One flush per reactor iteration, however many datagrams and requests came in."""
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """Write the engine's datagrams, deliver its events, re-arm the timer."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        now = self.reactor.seconds()
        for dg in self.engine.datagrams_to_send(now):
            try:
                port = self._ports[dg.socket_index]
                sock = getattr(port, "socket", None)
                if sock is not None:
                    sock.sendto(dg.payload, dg.addr)  # the address is ours: skip re-checks
                else:
                    port.write(dg.payload, dg.addr)
                self.counters["tx"] += 1
            except BlockingIOError:
                self.counters["tx_dropped"] += 1  # the retransmission timer covers it
            except (OSError, IndexError) as exc:
                self._note("tx_errors", exc)
        while (event := self.engine.next_event()) is not None:
            self._deliver(event)
        self.timer.rearm()

    def _deliver(self, event: Event) -> None:
        if isinstance(event, ServerDead):
            _log.warn("RADIUS server {server} marked dead", server=event.server)
        elif isinstance(event, ServerRevived):
            _log.info(
                "RADIUS server {server} alive again ({reason})",
                server=event.server,
                reason=event.reason,
            )
        else:
            d = self._waiters.pop(event.key, None)
            if d is not None:
                d.callback(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:
                self._note("callback_errors", exc)
