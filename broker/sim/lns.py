"""LNS emulator engine (pure): L2TP in the LNS role plus PPP on every session's data channel.

Control: :class:`~broker.l2tp.endpoint.L2tpEndpoint` with ``lns_config`` (RFC 2661 §5, §7.4.2
incoming calls). Data (RFC 2661 §3.1 data messages, PPP with or without the HDLC FF 03
prefix): one :class:`LnsPppSession` per established call that

- takes the proxy LCP (RFC 2661 §4.4.5) when the LAC sent it, i.e. treats LCP as opened, and
  answers LCP Echo-Request and Terminate-Request itself; otherwise (or when told to ignore
  proxy LCP) renegotiates LCP (RFC 1661) without authentication;
- assigns the subscriber an address from a pool with IPCP (RFC 1332 §3.3 Nak of 0.0.0.0);
- answers ICMP echo requests (RFC 792) addressed to its own PPP address;
- optionally sends LCP Echo-Requests (RFC 1661 §5.8) and clears calls whose CPE went silent.

Failure injection: refuse calls with a CDN result code (2, 4, 5, ...), cap sessions, drop
SCCRQs, delay every control message (a slow LNS), :meth:`LnsEmulator.die` (silence from then
on).
"""

from __future__ import annotations

import heapq
import ipaddress
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.l2tp.codec import peek_header
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import CdnResult, MessageType
from broker.l2tp.data import encode_data_header, split_data
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import (
    L2tpEvent,
    Peer,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from broker.l2tp.session import Result
from broker.l2tp.tunnel_fsm import TunnelState
from broker.ppp.codec import decode_control, encode_control, split_frame
from broker.ppp.constants import LcpCode, PppProtocol
from broker.ppp.lcp import LcpAutomaton, RestartConfig, Signal
from broker.ppp.lcp_table import State
from broker.sim.ppp_client import IpcpAutomaton
from broker.sim.subscriber import build_icmp_echo, parse_icmp_echo
from broker.wire import RemoteProtocolError

__all__ = ["LnsConfig", "LnsEmulator", "LnsIpcpUp", "LnsPppSession"]

_HDLC = b"\xff\x03"
_IPV4 = int(PppProtocol.IPV4)


@dataclass(frozen=True, slots=True)
class LnsIpcpUp:
    tunnel_id: int
    session_id: int
    address: str


LnsEvent = L2tpEvent | LnsIpcpUp


@dataclass(frozen=True, slots=True)
class LnsConfig:
    tunnel: TunnelConfig = field(default_factory=lambda: TunnelConfig(host_name="sim-lns"))
    pool: str = "198.51.100.0/24"
    #: The LNS's own PPP address (default: the pool's first host).
    address: str | None = None
    #: Refuse calls with this CDN result code (None: accept); ``reject_every`` = 1 in N.
    reject_result: int | None = None
    reject_every: int = 1
    #: Refuse calls beyond this many sessions with result 4 (0: no cap).
    max_sessions: int = 0
    drop_sccrq: bool = False
    #: Hold every control message we send this long (a slow LNS; data is not delayed).
    reply_delay: float = 0.0
    accept_proxy_lcp: bool = True
    #: Hand out pool addresses round robin even when in use (load tests beyond the pool
    #: size: the emulator routes replies by session, not by address).
    reuse_addresses: bool = False
    restart: RestartConfig = field(default_factory=RestartConfig)
    mru: int = 1460
    #: LCP Echo-Request to the CPE every this many seconds (0: never); the call is cleared
    #: after ``echo_failures`` unanswered ones (a CPE powered off without PADT).
    echo_interval: float = 0.0
    echo_failures: int = 3
    #: Send a HELLO on every established tunnel every this many seconds even while data
    #: flows (RFC 2661 5.5 only asks for one after idle): samples the peer's acknowledgement
    #: latency under load (``status()["ack_ms"]``). 0: off.
    hello_probe: float = 0.0


class LnsPppSession:
    """PPP on one call's data channel, LNS side."""

    def __init__(
        self,
        own: bytes,
        assign: bytes,
        *,
        proxy_lcp: bool,
        restart: RestartConfig,
        mru: int = 1460,
        echo_interval: float = 0.0,
        echo_failures: int = 3,
        rand_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.own = own
        #: LCP keepalive (RFC 1661 5.8) towards the CPE, so a silent CPE is cleared.
        self.echo_interval = echo_interval
        self.echo_failures = echo_failures
        self.echo_outstanding = 0
        self._echo_at: float | None = None
        self._echo_id = 0
        self.assign = assign
        self.proxy_lcp = proxy_lcp
        self.counters: dict[str, int] = {}
        self.lcp: LcpAutomaton | None = None
        if not proxy_lcp:
            self.lcp = LcpAutomaton(restart, mru=mru, rand_bytes=rand_bytes)
            self.lcp.counters = self.counters
        self.ipcp = IpcpAutomaton(restart, address=own, assign=assign, rand_bytes=rand_bytes)
        self.ipcp.counters = self.counters
        self._out: list[bytes] = []
        self.ipcp_up = False
        self.terminated = False
        self.pings_answered = 0

    def start(self, now: float) -> None:
        if self.echo_interval > 0:
            self._echo_at = now + self.echo_interval
        if self.lcp is None:
            self._start_ipcp(now)
        else:
            self.lcp.up(now)
            self.lcp.open(now)
            self._signals(now)

    def _start_ipcp(self, now: float) -> None:
        self.ipcp.up(now)
        self.ipcp.open(now)

    def receive_frame(self, ppp: bytes, now: float) -> None:
        """One PPP frame from the LAC (protocol field first)."""
        if self.terminated:
            return
        try:
            protocol, info = split_frame(ppp)
            if protocol == PppProtocol.LCP:
                if info[:1] == bytes((LcpCode.ECHO_REPLY,)):
                    self.echo_outstanding = 0
                self._lcp(info, now)
            elif protocol == PppProtocol.IPCP:
                self.ipcp.receive(info, now)
            elif protocol == _IPV4:
                self._ipv4(info)
            else:
                self._count(f"ignored-{protocol:04x}")
        except RemoteProtocolError:
            self._count("malformed")
        self._signals(now)

    def _lcp(self, info: bytes, now: float) -> None:
        if self.lcp is not None:
            self.lcp.receive(info, now)
            return
        pkt = decode_control(info)
        if pkt.code == LcpCode.ECHO_REQUEST:
            # Magic-Number 0: we did not negotiate one ourselves (proxy LCP).
            self._out.append(
                encode_control(
                    PppProtocol.LCP, LcpCode.ECHO_REPLY, pkt.identifier, bytes(4) + pkt.data[4:]
                )
            )
        elif pkt.code == LcpCode.TERMINATE_REQUEST:
            self._out.append(encode_control(PppProtocol.LCP, LcpCode.TERMINATE_ACK, pkt.identifier))
            self.terminated = True
        elif pkt.code == LcpCode.CONFIGURE_REQUEST:
            # The CPE renegotiates: switch to a full automaton from here on.
            self.lcp = LcpAutomaton(RestartConfig(), mru=1460)
            self.lcp.counters = self.counters
            self.lcp.up(now)
            self.lcp.open(now)
            self.lcp.receive(info, now)
        else:
            self._count(f"lcp-ignored-{pkt.code}")

    def _ipv4(self, packet: bytes) -> None:
        echo = parse_icmp_echo(packet)
        if echo is None or echo.reply or echo.dst != self.own:
            self._count("ipv4-ignored")
            return
        self.pings_answered += 1
        reply = build_icmp_echo(echo.dst, echo.src, echo.ident, echo.seq, echo.payload, reply=True)
        self._out.append(_IPV4.to_bytes(2, "big") + reply)

    def _signals(self, now: float) -> None:
        if self.lcp is not None:
            signals = self.lcp.signals
            while signals:
                s = signals.pop(0)
                if s is Signal.UP:
                    self._start_ipcp(now)
                elif s is Signal.DOWN and self.ipcp.state not in (State.INITIAL, State.STARTING):
                    self.ipcp.down(now)
                elif s is Signal.FINISHED:
                    self.terminated = True
        signals = self.ipcp.signals
        while signals:
            if signals.pop(0) is Signal.UP:
                self.ipcp_up = True

    def frames_to_send(self) -> list[bytes]:
        out = self._out
        self._out = []
        if self.lcp is not None:
            out.extend(self.lcp.frames_to_send())
        out.extend(self.ipcp.frames_to_send())
        return out

    def get_timer(self) -> float | None:
        if self.terminated:
            return None
        timers = [
            t
            for t in (self.ipcp.get_timer(), self.lcp and self.lcp.get_timer(), self._echo_at)
            if t
        ]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        if self.terminated:
            return
        if self._echo_at is not None and now >= self._echo_at:
            if self.echo_outstanding >= self.echo_failures:
                self._echo_at = None
                self._count("echo-timeout")
                self.terminated = True
                return
            self.echo_outstanding += 1
            self._echo_id = (self._echo_id + 1) & 0xFF
            self._out.append(
                encode_control(PppProtocol.LCP, LcpCode.ECHO_REQUEST, self._echo_id, bytes(4))
            )
            self._echo_at = now + self.echo_interval
        self.ipcp.handle_timer(now)
        if self.lcp is not None:
            self.lcp.handle_timer(now)
        self._signals(now)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1


@dataclass(slots=True)
class _Call:
    tunnel_id: int
    session_id: int
    peer: Peer
    peer_tunnel_id: int
    peer_session_id: int
    sequencing: bool
    address: bytes
    ppp: LnsPppSession
    ns: int = 0
    nr: int = 0
    up_reported: bool = False


class LnsEmulator:
    """Tunnels and sessions of one LNS address; control through ``receive_datagram``, data
    through ``receive_data``; everything to send through ``datagrams_to_send``."""

    def __init__(
        self, config: LnsConfig | None = None, *, rand_bytes: Callable[[int], bytes] = os.urandom
    ) -> None:
        self.config = cfg = config or LnsConfig()
        self.rand_bytes = rand_bytes
        self.endpoint = L2tpEndpoint(
            rand_bytes=rand_bytes, lns_config=cfg.tunnel, lns_policy=self._policy
        )
        net = ipaddress.IPv4Network(cfg.pool, strict=False)
        hosts = [a.packed for a in net.hosts()]
        own = ipaddress.IPv4Address(cfg.address).packed if cfg.address else hosts[0]
        self.own = own
        self._free: deque[bytes] = deque(a for a in hosts if a != own)
        if not self._free:
            raise ValueError(f"pool {cfg.pool} has no address besides the LNS's own")
        self._all = tuple(self._free)
        self._cursor = 0
        self.calls: dict[tuple[int, int], _Call] = {}
        self._tunnel_peers: dict[int, tuple[Peer, int]] = {}
        self._data_out: list[tuple[bytes, Peer]] = []
        self._held: deque[tuple[float, bytes, Peer]] = deque()
        self._events: deque[LnsEvent] = deque()
        #: PPP timers of every call: a heap with lazy deletion (O(log n) per change).
        self._heap: list[tuple[float, int, tuple[int, int]]] = []
        self._ppp_deadline: dict[tuple[int, int], float] = {}
        self._seq = 0
        self._offered = 0
        self.dead = False
        #: Control-message acknowledgement times of the peer (seconds; HELLO acks while
        #: sessions are held), sampled on every tunnel; trimmed by :meth:`status`.
        self.ack_samples: list[float] = []
        self._probe_at: float | None = None
        self.counters: dict[str, int] = {}

    @property
    def own_address(self) -> str:
        return str(ipaddress.IPv4Address(self.own))

    # -- commands --------------------------------------------------------------------------
    def die(self) -> None:
        """Stop answering anything (no StopCCN): the LAC sees a dead peer."""
        self.dead = True
        self._data_out.clear()

    # -- policy ----------------------------------------------------------------------------
    def _policy(self, tunnel_id: int, session_id: int, params: CallParams) -> Result | None:
        cfg = self.config
        self._offered += 1
        if cfg.reject_result is not None and self._offered % max(1, cfg.reject_every) == 0:
            self._count("refused-policy")
            return (cfg.reject_result, None, "refused by the LNS emulator")
        if cfg.max_sessions and len(self.calls) >= cfg.max_sessions:
            self._count("refused-cap")
            return (int(CdnResult.TEMPORARY_NO_FACILITIES), None, "session cap reached")
        if not self._free and not cfg.reuse_addresses:
            self._count("refused-pool")
            return (int(CdnResult.TEMPORARY_NO_FACILITIES), None, "address pool exhausted")
        return None

    # -- input -----------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        if self.dead:
            self._count("dead-drop")
            return
        if self.config.drop_sccrq:
            try:
                is_control, tid, _sid = peek_header(data)
            except RemoteProtocolError:
                is_control, tid = True, 1
            if is_control and tid == 0:
                self._count("sccrq-dropped")
                return
        self.endpoint.receive_datagram(data, peer, now)
        self._drain(now)

    def receive_data(self, data: bytes, peer: Peer, now: float) -> None:
        """One L2TP data message (T=0) from ``peer``."""
        if self.dead:
            return
        try:
            header, payload = split_data(data)
        except RemoteProtocolError:
            self._count("data-malformed")
            return
        call = self.calls.get((header.tunnel_id, header.session_id))
        if call is None or call.peer[0] != peer[0]:
            self._count("data-unknown-session")
            return
        self.endpoint.note_data_received(header.tunnel_id, now)
        if header.ns is not None:
            call.nr = (header.ns + 1) & 0xFFFF
        if payload[:2] == _HDLC:
            payload = payload[2:]
        call.ppp.receive_frame(payload, now)
        self._after_ppp(call, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]:
        if self.dead:
            self.endpoint.datagrams_to_send(now)
            return []
        out = self._data_out
        self._data_out = []
        control = self.endpoint.datagrams_to_send(now)
        delay = self.config.reply_delay
        if delay <= 0:
            out.extend(control)
            return out
        held = self._held
        held.extend((now + delay, d, p) for d, p in control)
        while held and held[0][0] <= now:
            _, data, peer = held.popleft()
            out.append((data, peer))
        return out

    def next_event(self) -> LnsEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        if self.dead:
            return None
        best = self.endpoint.get_timer()
        heap = self._heap
        while heap and self._ppp_deadline.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale entry
        if heap and (best is None or heap[0][0] < best):
            best = heap[0][0]
        if self._held and (best is None or self._held[0][0] < best):
            best = self._held[0][0]
        if self._probe_at is not None and (best is None or self._probe_at < best):
            best = self._probe_at
        return best

    def _probe(self, now: float) -> None:
        """HELLO on every established tunnel (``hello_probe``); sent at once."""
        self._probe_at = now + self.config.hello_probe
        for t in list(self.endpoint.tunnels.values()):
            if t.state is TunnelState.ESTABLISHED:
                t.send_message(MessageType.HELLO, 0, [], now)
                self._data_out.extend((d, t.peer) for d in t.datagrams_to_send(now))
                self._count("hello-probes")

    def handle_timer(self, now: float) -> None:
        if self.dead:
            return
        self.endpoint.handle_timer(now)
        if self._probe_at is not None and now >= self._probe_at:
            self._probe(now)
        heap = self._heap
        due: list[_Call] = []
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if self._ppp_deadline.get(key) != deadline:
                continue
            del self._ppp_deadline[key]
            call = self.calls.get(key)
            if call is not None:
                due.append(call)
        for call in due:
            call.ppp.handle_timer(now)
            self._after_ppp(call, now)
        self._drain(now)

    # -- internals -------------------------------------------------------------------------
    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _drain(self, now: float) -> None:
        while (ev := self.endpoint.next_event()) is not None:
            self._events.append(ev)
            if isinstance(ev, TunnelEstablished):
                self._tunnel_peers[ev.tunnel_id] = (ev.peer, ev.peer_tunnel_id)
                tunnel = self.endpoint.tunnels.get(ev.tunnel_id)
                if tunnel is not None:
                    tunnel.transport.ack_samples = self.ack_samples
                if self.config.hello_probe > 0 and self._probe_at is None:
                    self._probe_at = now + self.config.hello_probe
            elif isinstance(ev, SessionEstablished):
                self._established(ev, now)
            elif isinstance(ev, SessionClosed):
                self._forget(ev.tunnel_id, ev.session_id)
            elif isinstance(ev, TunnelClosed):
                self._tunnel_peers.pop(ev.tunnel_id, None)
                for key in [k for k in self.calls if k[0] == ev.tunnel_id]:
                    self._forget(*key)

    def _established(self, ev: SessionEstablished, now: float) -> None:
        info = self._tunnel_peers.get(ev.tunnel_id)
        if info is None:
            ti = self.endpoint.tunnel_info(ev.tunnel_id)
            if ti is None:
                return
            info = (ti[0], ti[1])
        if self.config.reuse_addresses:
            address = self._all[self._cursor % len(self._all)]
            self._cursor += 1
        elif self._free:
            address = self._free.popleft()
        else:
            self.endpoint.close_session(
                ev.tunnel_id,
                ev.session_id,
                int(CdnResult.TEMPORARY_NO_FACILITIES),
                None,
                "address pool exhausted",
                now,
            )
            return
        params = ev.params
        proxy = (
            self.config.accept_proxy_lcp
            and params is not None
            and params.last_sent_confreq is not None
            and params.last_received_confreq is not None
        )
        ppp = LnsPppSession(
            self.own,
            address,
            proxy_lcp=proxy,
            restart=self.config.restart,
            mru=self.config.mru,
            echo_interval=self.config.echo_interval,
            echo_failures=self.config.echo_failures,
            rand_bytes=self.rand_bytes,
        )
        call = _Call(
            ev.tunnel_id,
            ev.session_id,
            info[0],
            ev.peer_tunnel_id,
            ev.peer_session_id,
            ev.sequencing_required,
            address,
            ppp,
        )
        self.calls[(ev.tunnel_id, ev.session_id)] = call
        ppp.start(now)
        self._after_ppp(call, now)

    def _after_ppp(self, call: _Call, now: float) -> None:
        for frame in call.ppp.frames_to_send():
            if call.sequencing:
                header = encode_data_header(
                    call.peer_tunnel_id, call.peer_session_id, call.ns, call.nr
                )
                call.ns = (call.ns + 1) & 0xFFFF
            else:
                header = encode_data_header(call.peer_tunnel_id, call.peer_session_id)
            self._data_out.append((header + _HDLC + frame, call.peer))
        if call.ppp.ipcp_up and not call.up_reported:
            call.up_reported = True
            self._count("ipcp-up")
            self._events.append(
                LnsIpcpUp(call.tunnel_id, call.session_id, str(ipaddress.IPv4Address(call.address)))
            )
        key = (call.tunnel_id, call.session_id)
        deadline = call.ppp.get_timer()
        if deadline is None:
            self._ppp_deadline.pop(key, None)
        elif self._ppp_deadline.get(key) != deadline:
            self._ppp_deadline[key] = deadline
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, key))
        if call.ppp.terminated:
            self._count("lcp-terminated")
            self.endpoint.close_session(
                call.tunnel_id, call.session_id, int(CdnResult.ADMINISTRATIVE), None, "", now
            )
            self._forget(call.tunnel_id, call.session_id)
            self._drain(now)

    def _forget(self, tunnel_id: int, session_id: int) -> None:
        self._ppp_deadline.pop((tunnel_id, session_id), None)
        call = self.calls.pop((tunnel_id, session_id), None)
        if call is not None and not self.config.reuse_addresses:
            self._free.append(call.address)

    def status(self) -> dict[str, object]:
        return {
            "tunnels": len(self.endpoint.tunnels),
            "sessions": len(self.calls),
            "ipcp_up": sum(1 for c in self.calls.values() if c.ppp.ipcp_up),
            "pings_answered": sum(c.ppp.pings_answered for c in self.calls.values()),
            "address": self.own_address,
            "counters": dict(self.counters),
            "dead": self.dead,
            "ack_ms": self.ack_stats(),
        }

    def ack_stats(self) -> dict[str, float | int | None]:
        """Acknowledgement latency of our control messages (ms) since the last call."""
        samples = sorted(self.ack_samples)
        self.ack_samples.clear()
        n = len(samples)

        def pick(p: float) -> float | None:
            return round(samples[min(n - 1, int(p * n))] * 1000.0, 2) if n else None

        return {"count": n, "p50": pick(0.5), "p99": pick(0.99), "max": pick(1.0)}
