"""Raw Ethernet adapter for PPPoE (RFC 2516 §4): AF_PACKET sockets on access interfaces.

For every configured interface (a VLAN sub-interface such as ``eth1.100`` is just an
interface) the adapter opens one ``AF_PACKET``/``SOCK_RAW`` socket for ETH_P_PPP_DISC
(0x8863) and one for ETH_P_PPP_SES (0x8864), registers them with the reactor as
``IReadDescriptor``\\ s, and on every wakeup reads up to ``max_reads`` frames without blocking:

- Discovery frames go to :meth:`DiscoveryServer.receive_discovery`; afterwards every
  ``frames_to_send()`` is written and every ``next_event()`` handed to ``on_event``.
- Session frames addressed to the interface are decoded and given to
  ``on_session_frame(interface, src_mac, session_id, ppp)`` (set by the call flow).

Frames the kernel loops back to us (PACKET_OUTGOING) are skipped, and so are frames for other
hosts (PACKET_OTHERHOST), which includes frames tagged with a VLAN that has no sub-interface:
a parent interface never answers a tagged PADI untagged. System calls are injected
through :class:`RawSocketFactory`, so tests run without root on fake sockets. Nothing raised by
the engine or a callback reaches the reactor: it is counted in ``counters`` and logged.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from broker.adapters.faults import Faults
from broker.pppoe.codec import decode_session_frame, encode_session_frame
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.pppoe.discovery import DiscoveryServer, Event, PppoeSessionKey
from broker.wire import MacAddress, RemoteProtocolError, format_mac

__all__ = [
    "LinuxRawSockets",
    "RawEthernetPort",
    "RawReader",
    "RawSocket",
    "RawSocketFactory",
    "SessionFrameHandler",
]

_log = Logger(namespace="broker.adapters.rawether")

ETH_HEADER_LEN = 14
#: linux/if_packet.h: pkttype of unicast frames for another host (promiscuous mode, or a
#: VLAN-tagged frame whose VLAN has no sub-interface: the kernel marks those OTHERHOST).
PACKET_OTHERHOST = 3
#: linux/if_packet.h: pkttype of frames we sent ourselves, seen by packet taps.
PACKET_OUTGOING = 4
_RECV_SIZE = 65535
#: Receive buffer asked for on each raw socket.
DEFAULT_RCVBUF = 4 * 1024 * 1024

SessionFrameHandler = Callable[[str, MacAddress, int, bytes], None]


class RawSocket(Protocol):
    """The part of a ``socket.socket`` (AF_PACKET, non-blocking) the adapter uses."""

    def fileno(self) -> int: ...

    def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]: ...

    def send(self, data: bytes, /) -> int: ...

    def close(self) -> None: ...


class RawSocketFactory(Protocol):
    def open(self, interface: str, ethertype: int) -> RawSocket: ...

    def mac_address(self, interface: str) -> MacAddress: ...


class LinuxRawSockets:
    """Real AF_PACKET sockets (root or CAP_NET_RAW)."""

    def __init__(self, rcvbuf: int = DEFAULT_RCVBUF) -> None:
        self.rcvbuf = rcvbuf

    def open(self, interface: str, ethertype: int) -> RawSocket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        try:
            sock.bind((interface, ethertype))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        # A bigger queue absorbs PADI bursts; FORCE (root) ignores rmem_max, else best effort.
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        for opt in (force, socket.SO_RCVBUF):
            if opt is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, self.rcvbuf)
                break
            except OSError:
                continue
        return sock

    def mac_address(self, interface: str) -> MacAddress:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
            sock.bind((interface, 0))
            return MacAddress(bytes(sock.getsockname()[4])[:6])


@implementer(IReadDescriptor)
class RawReader:
    """One raw socket registered with the reactor; readiness and loss go to callbacks.

    Shared by :class:`RawEthernetPort` and the subscriber simulator's pool.
    """

    def __init__(
        self,
        sock: RawSocket,
        interface: str,
        ethertype: int,
        on_read: Callable[[RawReader], None],
        on_lost: Callable[[RawReader, Failure], None],
        name: str = "rawether",
    ) -> None:
        self.sock = sock
        self.interface = interface
        self.ethertype = ethertype
        self._on_read = on_read
        self._on_lost = on_lost
        self._name = name

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:  # Twisted's name
        self._on_read(self)

    def connectionLost(self, reason: Failure) -> None:  # Twisted's name
        self._on_lost(self, reason)

    def logPrefix(self) -> str:  # Twisted's name
        return f"{self._name}:{self.interface}:{self.ethertype:04x}"


class RawEthernetPort(Service):
    """Runs a :class:`DiscoveryServer` on raw sockets on ``interfaces``."""

    def __init__(
        self,
        engine: DiscoveryServer,
        interfaces: Sequence[str],
        reactor: Any,  # IReactorFDSet + IReactorTime
        *,
        sockets: RawSocketFactory | None = None,
        max_reads: int = 64,
        on_session_frame: SessionFrameHandler | None = None,
        on_event: Callable[[Event], None] | None = None,
        tap: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        self.engine = engine
        self.interfaces = tuple(interfaces)
        self.reactor = reactor
        self.sockets: RawSocketFactory = sockets if sockets is not None else LinuxRawSockets()
        self.max_reads = max_reads
        self.on_session_frame = on_session_frame
        self.on_event = on_event
        #: ``tap(direction "rx"/"tx", interface, frame)``: sees every frame (tests, tracing).
        self.tap = tap
        self.local_mac: dict[str, MacAddress] = {}
        self.counters: dict[str, int] = {}
        self._readers: dict[tuple[str, int], RawReader] = {}
        self._fault = Faults("rawether", self.counters)

    # -- service -------------------------------------------------------------------------
    def startService(self) -> None:  # Twisted's name
        try:
            for ifname in self.interfaces:
                mac = self.sockets.mac_address(ifname)
                self.local_mac[ifname] = mac
                self.engine.set_local_mac(ifname, mac)
                for ethertype in (ETH_P_PPP_DISC, ETH_P_PPP_SES):
                    sock = self.sockets.open(ifname, ethertype)
                    reader = RawReader(sock, ifname, ethertype, self._read, self._lost)
                    self._readers[(ifname, ethertype)] = reader
                    self.reactor.addReader(reader)
                _log.info(
                    "PPPoE listening on {interface} ({mac})", interface=ifname, mac=format_mac(mac)
                )
        except OSError:
            self._close_all()
            raise
        super().startService()  # type: ignore[no-untyped-call]

    def stopService(self) -> None:  # Twisted's name
        self._close_all()
        super().stopService()  # type: ignore[no-untyped-call]

    def _close_all(self) -> None:
        for reader in self._readers.values():
            self.reactor.removeReader(reader)
            with contextlib.suppress(OSError):
                reader.sock.close()
        self._readers.clear()

    # -- commands for the call flow ------------------------------------------------------
    def send_session_frame(
        self, interface: str, dst: MacAddress, session_id: int, ppp: bytes
    ) -> None:
        """Send one PPP frame (starting at the protocol field) in session ``session_id``."""
        self._write(interface, dst, ETH_P_PPP_SES, encode_session_frame(session_id, ppp))

    def send_frame(self, interface: str, dst: MacAddress, ethertype: int, payload: bytes) -> None:
        """Send one PPPoE frame (discovery or session stage) built by the caller."""
        self._write(interface, dst, ethertype, payload)

    def terminate(self, key: PppoeSessionKey, reason: str) -> None:
        """PADT to the subscriber (RFC 2516 §5.5) and forget the session."""
        self.engine.terminate(key, reason, self.reactor.seconds())
        self.flush()

    def setup_done(self, key: PppoeSessionKey) -> None:
        self.engine.setup_done(key)

    def flush(self) -> None:
        """Write the engine's pending frames and deliver its events."""
        for frame in self.engine.frames_to_send():
            self._write(frame.interface, frame.dst, frame.ethertype, frame.payload)
        while (event := self.engine.next_event()) is not None:
            self._log_event(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception as exc:  # a callback bug must not kill the reactor
                    self._fault("event_callback_errors", exc)

    # -- I/O -----------------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def _read(self, reader: RawReader) -> None:
        for _ in range(self.max_reads):
            try:
                data, addr = reader.sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    self._count("interface_down")
                self._fault("read_errors", exc)
                break
            pkttype = addr[2] if isinstance(addr, tuple) and len(addr) > 2 else 0
            if pkttype == PACKET_OUTGOING:
                continue
            if pkttype == PACKET_OTHERHOST:
                self._count("other_host")
                continue
            self._count("rx_frames")
            try:
                self._frame(reader, data)
            except Exception as exc:  # never let a bad frame or callback reach the reactor
                self._fault("frame_errors", exc)
        try:
            self.flush()
        except Exception as exc:
            self._fault("flush_errors", exc)

    def _frame(self, reader: RawReader, frame: bytes) -> None:
        if self.tap is not None:
            self.tap("rx", reader.interface, frame)
        if len(frame) < ETH_HEADER_LEN:
            self._count("runts")
            return
        dst, src = MacAddress(frame[0:6]), MacAddress(frame[6:12])
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype != reader.ethertype:
            self._count("wrong_ethertype")  # e.g. a VLAN tag on the parent interface
            return
        payload = frame[ETH_HEADER_LEN:]
        if ethertype == ETH_P_PPP_DISC:
            self.engine.receive_discovery(
                reader.interface, src, dst, payload, self.reactor.seconds()
            )
            return
        if dst != self.local_mac.get(reader.interface):
            self._count("session_not_for_us")
            return
        try:
            session_id, ppp = decode_session_frame(payload)
        except RemoteProtocolError:
            self._count("malformed_session")
            return
        if self.on_session_frame is None:
            self._count("session_unhandled")
            return
        self.on_session_frame(reader.interface, src, session_id, ppp)

    def _write(self, interface: str, dst: MacAddress, ethertype: int, payload: bytes) -> None:
        reader = self._readers.get((interface, ethertype))
        if reader is None:
            self._count("tx_no_socket")
            return
        frame = dst + self.local_mac[interface] + ethertype.to_bytes(2, "big") + payload
        if self.tap is not None:
            self.tap("tx", interface, frame)
        try:
            reader.sock.send(frame)
        except OSError as exc:  # ENOBUFS, ENETDOWN, EAGAIN: drop, PPPoE/PPP retransmit
            self._fault("tx_errors", exc)
            return
        self._count("tx_frames")

    def _lost(self, reader: RawReader, reason: Failure) -> None:
        self._count("connection_lost")
        self._readers.pop((reader.interface, reader.ethertype), None)

    def _log_event(self, event: Event) -> None:
        key = event.key
        _log.info(
            "PPPoE {event} {interface} mac={mac} session={session_id}",
            event=type(event).__name__,
            interface=key.interface,
            mac=format_mac(key.mac),
            session_id=key.session_id,
        )
