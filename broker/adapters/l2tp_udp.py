"""Twisted UDP adapter running an L2TP endpoint on a real socket (RFC 2661 sections 3.1, 8.1).

One :class:`L2tpUdpAdapter` owns one UDP socket bound to one local address (port 1701 by
default, RFC 2661 section 8.1) and one sans-I/O endpoint that multiplexes every tunnel on that
socket by tunnel id. The adapter only moves bytes:

- a datagram whose T bit is set (control message, RFC 2661 section 3.1) goes to
  ``endpoint.receive_datagram(data, peer, now)`` with ``now = reactor.seconds()``;
- a datagram with T = 0 (data message: PPP frames) goes to ``on_data(data, peer)`` untouched,
  for the data plane / splice; if the engine has ``note_data_received(tunnel_id, now)`` it is
  told first, so data traffic postpones the tunnel's HELLO (RFC 2661 section 5.5);
- after each input (and each timer expiry, and each command) the adapter writes everything
  ``endpoint.datagrams_to_send(now)`` returns, hands every ``endpoint.next_event()`` to
  ``on_event`` and re-arms its single :class:`~broker.adapters.timer.EngineTimer`.

Exceptions raised by the endpoint or by the callbacks never reach the reactor: they are counted
in :attr:`L2tpUdpAdapter.counters` and logged once per kind.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from broker.adapters.timer import EngineTimer

__all__ = ["DEFAULT_RCVBUF", "L2TP_PORT", "DatagramEngine", "L2tpUdpAdapter", "Peer"]

Peer = tuple[str, int]
#: RFC 2661 section 8.1: the L2TP UDP port.
L2TP_PORT = 1701
#: Receive buffer asked for (SO_RCVBUFFORCE as root, else SO_RCVBUF capped by rmem_max).
DEFAULT_RCVBUF = 4 * 1024 * 1024

_T_BIT = 0x80
_L_BIT = 0x40
_log = Logger(namespace="broker.adapters.l2tp_udp")

EventT = TypeVar("EventT")
EventT_co = TypeVar("EventT_co", covariant=True)


class DatagramEngine(Protocol[EventT_co]):
    """The sans-I/O contract the adapter drives (``broker.l2tp.endpoint.L2tpEndpoint``)."""

    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> Iterable[tuple[bytes, Peer]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...

    def next_event(self) -> EventT_co | None: ...


class ListeningPort(Protocol):
    """The part of ``IListeningPort`` used here (typed structurally, no zope plugin)."""

    def stopListening(self) -> Deferred[None] | None: ...  # Twisted's name

    def getHost(self) -> Any: ...  # Twisted's name


class L2tpUdpAdapter(DatagramProtocol, Generic[EventT]):
    """Runs ``endpoint`` on one UDP socket bound to ``local_address:port``.

    ``port=0`` picks a free port (tests); :attr:`port` tells which after :meth:`start`.
    Commands to the endpoint go through :meth:`call` (``adapter.call(ep.open_tunnel, peer,
    config)`` supplies ``now`` and flushes) so their output is written at once.
    """

    def __init__(
        self,
        endpoint: DatagramEngine[EventT],
        reactor: Any,  # IReactorUDP + IReactorTime
        local_address: str,
        port: int = L2TP_PORT,
        on_event: Callable[[EventT], None] | None = None,
        on_data: Callable[[bytes, Peer], None] | None = None,
        *,
        rcvbuf: int = DEFAULT_RCVBUF,
        max_packet_size: int = 65535,
    ) -> None:
        self.endpoint = endpoint
        self.reactor = reactor
        self.local_address = local_address
        self.requested_port = port
        self.on_event = on_event
        self.on_data = on_data
        self.rcvbuf = rcvbuf
        self.max_packet_size = max_packet_size
        self.timer = EngineTimer(endpoint, reactor, self.flush, name="l2tp")
        self.listening: ListeningPort | None = None
        self.counters: dict[str, int] = {
            "rx_control": 0,
            "rx_data": 0,
            "rx_empty": 0,
            "rx_data_dropped": 0,
            "tx_control": 0,
            "tx_data": 0,
            "tx_errors": 0,
            "engine_errors": 0,
            "callback_errors": 0,
        }
        self._logged: set[str] = set()
        #: optional engine hook (L2tpEndpoint.note_data_received) told of data traffic
        self._note_data: Callable[[int, float], None] | None = getattr(
            endpoint, "note_data_received", None
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ListeningPort:
        """Bind the socket (raises ``CannotListenError`` if the address is taken)."""
        self.listening = self.reactor.listenUDP(
            self.requested_port,
            self,
            interface=self.local_address,
            maxPacketSize=self.max_packet_size,
        )
        self._set_rcvbuf()
        self.timer.rearm()
        return self.listening

    def stop(self) -> Deferred[None]:
        """Cancel the timer and close the socket."""
        self.timer.stop()
        listening, self.listening = self.listening, None
        if listening is None:
            return succeed(None)
        result = listening.stopListening()
        return succeed(None) if result is None else result

    @property
    def port(self) -> int:
        if self.listening is None:
            raise RuntimeError("adapter not started")
        return int(self.listening.getHost().port)

    def _set_rcvbuf(self) -> None:
        sock = self._socket()
        if sock is None or self.rcvbuf <= 0:
            return
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        if force is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, force, self.rcvbuf)
                return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)

    def _socket(self) -> socket.socket | None:
        sock = getattr(self.listening, "socket", None)
        return sock if isinstance(sock, socket.socket) else None

    def receive_buffer_size(self) -> int | None:
        """The kernel's SO_RCVBUF for the socket (doubled by Linux for bookkeeping)."""
        sock = self._socket()
        return None if sock is None else int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    # -- input -------------------------------------------------------------------------------

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # Twisted override
        peer: Peer = (str(addr[0]), int(addr[1]))
        if not datagram:
            self.counters["rx_empty"] += 1
            return
        if datagram[0] & _T_BIT:
            self.counters["rx_control"] += 1
            try:
                self.endpoint.receive_datagram(datagram, peer, self.reactor.seconds())
            except Exception as exc:
                self._note("engine_errors", "receive_datagram", exc, peer)
            self.flush()
            return
        self.counters["rx_data"] += 1
        if self._note_data is not None:
            # RFC 2661 5.5: data traffic counts as activity (postpones HELLO). Tunnel ID sits
            # after the optional Length field (L bit, 0x40).
            off = 4 if datagram[0] & _L_BIT else 2
            if len(datagram) >= off + 2:
                tunnel_id = (datagram[off] << 8) | datagram[off + 1]
                try:
                    self._note_data(tunnel_id, self.reactor.seconds())
                except Exception as exc:
                    self._note("engine_errors", "note_data_received", exc, peer)
        if self.on_data is None:
            self.counters["rx_data_dropped"] += 1
            return
        try:
            self.on_data(datagram, peer)
        except Exception as exc:
            self._note("callback_errors", "on_data", exc, peer)

    # -- output ------------------------------------------------------------------------------

    def send_data(self, payload: bytes, peer: Peer) -> None:
        """Send an already framed data message (L2TP header + PPP frame) to ``peer``."""
        self._write(payload, peer, "tx_data")

    def call(self, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run an endpoint command with ``now=reactor.seconds()``, then flush; return its value.

        Exceptions from the command (e.g. ``LocalProtocolError`` for an unknown tunnel) are
        the caller's bug and propagate; the output produced so far is still flushed.
        """
        try:
            return command(*args, now=self.reactor.seconds(), **kwargs)
        finally:
            self.flush()

    def flush(self) -> None:
        """Write pending datagrams, deliver pending events, re-arm the timer."""
        try:
            out = list(self.endpoint.datagrams_to_send(self.reactor.seconds()))
        except Exception as exc:
            self._note("engine_errors", "datagrams_to_send", exc, None)
            out = []
        for data, peer in out:
            self._write(data, peer, "tx_control")
        while True:
            try:
                event = self.endpoint.next_event()
            except Exception as exc:
                self._note("engine_errors", "next_event", exc, None)
                break
            if event is None:
                break
            if self.on_event is None:
                continue
            try:
                self.on_event(event)
            except Exception as exc:
                self._note("callback_errors", "on_event", exc, None)
        self.timer.rearm()

    def _write(self, data: bytes, peer: Peer, counter: str) -> None:
        transport: Any = self.transport
        if transport is None:
            self.counters["tx_errors"] += 1
            return
        try:
            transport.write(data, peer)
        except OSError as exc:
            # ECONNREFUSED from an earlier ICMP, ENETUNREACH, EAGAIN on a full buffer: the
            # reliable-delivery layer retransmits control messages; data frames are lost.
            self._note("tx_errors", "write", exc, peer)
            return
        self.counters[counter] += 1

    def connectionRefused(self) -> None:  # Twisted override
        """ICMP port unreachable on an earlier write: ignored (retransmission copes)."""

    # -- errors ------------------------------------------------------------------------------

    def _note(self, counter: str, where: str, exc: BaseException, peer: Peer | None) -> None:
        self.counters[counter] += 1
        kind = f"{where}:{type(exc).__name__}"
        if kind in self._logged:
            return
        self._logged.add(kind)
        _log.failure(
            "l2tp {where} raised {kind}: {exc} (peer {peer}); counted in {counter}, "
            "further ones of this kind are not logged",
            where=where,
            kind=type(exc).__name__,
            exc=str(exc)[:200],
            peer=peer,
            counter=counter,
        )
