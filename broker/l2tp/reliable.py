"""Reliable delivery of control messages for one tunnel (RFC 2661 section 5.8, Appendix A).

Sans-I/O: the tunnel hands over encoded messages (``send``), feeds the Ns/Nr of every received
control message (``receive``) and drains datagrams (``datagrams_to_send``). This layer

- numbers messages (Ns from 0, modulo 2**16) and holds them until the peer's Nr covers them;
- sends no more than ``min(cwnd, peer window)`` unacknowledged messages (slow start and
  congestion avoidance, Appendix A; the peer's window is 4 when it sent no Receive Window Size);
- retransmits the oldest unacknowledged message on the configured schedule, one step per
  expiry, rewriting its Nr; when the last step expires it sets ``exhausted``;
- delivers received messages to the tunnel once, in order; holds out-of-order ones that fall
  inside our receive window; acknowledges duplicates at once (ZLB) and new messages after a
  short delay unless an outgoing message carries the acknowledgement first (at once when
  half our receive window is waiting for it, so a bulk sender never stalls on the delay).

Messages are encoded once; retransmissions only patch the Nr field of the header
(control messages always carry L=1, S=1, O=0, so Nr sits at octets 10-11, RFC 2661 3.1).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from broker.l2tp.serial import HALF, seq_add, seq_diff

T = TypeVar("T")

#: RFC 2661 3.1: flags(2) length(2) tunnel(2) session(2) Ns(2) Nr(2)
NR_OFFSET = 10
_U16 = struct.Struct("!H")
#: RFC 2661 5.8: assume a window of 4 when the peer sent no Receive Window Size AVP
DEFAULT_PEER_WINDOW = 4
_COUNTERS = (
    "control_sent",
    "retransmits",
    "control_received",
    "duplicates",
    "out_of_order",
    "out_of_window",
    "zlb_sent",
    "bad_nr",
)


class ReliableTransport(Generic[T]):
    """Sliding-window transport state of one control connection."""

    def __init__(
        self,
        *,
        make_zlb: Callable[[int, int], bytes],
        retransmit: tuple[float, ...] = (1, 2, 4, 8, 8),
        receive_window: int = 8,
        peer_window: int = DEFAULT_PEER_WINDOW,
        zlb_delay: float = 0.1,
        counters: dict[str, int] | None = None,
    ) -> None:
        if not retransmit:
            raise ValueError("empty retransmit schedule")
        self._make_zlb = make_zlb
        self._schedule = retransmit
        self.receive_window = receive_window
        self.peer_window = peer_window
        self.zlb_delay = zlb_delay
        self.next_ns = 0  # Ns of the next new message
        self.expected = 0  # Nr: the Ns we expect next from the peer
        self.cwnd = 1.0
        self.ssthresh = float(peer_window)
        self.exhausted = False
        self._unsent: deque[tuple[int, bytearray]] = deque()
        self._inflight: deque[tuple[int, bytearray]] = deque()
        self._retry = 0
        self._rtx_deadline: float | None = None
        self._ack_due: float | None = None
        self._held: dict[int, T] = {}
        self._unacked_rx = 0  # messages delivered since our last acknowledgement went out
        self._out: list[bytes] = []
        self._had_loss = False
        #: When a list is set, the time from first transmission to acknowledgement of every
        #: message acknowledged without a retransmission is appended (seconds).
        self.ack_samples: list[float] | None = None
        self._sent_at: dict[int, float] = {}
        #: shared with the endpoint when given (one dict for every tunnel)
        self.counters: dict[str, int] = {} if counters is None else counters
        for key in _COUNTERS:
            self.counters.setdefault(key, 0)

    # -- configuration --------------------------------------------------------------------
    def set_peer_window(self, window: int) -> None:
        """The peer's Receive Window Size AVP (RFC 2661 4.4.3); caps cwnd and ssthresh."""
        self.peer_window = max(1, window)
        if not self._had_loss:
            self.ssthresh = float(self.peer_window)  # Appendix A: initialised to the window
        else:
            self.ssthresh = min(self.ssthresh, float(self.peer_window))
        self.cwnd = min(self.cwnd, float(self.peer_window))

    # -- state ---------------------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        """Messages queued or sent but not yet acknowledged."""
        return len(self._unsent) + len(self._inflight)

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def window(self) -> int:
        """How many messages may be unacknowledged right now."""
        return max(1, min(int(self.cwnd), self.peer_window))

    def get_timer(self) -> float | None:
        if self._rtx_deadline is None:
            return self._ack_due
        if self._ack_due is None:
            return self._rtx_deadline
        return min(self._rtx_deadline, self._ack_due)

    # -- sending -------------------------------------------------------------------------
    def send(self, build: Callable[[int], bytes], now: float) -> int:
        """Queue one non-ZLB message; ``build(ns)`` encodes it (its Nr is patched on send)."""
        ns = self.next_ns
        self.next_ns = seq_add(ns, 1)
        self._unsent.append((ns, bytearray(build(ns))))
        self._pump(now)
        return ns

    def ack_now(self, now: float) -> None:
        """Acknowledge at once (ZLB on the next drain) unless a message carries it first."""
        self._schedule_ack(now)

    def _transmit(self, data: bytearray) -> None:
        _U16.pack_into(data, NR_OFFSET, self.expected)
        self._out.append(bytes(data))
        self._ack_due = None  # this message carries the acknowledgement
        self._unacked_rx = 0

    def _pump(self, now: float) -> None:
        window = self.window
        while self._unsent and len(self._inflight) < window:
            item = self._unsent.popleft()
            self._inflight.append(item)
            self._transmit(item[1])
            if self.ack_samples is not None:
                self._sent_at[item[0]] = now
            self.counters["control_sent"] += 1
            if self._rtx_deadline is None:
                self._retry = 0
                self._rtx_deadline = now + self._schedule[0]

    def datagrams_to_send(self, now: float) -> list[bytes]:
        if self._ack_due is not None and self._ack_due <= now:
            self._emit_zlb()
        out = self._out
        self._out = []
        return out

    def _emit_zlb(self) -> None:
        self._out.append(self._make_zlb(self.next_ns, self.expected))
        self.counters["zlb_sent"] += 1
        self._ack_due = None
        self._unacked_rx = 0

    # -- receiving -----------------------------------------------------------------------
    def receive(self, ns: int, nr: int, is_zlb: bool, payload: T, now: float) -> list[T]:
        """Process one received control message; returns the messages now deliverable."""
        self._process_nr(nr, now)
        delivered: list[T] = []
        if not is_zlb:
            self.counters["control_received"] += 1
            d = seq_diff(ns, self.expected)
            if d == 0:
                delivered.append(payload)
                self.expected = seq_add(self.expected, 1)
                while self.expected in self._held:
                    delivered.append(self._held.pop(self.expected))
                    self.expected = seq_add(self.expected, 1)
                self._unacked_rx += len(delivered)
                # Delay the ZLB so a reply can carry the ack, but not once half the peer's
                # allowance (our receive window) waits on it: the peer would stall.
                if self._unacked_rx >= max(1, self.receive_window // 2):
                    self._schedule_ack(now)
                else:
                    self._schedule_ack(now + self.zlb_delay)
            elif d >= HALF:
                # "less than or equal to" the last received: a duplicate (RFC 2661 5.8)
                self.counters["duplicates"] += 1
                self._schedule_ack(now)
            elif d < self.receive_window:
                if ns not in self._held:
                    self._held[ns] = payload
                    self.counters["out_of_order"] += 1
                self._schedule_ack(now + self.zlb_delay)
            else:
                self.counters["out_of_window"] += 1
        self._pump(now)
        return delivered

    def _schedule_ack(self, when: float) -> None:
        if self._ack_due is None or when < self._ack_due:
            self._ack_due = when

    def _process_nr(self, nr: int, now: float) -> None:
        if not self._inflight:
            return
        head = self._inflight[0][0]
        n = seq_diff(nr, head)
        if n == 0:
            return
        if n > len(self._inflight):
            self.counters["bad_nr"] += 1
            return
        samples = self.ack_samples
        for _ in range(n):
            acked = self._inflight.popleft()[0]
            if samples is not None:
                sent = self._sent_at.pop(acked, None)
                if sent is not None:
                    samples.append(now - sent)
            if self.cwnd < self.ssthresh:
                self.cwnd += 1.0  # slow start (Appendix A)
            else:
                self.cwnd += 1.0 / self.cwnd  # congestion avoidance
            self.cwnd = min(self.cwnd, float(self.peer_window))
        self._retry = 0
        self._rtx_deadline = now + self._schedule[0] if self._inflight else None

    # -- timers --------------------------------------------------------------------------
    def handle_timer(self, now: float) -> None:
        deadline = self._rtx_deadline
        if deadline is not None and now >= deadline and self._inflight:
            self._retry += 1
            if self._retry >= len(self._schedule):
                self.exhausted = True
                self._rtx_deadline = None
            else:
                self._had_loss = True
                self._sent_at.clear()  # a retransmitted message gives no clean sample
                self.ssthresh = max(1.0, self.cwnd / 2)  # Appendix A: congestion
                self.cwnd = 1.0
                self._transmit(self._inflight[0][1])
                self.counters["retransmits"] += 1
                self._rtx_deadline = deadline + self._schedule[self._retry]
        if self._ack_due is not None and now >= self._ack_due:
            self._emit_zlb()

    def drop_unsent(self) -> int:
        """Forget queued messages the peer has never seen (window-limited) and reuse their
        Ns, so a StopCCN queued next goes out right after what is already in flight."""
        if not self._unsent:
            return 0
        dropped = len(self._unsent)
        self.next_ns = self._unsent[0][0]
        self._unsent.clear()
        return dropped

    def stop(self) -> None:
        """Forget everything queued (tunnel cleared); acknowledgements still work."""
        self._unsent.clear()
        self._inflight.clear()
        self._sent_at.clear()
        self._rtx_deadline = None
