"""Twisted UDP listener for RFC 5176 Disconnect-Request / CoA-Request (port 3799 by default).

Feeds every datagram to a :class:`broker.radius.dynauth.DynAuthServer` engine and writes its
answers back to the sender. Dropped requests (unknown client, bad authenticator, malformed)
are only counted by the engine; answers are logged with the client name, codes and the
session criteria -- never the secret.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from broker.radius.dynauth import DynAuthServer

__all__ = ["DynAuthListener"]

_log = Logger(namespace="broker.dynauth")


class _Protocol(DatagramProtocol):
    def __init__(self, listener: DynAuthListener) -> None:
        self._listener = listener

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # Twisted's name
        self._listener.datagram_received(datagram, (str(addr[0]), int(addr[1])))


class DynAuthListener(Service):
    """Binds ``(address, port)`` and serves the engine."""

    def __init__(
        self, engine: DynAuthServer, *, reactor: Any, address: str = "127.0.0.1", port: int = 3799
    ) -> None:
        self.engine = engine
        self._reactor = reactor
        self._address = address
        self._port_number = port
        self._port: Any = None  # IListeningPort + IUDPTransport
        self.errors = 0

    def startService(self) -> None:  # Twisted's name
        super().startService()  # type: ignore[no-untyped-call]
        self._port = self._reactor.listenUDP(
            self._port_number, _Protocol(self), interface=self._address
        )

    def stopService(self) -> None:  # Twisted's name
        super().stopService()  # type: ignore[no-untyped-call]
        if self._port is not None:
            self._port.stopListening()
            self._port = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("listener not started")
        return int(self._port.getHost().port)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = self._reactor.seconds()
        try:
            self.engine.receive_datagram(data, addr, now)
        except Exception as exc:  # never let one datagram kill the listener
            self.errors += 1
            _log.failure("dynauth: engine error on datagram from {peer}: {e}", peer=addr[0], e=exc)
            return
        for reply in self.engine.datagrams_to_send(now):
            if self._port is not None:
                self._port.write(reply.payload, reply.address)
        while (ev := self.engine.next_event()) is not None:
            _log.info(
                "dynauth: {client} code {code} -> {reply} cause {cause} for {criteria}",
                client=ev.client,
                code=ev.request_code,
                reply=ev.reply_code,
                cause=ev.error_cause,
                criteria=ev.criteria,
            )
