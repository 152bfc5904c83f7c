"""Many emulated PPPoE subscribers on ONE raw Ethernet interface (Twisted adapter).

Each :class:`~broker.sim.subscriber.Subscriber` has its own random locally administered
unicast MAC (:func:`random_local_mac`). The pool opens one AF_PACKET socket per PPPoE
ethertype (RFC 2516 §4: 0x8863 discovery, 0x8864 session) on the interface, joins it in
promiscuous mode for the socket's lifetime (PACKET_MR_PROMISC membership: frames to our
invented MACs would otherwise be filtered), and demultiplexes received frames by destination
MAC. Timers: one reactor delayed call over a heap of subscriber deadlines (lazy deletion), so
thousands of subscribers cost one ``IDelayedCall``.

Output is written after every batch of reads and every timer wake-up, only for the
subscribers that were touched. Nothing raised by an engine or callback reaches the reactor.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

from twisted.logger import Logger
from twisted.python.failure import Failure

from broker.adapters.faults import Faults
from broker.adapters.rawether import (
    PACKET_OUTGOING,
    LinuxRawSockets,
    RawReader,
    RawSocket,
    RawSocketFactory,
)
from broker.pppoe.constants import ETH_P_PPP_DISC, ETH_P_PPP_SES
from broker.sim.subscriber import Subscriber, SubscriberEvent
from broker.wire import format_mac

__all__ = ["PromiscRawSockets", "SubscriberPool", "random_local_mac"]

_log = Logger(namespace="broker.adapters.subscriber_pool")

#: linux/socket.h, linux/if_packet.h
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
_RECV_SIZE = 65535
_ETH_HDR = 14

EventHandler = Callable[[Subscriber, SubscriberEvent], None]


def random_local_mac(rand_bytes: Callable[[int], bytes]) -> bytes:
    """A random MAC with the locally administered bit set and the group bit clear (02:..)."""
    raw = bytearray(rand_bytes(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


class PromiscRawSockets(LinuxRawSockets):
    """:class:`LinuxRawSockets` that also receive frames for MACs other than the interface's.

    The membership belongs to the socket: closing it undoes it; the interface's own flags
    are never changed.
    """

    def open(self, interface: str, ethertype: int) -> RawSocket:
        sock = super().open(interface, ethertype)
        real = cast(socket.socket, sock)
        try:
            mreq = struct.pack("iHH8s", socket.if_nametoindex(interface), PACKET_MR_PROMISC, 0, b"")
            real.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        except OSError:
            real.close()
            raise
        return sock


class SubscriberPool:
    """Drives many :class:`Subscriber` engines over one interface."""

    def __init__(
        self,
        interface: str,
        reactor: Any,  # IReactorFDSet + IReactorTime
        *,
        sockets: RawSocketFactory | None = None,
        max_reads: int = 256,
        on_event: EventHandler | None = None,
    ) -> None:
        self.interface = interface
        self.reactor = reactor
        self.sockets: RawSocketFactory = sockets if sockets is not None else PromiscRawSockets()
        self.max_reads = max_reads
        self.on_event = on_event
        self.subscribers: dict[bytes, Subscriber] = {}
        self.counters: dict[str, int] = {}
        self._readers: dict[int, RawReader] = {}
        self._heap: list[tuple[float, int, bytes]] = []
        self._deadline: dict[bytes, float] = {}
        self._seq = 0
        self._call: Any = None
        self._call_at: float | None = None
        self._fault = Faults("subscriber pool", self.counters)

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> None:
        try:
            for ethertype in (ETH_P_PPP_DISC, ETH_P_PPP_SES):
                sock = self.sockets.open(self.interface, ethertype)
                reader = RawReader(
                    sock, self.interface, ethertype, self._read, self._lost, "subscriber-pool"
                )
                self._readers[ethertype] = reader
                self.reactor.addReader(reader)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        for reader in self._readers.values():
            self.reactor.removeReader(reader)
            with contextlib.suppress(OSError):
                reader.sock.close()
        self._readers.clear()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._call_at = None

    # -- subscribers ---------------------------------------------------------------------
    def add(self, sub: Subscriber) -> None:
        if sub.mac in self.subscribers:
            raise ValueError(f"MAC {format_mac(sub.mac)} already in the pool")
        self.subscribers[sub.mac] = sub

    def remove(self, sub: Subscriber) -> None:
        self.subscribers.pop(sub.mac, None)
        self._deadline.pop(sub.mac, None)

    def start(self, sub: Subscriber) -> None:
        self.apply(sub, sub.start)

    def apply(self, sub: Subscriber, command: Callable[[float], None]) -> None:
        """Run ``command(now)`` on ``sub`` (start, padt, power_off, ...) and flush it."""
        try:
            command(self.reactor.seconds())
        except Exception as exc:
            self._fault("command_errors", exc)
        self._flush(sub)
        self._arm()

    # -- output and timers ---------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _flush(self, sub: Subscriber) -> None:
        for frame in sub.frames_to_send():
            self._write(sub.mac, frame.dst, frame.ethertype, frame.payload)
        while (event := sub.next_event()) is not None:
            if self.on_event is not None:
                try:
                    self.on_event(sub, event)
                except Exception as exc:
                    self._fault("event_callback_errors", exc)
        # The callback may have issued commands: write those frames too.
        for frame in sub.frames_to_send():
            self._write(sub.mac, frame.dst, frame.ethertype, frame.payload)
        deadline = sub.get_timer()
        if deadline is None:
            self._deadline.pop(sub.mac, None)
        elif self._deadline.get(sub.mac) != deadline and sub.mac in self.subscribers:
            self._deadline[sub.mac] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, sub.mac))

    def _write(self, src: bytes, dst: bytes, ethertype: int, payload: bytes) -> None:
        reader = self._readers.get(ethertype)
        if reader is None:
            self._count("tx_no_socket")
            return
        try:
            reader.sock.send(dst + src + ethertype.to_bytes(2, "big") + payload)
        except OSError as exc:  # ENOBUFS and friends: PPPoE/PPP retransmit
            self._fault("tx_errors", exc)
            return
        self._count("tx_frames")

    def _arm(self) -> None:
        heap = self._heap
        while heap and self._deadline.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale entry
        if not heap:
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._call = None
            self._call_at = None
            return
        when = heap[0][0]
        if self._call is not None and self._call.active() and self._call_at == when:
            return
        delay = max(0.0, when - self.reactor.seconds())
        if self._call is not None and self._call.active():
            self._call.reset(delay)
        else:
            self._call = self.reactor.callLater(delay, self._fire)
        self._call_at = when

    def _fire(self) -> None:
        self._call = None
        self._call_at = None
        now = self.reactor.seconds()
        heap = self._heap
        due: list[Subscriber] = []
        while heap and heap[0][0] <= now:
            deadline, _, mac = heapq.heappop(heap)
            if self._deadline.get(mac) != deadline:
                continue
            del self._deadline[mac]
            sub = self.subscribers.get(mac)
            if sub is not None:
                due.append(sub)
        for sub in due:
            try:
                sub.handle_timer(now)
            except Exception as exc:
                self._fault("timer_errors", exc)
            self._flush(sub)
        self._arm()

    # -- input ---------------------------------------------------------------------------
    def _read(self, reader: RawReader) -> None:
        now = self.reactor.seconds()
        touched: dict[bytes, Subscriber] = {}
        # Session frames first, then discovery: a CHAP Failure and the PADT after it arrive
        # on two sockets and must be seen in that order. (A session frame that overtakes its
        # PADS is kept by the subscriber and replayed.)
        for ethertype in (ETH_P_PPP_SES, ETH_P_PPP_DISC):
            sock = self._readers.get(ethertype)
            if sock is not None:
                self._read_socket(sock, now, touched)
        for sub in touched.values():
            self._flush(sub)
        self._arm()

    def _read_socket(self, reader: RawReader, now: float, touched: dict[bytes, Subscriber]) -> None:
        subscribers = self.subscribers
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
            if isinstance(addr, tuple) and len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            if len(data) < _ETH_HDR:
                self._count("runts")
                continue
            sub = subscribers.get(data[0:6])
            if sub is None:
                self._count("not_ours")
                continue
            ethertype = int.from_bytes(data[12:14], "big")
            if ethertype != reader.ethertype:
                self._count("wrong_ethertype")
                continue
            self._count("rx_frames")
            try:
                sub.receive_frame(data[6:12], ethertype, data[_ETH_HDR:], now)
            except Exception as exc:  # an engine bug must not reach the reactor
                self._fault("frame_errors", exc)
            touched[sub.mac] = sub

    def _lost(self, reader: RawReader, reason: Failure) -> None:
        self._count("connection_lost")
        self._readers.pop(reader.ethertype, None)
