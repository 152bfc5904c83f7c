"""Many L2TP tunnels on one local UDP socket, demultiplexed by tunnel id (RFC 2661 3.1, 8.1).

Sans-I/O: the adapter calls :meth:`L2tpEndpoint.receive_datagram` for every control
datagram, writes what :meth:`L2tpEndpoint.datagrams_to_send` returns, re-arms one timer from
:meth:`L2tpEndpoint.get_timer` and drains :meth:`L2tpEndpoint.next_event`.

- A datagram with Tunnel ID 0 is an SCCRQ (or a StopCCN sent before the peer learnt our id,
  RFC 2661 4.4.3 Assigned Tunnel ID): it is matched by (peer address, peer's Assigned Tunnel
  ID) so a retransmitted SCCRQ reaches the tunnel it created instead of opening another.
- Incoming SCCRQs are answered only when ``lns_config`` is set (LNS role); a collision with
  our own outstanding SCCRQ to the same peer is settled by the Tie Breaker (RFC 2661 4.4.3).
- Timers: a heap of (deadline, tunnel id) with lazy deletion; output: a set of tunnels with
  pending datagrams. Receiving and sending cost O(1) dictionary work per message.
- Malformed input is counted in :attr:`L2tpEndpoint.counters` and dropped; nothing raises.
- Stale tunnels (issue 9 item 4): after a restart the LNS still sends HELLOs, CDNs and
  retransmissions on tunnels this process never knew. A control message (not a ZLB, not a
  StopCCN) for an unknown non-zero Tunnel ID is answered with a StopCCN (result 2, error 1 "no
  control connection exists", RFC 2661 4.4.2) sent with Tunnel ID 0 and the unknown id in the
  Assigned Tunnel ID AVP, which is how a peer identifies the tunnel when the sender does not
  know the peer's id (RFC 2661 4.4.3, 5.7 Assigned Tunnel ID). Ns/Nr are taken from the
  stale message (its Nr is the Ns the peer expects). Rate-limited per (peer, tunnel id) and
  globally (``stale_interval``, ``stale_per_second``); on by default, in both roles (an LNS
  that restarted clears the LAC's stale tunnel the same way).
"""

from __future__ import annotations

import heapq
import os
from collections import deque
from collections.abc import Callable

from broker.l2tp.avps import (
    L2tpError,
    UnknownMandatoryAvp,
    UnknownMessageType,
    parse_uint16,
    parse_uint64,
    result_code_avp,
    uint16_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control, peek_header
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, ErrorCode, MessageType, StopCcnResult
from broker.l2tp.events import L2tpEvent, Peer, TunnelClosed
from broker.l2tp.session import SessionPolicy
from broker.l2tp.tunnel import TunnelConnection, TunnelPolicy
from broker.l2tp.tunnel_fsm import TunnelState
from broker.wire import LocalProtocolError, RemoteProtocolError

__all__ = ["L2tpEndpoint", "Peer"]


class L2tpEndpoint:
    """Every tunnel of one local UDP address, in the LAC role and optionally the LNS role."""

    def __init__(
        self,
        *,
        rand_bytes: Callable[[int], bytes] = os.urandom,
        lns_config: TunnelConfig | None = None,
        lns_policy: SessionPolicy | None = None,
        lns_tunnel_policy: TunnelPolicy | None = None,
        strict: bool = False,
        stale_stopccn: bool | None = None,
        stale_interval: float = 1.0,
        stale_per_second: float = 50.0,
    ) -> None:
        self._rand = rand_bytes
        self.lns_config = lns_config
        self.lns_policy = lns_policy
        self.lns_tunnel_policy = lns_tunnel_policy
        #: re-raise internal errors instead of counting them (tests)
        self.strict = strict
        self.tunnels: dict[int, TunnelConnection] = {}
        self._by_peer: dict[tuple[Peer, int], int] = {}
        self._key_of: dict[int, tuple[Peer, int]] = {}
        self._initiated: dict[str, set[int]] = {}
        self._heap: list[tuple[float, int]] = []
        self._scheduled: dict[int, float] = {}
        self._dirty: dict[int, None] = {}
        self._events: deque[L2tpEvent] = deque()
        #: answer control messages on unknown tunnels with a StopCCN (see module docstring)
        self.stale_stopccn = True if stale_stopccn is None else stale_stopccn
        self.stale_interval = stale_interval
        self.stale_per_second = stale_per_second
        self._stale_seen: dict[tuple[Peer, int], float] = {}
        self._stale_tokens = stale_per_second
        self._stale_at = 0.0
        self._stale_out: list[tuple[bytes, Peer]] = []
        self.counters: dict[str, int] = {
            "datagrams_received": 0,
            "malformed": 0,
            "data_ignored": 0,
            "unknown_tunnel": 0,
            "wrong_peer": 0,
            "tie_breaker": 0,
            "internal_errors": 0,
            "stale_stopccn_sent": 0,
            "stale_rate_limited": 0,
        }

    # -- commands ------------------------------------------------------------------------
    def open_tunnel(self, peer: Peer, config: TunnelConfig, now: float) -> int:
        """Start a control connection as initiator (LAC): the SCCRQ is queued."""
        tid = self._new_tunnel_id()
        t = self._make_tunnel(tid, peer, config, now, incoming=False)
        self._initiated.setdefault(peer[0], set()).add(tid)
        t.open(now)
        self._touch(t)
        return tid

    def open_session(self, tunnel_id: int, params: CallParams, now: float) -> int:
        """A new incoming call on a tunnel (LAC): ICRQ once the tunnel is established."""
        t = self._tunnel(tunnel_id)
        sid = t.open_session(params, now)
        self._touch(t)
        return sid

    def close_session(
        self,
        tunnel_id: int,
        session_id: int,
        result: int,
        error: int | None,
        message: str,
        now: float,
    ) -> None:
        """Clear a call with a CDN; a gone tunnel or session is silently ignored."""
        t = self.tunnels.get(tunnel_id)
        if t is None:
            return
        t.close_session(session_id, result, error, message, now)
        self._touch(t)

    def close_tunnel(
        self, tunnel_id: int, result: int, error: int | None, message: str, now: float
    ) -> None:
        """Clear a tunnel and its sessions with a StopCCN; state is held 31 s afterwards."""
        t = self.tunnels.get(tunnel_id)
        if t is None:
            return
        t.close(result, error, message, now)
        self._touch(t)

    def note_data_received(self, tunnel_id: int, now: float) -> None:
        """A data message arrived (the adapter saw it): postpones this tunnel's HELLO."""
        t = self.tunnels.get(tunnel_id)
        if t is not None:
            t.note_activity(now)

    # -- queries -------------------------------------------------------------------------
    def tunnel_info(self, tunnel_id: int) -> tuple[Peer, int, str, int] | None:
        """(peer, peer tunnel id, state name, session count), or None when unknown."""
        t = self.tunnels.get(tunnel_id)
        if t is None:
            return None
        return (t.peer, t.peer_tunnel_id, t.state.name, len(t.sessions))

    def next_event(self) -> L2tpEvent | None:
        return self._events.popleft() if self._events else None

    # -- input ---------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        """One UDP payload from ``peer``. Never raises: problems are counted and dropped."""
        self.counters["datagrams_received"] += 1
        try:
            self._receive(data, peer, now)
        except Exception:
            self.counters["internal_errors"] += 1
            if self.strict:
                raise

    def _receive(self, data: bytes, peer: Peer, now: float) -> None:
        try:
            is_control, tid, _sid = peek_header(data)
        except RemoteProtocolError:
            self.counters["malformed"] += 1
            return
        if not is_control:
            self.counters["data_ignored"] += 1
            return
        if tid == 0:
            self._receive_unaddressed(data, peer, now)
            return
        t = self.tunnels.get(tid)
        if t is None:
            self.counters["unknown_tunnel"] += 1
            if self.stale_stopccn:
                self._answer_stale(data, tid, peer, now)
            return
        if peer != t.peer:
            if peer[0] == t.peer[0] and t.state is TunnelState.WAIT_CTL_REPLY:
                t.peer = peer  # RFC 2661 8.1: the responder may answer from another port
            else:
                self.counters["wrong_peer"] += 1
                return
        try:
            msg = decode_control(data, t.config.secret)
        except L2tpError as exc:
            self.counters["malformed"] += 1
            if exc.ns is not None and _is_ackable(exc):
                t.receive_error(exc, now)
                self._after_input(t)
            return
        except RemoteProtocolError:
            self.counters["malformed"] += 1
            return
        t.receive(msg, now)
        self._after_input(t)

    def _receive_unaddressed(self, data: bytes, peer: Peer, now: float) -> None:
        secret = None if self.lns_config is None else self.lns_config.secret
        try:
            msg = decode_control(data, secret)
            atid_avp = msg.get(AvpType.ASSIGNED_TUNNEL_ID)
            atid = 0 if atid_avp is None else parse_uint16(atid_avp.value)
        except RemoteProtocolError:
            self.counters["malformed"] += 1
            return
        known = self._by_peer.get((peer, atid)) if atid else None
        if known is not None:  # retransmitted SCCRQ, or StopCCN before our id was known
            t = self.tunnels[known]
            t.receive(msg, now)
            self._after_input(t)
            return
        if (
            msg.message_type is MessageType.SCCRQ
            and self.lns_config is not None
            and atid
            and msg.ns == 0
            and self._wins_tie(msg, peer, now)
        ):
            tid = self._new_tunnel_id()
            t = self._make_tunnel(tid, peer, self.lns_config, now, incoming=True)
            self._register(t, atid)
            t.receive(msg, now)
            self._after_input(t)
            return
        self.counters["unknown_tunnel"] += 1

    def _answer_stale(self, data: bytes, tid: int, peer: Peer, now: float) -> None:
        """StopCCN for a message on a tunnel we do not know (a tunnel of a previous run)."""
        try:
            msg = decode_control(data, None)
        except RemoteProtocolError:
            # hidden AVPs we cannot reveal: the header still says what we need, but the
            # message type is unknown; only answer messages that decode
            return
        if msg.message_type is None or msg.message_type is MessageType.StopCCN:
            return  # a ZLB acknowledges nothing of ours; never answer a StopCCN
        key = (peer, tid)
        last = self._stale_seen.get(key)
        self._stale_tokens = min(
            self.stale_per_second,
            self._stale_tokens + (now - self._stale_at) * self.stale_per_second,
        )
        self._stale_at = now
        if (last is not None and now - last < self.stale_interval) or self._stale_tokens < 1.0:
            self.counters["stale_rate_limited"] += 1
            return
        self._stale_tokens -= 1.0
        if len(self._stale_seen) >= 4096:
            self._stale_seen = {
                k: v for k, v in self._stale_seen.items() if now - v < self.stale_interval
            }
        self._stale_seen[key] = now
        stop = ControlMessage(
            0,
            0,
            msg.nr,
            (msg.ns + 1) & 0xFFFF,
            MessageType.StopCCN,
            (
                uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, tid),
                result_code_avp(
                    int(StopCcnResult.GENERAL_ERROR),
                    int(ErrorCode.NO_CONTROL_CONNECTION),
                    "no such tunnel (restarted)",
                ),
            ),
        )
        self._stale_out.append((encode_control(stop), peer))
        self.counters["stale_stopccn_sent"] += 1

    def _wins_tie(self, msg: ControlMessage, peer: Peer, now: float) -> bool:
        """RFC 2661 4.4.3 Tie Breaker: may the incoming SCCRQ proceed?"""
        ours = [
            self.tunnels[tid]
            for tid in self._initiated.get(peer[0], ())
            if tid in self.tunnels
            and self.tunnels[tid].state is TunnelState.WAIT_CTL_REPLY
            and self.tunnels[tid].tie_breaker is not None
        ]
        if not ours:
            return True
        tb = msg.get(AvpType.TIE_BREAKER)
        try:
            theirs = None if tb is None else parse_uint64(tb.value)
        except RemoteProtocolError:
            theirs = None
        self.counters["tie_breaker"] += 1
        if theirs is None:
            return False  # we sent one, they did not: we win, their SCCRQ is discarded
        incoming_wins = True
        for t in ours:
            assert t.tie_breaker is not None
            mine = int.from_bytes(t.tie_breaker, "big")
            if mine <= theirs:
                incoming_wins = False
            if theirs <= mine:  # lower value wins; equal: both sides discard
                self._discard_lost_tunnel(t, now)
        return incoming_wins

    def _discard_lost_tunnel(self, t: TunnelConnection, now: float) -> None:
        t.transport.stop()
        for session in list(t.sessions.values()):
            t.close_session(session.session_id, 0, None, "tie breaker lost", now)
        t.sessions.clear()
        t.state = TunnelState.CLOSED
        self._events.append(TunnelClosed(t.tunnel_id, "tie-breaker-lost", None, None, "", True))
        self._touch(t)

    # -- timers and output ---------------------------------------------------------------
    def get_timer(self) -> float | None:
        heap = self._heap
        while heap and self._scheduled.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        due: list[TunnelConnection] = []
        while heap and heap[0][0] <= now:
            deadline, tid = heapq.heappop(heap)
            if self._scheduled.get(tid) != deadline:
                continue
            del self._scheduled[tid]
            t = self.tunnels.get(tid)
            if t is not None:
                due.append(t)
        for t in due:
            t.handle_timer(now)
            self._touch(t)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]:
        out: list[tuple[bytes, Peer]] = []
        if self._stale_out:
            out, self._stale_out = self._stale_out, []
        dirty = self._dirty
        self._dirty = {}
        for tid in dirty:
            t = self.tunnels.get(tid)
            if t is None:
                continue
            for data in t.datagrams_to_send(now):
                out.append((data, t.peer))
            if t.closed:
                self._remove(t)
            else:
                self._reschedule(t)
        return out

    # -- bookkeeping ---------------------------------------------------------------------
    def _make_tunnel(
        self, tid: int, peer: Peer, config: TunnelConfig, now: float, *, incoming: bool
    ) -> TunnelConnection:
        t = TunnelConnection(
            tunnel_id=tid,
            peer=peer,
            config=config,
            now=now,
            events=self._events,
            rand_bytes=self._rand,
            counters=self.counters,
            accept_calls=incoming,
            session_policy=self.lns_policy if incoming else None,
            tunnel_policy=self.lns_tunnel_policy if incoming else None,
        )
        self.tunnels[tid] = t
        return t

    def _tunnel(self, tunnel_id: int) -> TunnelConnection:
        t = self.tunnels.get(tunnel_id)
        if t is None:
            raise LocalProtocolError(f"no tunnel {tunnel_id}")
        return t

    def _new_tunnel_id(self) -> int:
        if len(self.tunnels) >= 0xFFFF:
            raise LocalProtocolError("all 65535 tunnel ids in use")
        while True:
            tid = int.from_bytes(self._rand(2), "big")
            if tid and tid not in self.tunnels:
                return tid

    def _register(self, t: TunnelConnection, peer_tid: int) -> None:
        key = (t.peer, peer_tid)
        self._by_peer[key] = t.tunnel_id
        self._key_of[t.tunnel_id] = key

    def _after_input(self, t: TunnelConnection) -> None:
        if t.peer_tunnel_id and t.tunnel_id not in self._key_of:
            self._register(t, t.peer_tunnel_id)
        self._touch(t)

    def _touch(self, t: TunnelConnection) -> None:
        self._dirty[t.tunnel_id] = None
        self._reschedule(t)

    def _reschedule(self, t: TunnelConnection) -> None:
        deadline = t.get_timer()
        tid = t.tunnel_id
        if deadline is None:
            self._scheduled.pop(tid, None)
        elif self._scheduled.get(tid) != deadline:
            self._scheduled[tid] = deadline
            heapq.heappush(self._heap, (deadline, tid))

    def _remove(self, t: TunnelConnection) -> None:
        tid = t.tunnel_id
        if self.tunnels.get(tid) is t:
            del self.tunnels[tid]
        self._scheduled.pop(tid, None)
        key = self._key_of.pop(tid, None)
        if key is not None and self._by_peer.get(key) == tid:
            del self._by_peer[key]
        started = self._initiated.get(t.peer[0])
        if started is not None:
            started.discard(tid)
            if not started:
                del self._initiated[t.peer[0]]


def _is_ackable(exc: L2tpError) -> bool:
    """Errors after a sound header that still occupy an Ns slot (RFC 2661 4.1, 4.4.1)."""
    return isinstance(exc, (UnknownMandatoryAvp, UnknownMessageType))
