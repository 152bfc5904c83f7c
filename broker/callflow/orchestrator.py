"""The broker's call flow: routes events between PPPoE, PPP, RADIUS, selection and L2TP.

RFC 2809 compulsory tunneling as a pure engine. It owns the protocol engines (the PPPoE
DiscoveryServer, one PppLink per subscriber until hand-over, the RadiusClient and the
L2tpEndpoint) and walks each call through the table in :mod:`broker.callflow.call_fsm`.
Everything that needs I/O comes out of :meth:`CallFlow.commands` as data
(:mod:`broker.callflow.commands`); the runtime answers state-store queries with
:meth:`view_ready` / :meth:`reserved` and data-plane detaches with :meth:`detached`.

Invariants (tested with Hypothesis over every ending path): every call that sent an
Accounting Start sends exactly one Stop; every reservation is released exactly once; every
PPPoE session ends with a PADT unless the subscriber sent one; every L2TP session that was
asked for ends with a CDN unless the LNS ended it.
"""

from __future__ import annotations

import heapq
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.callflow import wiring
from broker.callflow.call_fsm import TRANSITIONS, CallInput, CallState, lookup
from broker.callflow.commands import (
    AccountStart,
    AccountStop,
    AccountTunnel,
    AttachSplice,
    CallEnded,
    CallSnapshot,
    CallUp,
    Command,
    DetachSplice,
    LockOut,
    ProbeResult,
    QueryLoad,
    Release,
    Reserve,
    SendEthernet,
    SendL2tp,
    SendRadius,
)
from broker.callflow.terminate import TerminateCause
from broker.callflow.wiring import CallFlowEngines
from broker.l2tp.events import (
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from broker.policy.failover import remaining_after_failure
from broker.policy.model import PolicySet, RealmPolicy
from broker.policy.selection import Candidate, LoadView, candidates_from_radius, select
from broker.ppp.events import CredentialsReceived, LcpOpened, LinkTerminated
from broker.ppp.link import PppLink
from broker.pppoe.codec import encode_session_frame
from broker.pppoe.discovery import PppoeSessionKey, SessionOpened, SessionTerminated
from broker.radius.client import AccessAccepted, AccessRejected, AccessTimedOut
from broker.wire import MacAddress, format_mac

ETH_P_PPP_DISC = 0x8863
ETH_P_PPP_SES = 0x8864
PADT_CODE = 0xA7


@dataclass(frozen=True, slots=True)
class CallFlowConfig:
    node_id: str = "lac-1"
    nas_ip: str = "192.0.2.1"
    nas_identifier: str = "l2tp-broker"
    nas_port_type: int = 5  #: RFC 2865 5.41 Virtual
    host_name: str = "l2tp-broker"
    hide_avps: bool = False
    retransmit: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 8.0)
    hello_interval: float = 60.0
    receive_window: int = 16
    max_tunnel_sessions: int = 65535


@dataclass(slots=True)
class TunnelRec:
    tunnel_id: int
    identity: tuple[Any, ...]
    lns_id: str
    peer: tuple[str, int]
    assignment_id: str | None
    tunnel_key: str = ""
    #: The opening call's realm policy: its ``lockout_hold`` applies when the tunnel fails
    #: (by then its calls may have left: sessions close before the tunnel does).
    hold: float = 300.0
    cap: int = 65535  # sessions per tunnel: min(policy, node) max_tunnel_sessions
    peer_tunnel_id: int | None = None
    up: bool = False
    closing: bool = False
    calls: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Call:
    call_id: int
    acct_session_id: str
    key: PppoeSessionKey
    opened: SessionOpened
    #: The PPP link until the splice; then ``None`` (LCP belongs to the LNS from then on).
    link: PppLink | None
    created_at: float
    state: CallState = CallState.DISCOVERED
    username: str = ""
    realm: str = ""
    policy: RealmPolicy | None = None
    credentials: CredentialsReceived | None = None
    accept: AccessAccepted | None = None  # until the candidates are built from it
    class_attrs: tuple[bytes, ...] = ()  # RADIUS Class (RFC 2865 5.25), for accounting
    candidates: list[Candidate] = field(default_factory=list)
    next_candidate: int = 0
    candidate: Candidate | None = None
    reservation: Any = None
    tunnel: TunnelRec | None = None
    session_id: int | None = None
    peer_session_id: int | None = None
    sequencing: bool = False
    started_at: float | None = None
    started_accounting: bool = False
    stopped_accounting: bool = False
    end_cause: TerminateCause = TerminateCause.NAS_ERROR
    end_reason: str = ""
    padt_needed: bool = True
    cdn_needed: bool = False
    timer_at: float | None = None
    failure_message: str = ""


def assignment_text(value: object) -> str | None:
    """Tunnel-Assignment-Id for snapshots and tunnel accounting: RADIUS gives octets (RFC 2868
    3.7, a string), static pools a str or nothing."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value if isinstance(value, str) else None


class CallFlow:
    """Pure orchestrator of every subscriber call on one broker node."""

    def __init__(
        self,
        config: CallFlowConfig,
        engines: CallFlowEngines,
        policies: PolicySet,
        *,
        rng: random.Random | None = None,
        rand_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.config = config
        self.e = engines
        self.policies = policies
        self.rng = rng or random.Random(int.from_bytes(rand_bytes(8), "big"))
        self._boot = rand_bytes(4).hex().upper()
        self._serial = 0
        self.calls: dict[int, Call] = {}
        self._by_key: dict[PppoeSessionKey, int] = {}
        self._by_l2tp: dict[tuple[int, int], int] = {}
        self.tunnels: dict[int, TunnelRec] = {}
        self._by_identity: dict[tuple[Any, ...], list[int]] = {}
        #: tunnel_key -> until: candidates whose tunnel authentication failed (wrong secret or
        #: host name); only that LNS + identity is held back, not the LNS (RFC 2661 §5.1.1).
        self._held_candidates: dict[str, float] = {}
        self._out: list[Command] = []
        self._timers: list[tuple[float, int]] = []
        self.draining = False
        self.counters: dict[str, int] = {}
        #: transition action name -> bound method, resolved once (no name string per step)
        self._actions: dict[str, Callable[..., None]] = {
            action: getattr(self, "_a_" + action) for action, _ in TRANSITIONS.values()
        }

    # ------------------------------------------------------------------ inputs
    def receive_discovery(
        self, interface: str, src: MacAddress, dst: MacAddress, payload: bytes, now: float
    ) -> None:
        if self.draining and not (len(payload) > 1 and payload[1] == PADT_CODE):
            self._count("drain_refused_discovery")
            return
        self.e.discovery.receive_discovery(interface, src, dst, payload, now)
        self._pump(now)

    def receive_session_frame(
        self, interface: str, src: MacAddress, session_id: int, ppp: bytes, now: float
    ) -> None:
        cid = self._by_key.get(PppoeSessionKey(interface, src, session_id))
        call = self.calls.get(cid) if cid is not None else None
        if call is None or call.state in (CallState.SPLICED, CallState.CLOSING, CallState.CLOSED):
            self._count("session_frame_unknown")
            return
        link = call.link
        assert link is not None  # only ever None once spliced
        link.receive_frame(ppp, now)
        self._drain_link(call, now)
        self._pump(now)

    def receive_radius(self, payload: bytes, addr: Any, socket_index: int, now: float) -> None:
        self.e.radius.receive_datagram(payload, addr, socket_index, now)
        self._pump(now)

    def receive_l2tp(self, data: bytes, peer: tuple[str, int], now: float) -> None:
        self.e.l2tp.receive_datagram(data, peer, now)
        self._pump(now)

    def view_ready(self, call_id: int, view: LoadView, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.SELECTING or call.policy is None:
            return
        cands = call.candidates
        if self._held_candidates:
            cands = [c for c in cands if not self._candidate_held(c.tunnel_key, now)]
        call.candidates = select(cands, call.policy, view, self.rng)
        call.next_candidate = 0
        self._fire(call, CallInput.VIEW_READY, now)
        self._pump(now)

    def reserved(self, call_id: int, reservation: Any, now: float) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.SELECTING:
            if reservation is not None:
                self._out.append(Release(call_id, reservation))
            return
        if reservation is None:
            self._count("reservation_refused")
            self._fire(call, CallInput.RESERVE_REFUSED, now)
        else:
            call.reservation = reservation
            self._fire(call, CallInput.RESERVED, now)
        self._pump(now)

    def detached(self, call_id: int, counters: dict[str, int], now: float) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        call_counters = dict(counters)
        self._fire(call, CallInput.DETACHED, now, counters=call_counters)
        self._pump(now)

    # ------------------------------------------------------------------ commands
    def kill(self, call_id: int, reason: str, now: float) -> bool:
        call = self.calls.get(call_id)
        if call is None:
            return False
        self._end(call, TerminateCause.ADMIN_RESET, reason, now)
        self._pump(now)
        return True

    def disconnect(self, call_ids: Iterable[int], now: float) -> int:
        """RFC 5176 Disconnect-Request: end the named calls; returns how many ended."""
        n = 0
        for cid in list(call_ids):
            call = self.calls.get(cid)
            if call is not None and call.state is not CallState.CLOSED:
                self._end(call, TerminateCause.ADMIN_RESET, "disconnect-request", now)
                n += 1
        self._pump(now)
        return n

    def shutdown(self, now: float) -> None:
        self.draining = True
        for call in list(self.calls.values()):
            self._end(call, TerminateCause.ADMIN_REBOOT, "shutdown", now)
        for rec in list(self.tunnels.values()):
            if not rec.closing:
                rec.closing = True
                self.e.l2tp.close_tunnel(rec.tunnel_id, 6, None, "shutdown", now)
        self.e.discovery.flush_padts()  # going away: no time left to pace them
        self._pump(now)

    def find_calls(
        self,
        *,
        username: str | None = None,
        acct_session_id: str | None = None,
    ) -> list[int]:
        found = []
        for call in self.calls.values():
            if username is not None and call.username != username:
                continue
            if acct_session_id is not None and call.acct_session_id != acct_session_id:
                continue
            found.append(call.call_id)
        return found

    # ------------------------------------------------------------------ outputs
    def commands(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        e = self.e
        candidates = [
            t for t in (e.radius.get_timer(), e.l2tp.get_timer(), e.discovery.get_timer()) if t
        ]
        while self._timers:
            at, cid = self._timers[0]
            call = self.calls.get(cid)
            if call is None or call.timer_at != at:
                heapq.heappop(self._timers)
                continue
            candidates.append(at)
            break
        return min(candidates) if candidates else None

    def handle_timer(self, now: float) -> None:
        t = self.e.radius.get_timer()
        if t is not None and t <= now:
            self.e.radius.handle_timer(now)
        t = self.e.l2tp.get_timer()
        if t is not None and t <= now:
            self.e.l2tp.handle_timer(now)
        t = self.e.discovery.get_timer()
        if t is not None and t <= now:
            self.e.discovery.handle_timer(now)  # paced PADTs
        while self._timers and self._timers[0][0] <= now:
            at, cid = heapq.heappop(self._timers)
            call = self.calls.get(cid)
            if call is None or call.timer_at != at:
                continue
            call.timer_at = None
            if call.link is not None:
                call.link.handle_timer(now)
                self._drain_link(call, now)
        self._pump(now)

    def snapshot(self, call: Call) -> CallSnapshot:
        opened = call.opened
        cand = call.candidate
        tunnel = call.tunnel
        return CallSnapshot(
            call_id=call.call_id,
            acct_session_id=call.acct_session_id,
            interface=call.key.interface,
            mac=call.key.mac,
            pppoe_session_id=call.key.session_id,
            username=call.username,
            realm=call.realm,
            nas_port_id=wiring.nas_port_id(opened),
            circuit_id=opened.line_info.circuit_id,
            remote_id=opened.line_info.remote_id,
            lns_id=cand.lns_id if cand is not None else None,
            lns_address=cand.address if cand is not None else None,
            tunnel_id=tunnel.tunnel_id if tunnel is not None else None,
            session_id=call.session_id,
            peer_tunnel_id=tunnel.peer_tunnel_id if tunnel is not None else None,
            peer_session_id=call.peer_session_id,
            assignment_id=tunnel.assignment_id if tunnel is not None else None,
            class_attrs=call.class_attrs,
            started_at=call.started_at,
            created_at=call.created_at,
        )

    # ------------------------------------------------------------------ engine pump
    def _pump(self, now: float) -> None:
        """Move every engine's output to commands and route every engine event."""
        for _ in range(10_000):
            progressed = False
            for frame in self.e.discovery.frames_to_send():
                self._out.append(
                    SendEthernet(frame.interface, frame.dst, frame.ethertype, frame.payload)
                )
            while (dev := self.e.discovery.next_event()) is not None:
                progressed = True
                self._on_discovery(dev, now)
            for dgram in self.e.radius.datagrams_to_send(now):
                self._out.append(SendRadius(dgram))
            while (rev := self.e.radius.next_event()) is not None:
                progressed = True
                self._on_radius(rev, now)
            for payload, peer in self.e.l2tp.datagrams_to_send(now):
                self._out.append(SendL2tp(payload, peer))
            while (lev := self.e.l2tp.next_event()) is not None:
                progressed = True
                self._on_l2tp(lev, now)
            if not progressed:
                return

    def _drain_link(self, call: Call, now: float) -> None:
        link = call.link
        if link is None:
            return
        for ppp in link.frames_to_send():
            self._out.append(
                SendEthernet(
                    call.key.interface,
                    call.key.mac,
                    ETH_P_PPP_SES,
                    encode_session_frame(call.key.session_id, ppp),
                )
            )
        while (ev := link.next_event()) is not None:
            self._on_link(call, ev, now)
        if call.state in (CallState.SPLICED, CallState.CLOSING, CallState.CLOSED):
            return
        t = link.get_timer()
        if t is not None and t != call.timer_at:
            call.timer_at = t
            heapq.heappush(self._timers, (t, call.call_id))

    # ------------------------------------------------------------------ event routing
    def _on_discovery(self, ev: SessionOpened | SessionTerminated, now: float) -> None:
        if isinstance(ev, SessionOpened):
            self._new_call(ev, now)
            return
        cid = self._by_key.get(ev.key)
        if cid is not None and ev.by_peer:
            call = self.calls[cid]
            call.padt_needed = False
            self._end(call, TerminateCause.USER_REQUEST, "padt", now)

    def _new_call(self, ev: SessionOpened, now: float) -> None:
        self._serial += 1
        cid = self._serial
        link = PppLink(self.e.link_config, max_payload=ev.max_payload, rand_bytes=self.e.rand_bytes)
        call = Call(
            call_id=cid,
            acct_session_id=f"{self._boot}{cid:08X}",
            key=ev.key,
            opened=ev,
            link=link,
            created_at=now,
        )
        self.calls[cid] = call
        self._by_key[ev.key] = cid
        self._count("calls_discovered")
        link.start(now)
        self._fire(call, CallInput.LCP_STARTED, now)
        self._drain_link(call, now)

    def _on_link(self, call: Call, ev: Any, now: float) -> None:
        if isinstance(ev, LcpOpened):
            self._fire(call, CallInput.LCP_OPENED, now)
        elif isinstance(ev, CredentialsReceived):
            call.credentials = ev
            self._fire(call, CallInput.CREDENTIALS, now)
        elif isinstance(ev, LinkTerminated):
            if ev.reason == "echo-timeout":
                cause = TerminateCause.LOST_CARRIER
            elif ev.by_peer:
                cause = TerminateCause.USER_REQUEST
            else:
                cause = TerminateCause.NAS_REQUEST
            self._end(call, cause, f"ppp-{ev.reason}", now)

    def _on_radius(self, ev: Any, now: float) -> None:
        if not isinstance(ev, AccessAccepted | AccessRejected | AccessTimedOut):
            self._count(f"radius_{type(ev).__name__}")
            return
        call = self.calls.get(ev.key) if isinstance(ev.key, int) else None
        if call is None:
            return
        if isinstance(ev, AccessAccepted):
            call.accept = ev
            call.class_attrs = wiring.class_attrs(ev.attributes)
            self._fire(call, CallInput.RADIUS_ACCEPT, now)
        elif isinstance(ev, AccessRejected):
            call.failure_message = ev.reply_message or "authentication failed"
            self._fire(call, CallInput.RADIUS_REJECT, now)
        else:
            self._fire(call, CallInput.RADIUS_TIMEOUT, now)

    def _on_l2tp(self, ev: Any, now: float) -> None:
        if isinstance(ev, TunnelEstablished):
            rec = self.tunnels.get(ev.tunnel_id)
            if rec is not None:
                rec.up = True
                rec.peer_tunnel_id = ev.peer_tunnel_id
                self._out.append(
                    AccountTunnel(9, rec.tunnel_id, rec.lns_id, rec.peer[0], rec.assignment_id)
                )
        elif isinstance(ev, TunnelClosed):
            self._tunnel_closed(ev, now)
        elif isinstance(ev, SessionEstablished):
            cid = self._by_l2tp.get((ev.tunnel_id, ev.session_id))
            if cid is not None:
                call = self.calls[cid]
                call.peer_session_id = ev.peer_session_id
                call.sequencing = ev.sequencing_required
                if call.tunnel is not None:
                    call.tunnel.peer_tunnel_id = ev.peer_tunnel_id
                self._fire(call, CallInput.SESSION_UP, now)
        elif isinstance(ev, SessionClosed):
            self._session_closed(ev, now)
        else:
            self._count(f"l2tp_{type(ev).__name__}")

    def _session_closed(self, ev: SessionClosed, now: float) -> None:
        cid = self._by_l2tp.pop((ev.tunnel_id, ev.session_id), None)
        call = self.calls.get(cid) if cid is not None else None
        if call is None:
            return
        call.cdn_needed = False
        if call.state is CallState.TUNNELING:
            # Closed on our side (the tunnel failed, or the LNS sent something we had to
            # refuse): try the next candidate; TunnelClosed, if it follows, locks the LNS out.
            if not ev.by_peer or wiring.cdn_action(ev) == "next":
                self._count("failover_cdn")
                self._leave_tunnel(call)
                self._candidate_failed(call)
                self._fire(call, CallInput.SETUP_FAILED, now)
                return
            call.failure_message = f"LNS refused the call: {ev.message or ev.result}"
        if ev.by_peer:
            self._end(call, TerminateCause.HOST_REQUEST, "cdn", now)
        else:
            self._end(call, TerminateCause.LOST_SERVICE, "l2tp-session-lost", now)

    def _tunnel_closed(self, ev: TunnelClosed, now: float) -> None:
        rec = self.tunnels.pop(ev.tunnel_id, None)
        if rec is None:
            return
        ids = self._by_identity.get(rec.identity, [])
        if rec.tunnel_id in ids:
            ids.remove(rec.tunnel_id)
        self._out.append(
            AccountTunnel(
                11 if ev.during_setup else 10,
                rec.tunnel_id,
                rec.lns_id,
                rec.peer[0],
                rec.assignment_id,
            )
        )
        if wiring.tunnel_close_locks_out(ev):
            self._out.append(LockOut(rec.lns_id, rec.hold, ev.reason))
            self._count("lns_lockouts")
        elif wiring.tunnel_close_holds_candidate(ev):
            self._held_candidates[rec.tunnel_key] = now + rec.hold
            self._count("candidate_holds")
        for cid in list(rec.calls):
            call = self.calls.get(cid)
            if call is None:
                continue
            if call.session_id is not None:
                self._by_l2tp.pop((rec.tunnel_id, call.session_id), None)
            call.cdn_needed = False
            if call.state is CallState.TUNNELING:
                self._leave_tunnel(call)
                self._count("failover_tunnel")
                self._candidate_failed(call)
                self._fire(call, CallInput.SETUP_FAILED, now)
            else:
                self._end(call, TerminateCause.LOST_SERVICE, f"tunnel-{ev.reason}", now)
        rec.calls.clear()

    def _candidate_failed(self, call: Call) -> None:
        """Drop what the policy's failover mode rules out after this candidate failed."""
        if call.candidate is None or call.policy is None:
            return
        rest = call.candidates[call.next_candidate :]
        call.candidates = remaining_after_failure(rest, call.candidate, call.policy)
        call.next_candidate = 0

    def _candidate_held(self, tunnel_key: str, now: float) -> bool:
        until = self._held_candidates.get(tunnel_key)
        if until is None:
            return False
        if until > now:
            return True
        del self._held_candidates[tunnel_key]
        return False

    # ------------------------------------------------------------------ the table
    def _fire(self, call: Call, inp: CallInput, now: float, **kw: Any) -> None:
        step = lookup(call.state, inp)
        if step is None:
            self._count(f"unexpected_{call.state.value}_{inp.value}")
            return
        action, nxt = step
        call.state = nxt
        self._actions[action](call, now, **kw)

    def _a_noop(self, call: Call, now: float, **kw: Any) -> None:
        return

    def _a_ask_radius(self, call: Call, now: float, **kw: Any) -> None:
        cred = call.credentials
        assert cred is not None
        call.username = cred.username
        policy, parsed = self.policies.match(cred.username)
        call.policy = policy
        call.realm = policy.name  # counts and caps are per policy (a suffix rule's sub-realms too)
        if policy.tunnel_source == "static":
            call.accept = None
            self._fire(call, CallInput.RADIUS_ACCEPT, now)
            return
        try:
            request = wiring.auth_request(
                call.opened,
                cred,
                parsed.radius_name(policy.strip_realm),
                nas_ip=self.config.nas_ip,
                nas_identifier=self.config.nas_identifier,
                nas_port_type=self.config.nas_port_type,
            )
        except ValueError as exc:
            call.failure_message = str(exc)
            self._fire(call, CallInput.RADIUS_REJECT, now)
            return
        self.e.radius.authenticate(call.call_id, request, now)

    def _candidates(self, call: Call, tunnels: tuple[Any, ...]) -> list[Candidate]:
        assert call.policy is not None
        return candidates_from_radius(tunnels, call.policy, self.e.resolve_secret)

    def _a_query_view(self, call: Call, now: float, **kw: Any) -> None:
        call.candidates = self._candidates(call, call.accept.tunnels if call.accept else ())
        call.accept = None  # ~1 KiB of decoded attributes; the Class values are kept
        self._query_view(call)

    def _query_view(self, call: Call) -> None:
        lns_ids = tuple(sorted({c.lns_id for c in call.candidates}))
        keys = tuple(sorted({c.tunnel_key for c in call.candidates}))
        self._out.append(QueryLoad(call.call_id, lns_ids, call.realm, keys))

    def _a_radius_unreachable(self, call: Call, now: float, **kw: Any) -> None:
        self._count("radius_unreachable")
        if call.policy is not None and call.policy.on_radius_unreachable == "static":
            call.candidates = self._candidates(call, ())
            self._query_view(call)
        else:
            call.failure_message = "authentication service unavailable"
            self._fire(call, CallInput.NO_CANDIDATE, now)

    def _a_reserve_next(self, call: Call, now: float, **kw: Any) -> None:
        self._release(call)
        if call.next_candidate >= len(call.candidates):
            if not call.failure_message:
                call.failure_message = "no LNS available for this realm"
            self._fire(call, CallInput.NO_CANDIDATE, now)
            return
        cand = call.candidates[call.next_candidate]
        call.next_candidate += 1
        call.candidate = cand
        policy = call.policy
        assert policy is not None
        self._out.append(
            Reserve(
                call_id=call.call_id,
                lns_id=cand.lns_id,
                tunnel_key=cand.tunnel_key,
                realm=call.realm,
                lns_max=cand.max_sessions,
                tunnel_max=None,  # per tunnel, enforced by _tunnel_for (another tunnel opens)
                realm_max=policy.max_sessions,
            )
        )

    def _a_open_session(self, call: Call, now: float, **kw: Any) -> None:
        cand = call.candidate
        assert cand is not None and call.credentials is not None
        assert call.policy is not None
        rec = self._tunnel_for(cand, call.policy, now)
        call.tunnel = rec
        rec.calls.add(call.call_id)
        params = wiring.call_params(call.opened, call.credentials, call.call_id & 0xFFFFFFFF)
        sid = self.e.l2tp.open_session(rec.tunnel_id, params, now)
        call.session_id = sid
        call.cdn_needed = True
        self._by_l2tp[(rec.tunnel_id, sid)] = call.call_id

    def _tunnel_for(self, cand: Candidate, policy: RealmPolicy, now: float) -> TunnelRec:
        """An open tunnel of ``cand``'s identity with room, else a new one with the same
        identity (RFC 2868 §3.7: the identity names which tunnel to share, not a single one;
        ``max_tunnel_sessions`` caps each tunnel, never the identity)."""
        identity = tuple(cand.tunnel_identity)
        cap = min(policy.max_tunnel_sessions, self.config.max_tunnel_sessions)
        for tid in self._by_identity.get(identity, []):
            rec = self.tunnels[tid]
            if not rec.closing and len(rec.calls) < min(cap, rec.cap):
                self._count("tunnel_reused")
                return rec
        peer = (cand.address, int(cand.port))
        cfg = wiring.tunnel_config(
            cand,
            host_name=self.config.host_name,
            hide_avps=self.config.hide_avps,
            retransmit=self.config.retransmit,
            hello_interval=self.config.hello_interval,
            receive_window=self.config.receive_window,
        )
        tid = self.e.l2tp.open_tunnel(peer, cfg, now)
        assignment = cand.tunnel_identity[1] if len(cand.tunnel_identity) > 1 else None
        rec = TunnelRec(
            tid,
            identity,
            cand.lns_id,
            peer,
            assignment_text(assignment),
            tunnel_key=cand.tunnel_key,
            hold=policy.lockout_hold,
            cap=cap,
        )
        self.tunnels[tid] = rec
        self._by_identity.setdefault(identity, []).append(tid)
        self._count("tunnels_opened")
        return rec

    def _a_splice(self, call: Call, now: float, **kw: Any) -> None:
        call.started_at = now
        link = call.link
        assert link is not None
        link.accept("welcome", now)
        self._drain_link(call, now)
        link.hand_over()
        # What the spliced call no longer needs (memory per session, issue 8): the PPP link
        # (LCP is the LNS's now), the credentials (the L2TP session has sent its proxy
        # authentication; no CHAP response or PAP password is kept) and the other candidates.
        call.link = None
        call.timer_at = None
        call.credentials = None
        call.candidates = []
        self.e.discovery.setup_done(call.key)
        snap = self.snapshot(call)
        assert call.tunnel is not None
        self._out.append(AttachSplice(snap, call.tunnel.peer, call.sequencing))
        if call.reservation is not None and getattr(call.reservation, "probe", False):
            self._out.append(ProbeResult(call.reservation.lns_id, True, self._policy_hold(call)))
        call.started_accounting = True
        self._out.append(AccountStart(snap))
        self._out.append(CallUp(snap, now - call.created_at))
        self._count("calls_up")

    def _policy_hold(self, call: Call) -> float:
        return call.policy.lockout_hold if call.policy is not None else 300.0

    def _a_reject_call(self, call: Call, now: float, **kw: Any) -> None:
        msg = call.failure_message or "call rejected"
        self._release(call)
        self.e.discovery.setup_done(call.key)
        if call.link is not None:
            call.link.reject(msg, now)
            self._drain_link(call, now)
        self._close_pppoe(call, "rejected", now)
        call.end_reason = f"rejected: {msg}"
        self._finish_call(call, now)

    def _a_abandon(self, call: Call, now: float, **kw: Any) -> None:
        self.e.radius.cancel(call.call_id)
        self._release(call)
        self._close_l2tp(call, now)
        self._close_pppoe(call, call.end_reason, now)
        self._finish_call(call, now)

    def _a_detach(self, call: Call, now: float, **kw: Any) -> None:
        self._close_l2tp(call, now)
        self._close_pppoe(call, call.end_reason, now)
        self._out.append(DetachSplice(call.call_id))

    def _a_finish(self, call: Call, now: float, **kw: Any) -> None:
        counters: dict[str, int] = kw.get("counters", {})
        if call.started_accounting and not call.stopped_accounting:
            call.stopped_accounting = True
            started = call.started_at if call.started_at is not None else now
            self._out.append(
                AccountStop(self.snapshot(call), now - started, int(call.end_cause), counters)
            )
        self._release(call)
        self._finish_call(call, now)

    # ------------------------------------------------------------------ endings
    def _end(self, call: Call, cause: TerminateCause, reason: str, now: float) -> None:
        if call.state in (CallState.CLOSING, CallState.CLOSED):
            return
        call.end_cause = cause
        call.end_reason = reason
        self._fire(call, CallInput.END, now)

    def _release(self, call: Call) -> None:
        if call.reservation is not None:
            self._out.append(Release(call.call_id, call.reservation))
            call.reservation = None

    def _leave_tunnel(self, call: Call) -> None:
        if call.tunnel is not None:
            call.tunnel.calls.discard(call.call_id)
            call.tunnel = None
        call.session_id = None
        call.cdn_needed = False

    def _close_l2tp(self, call: Call, now: float) -> None:
        rec = call.tunnel
        if rec is not None and call.session_id is not None:
            self._by_l2tp.pop((rec.tunnel_id, call.session_id), None)
            if call.cdn_needed and rec.tunnel_id in self.tunnels:
                self.e.l2tp.close_session(
                    rec.tunnel_id, call.session_id, 3, None, call.end_reason, now
                )
        call.cdn_needed = False
        if rec is not None:
            rec.calls.discard(call.call_id)

    def _close_pppoe(self, call: Call, reason: str, now: float) -> None:
        if call.padt_needed:
            call.padt_needed = False
            self.e.discovery.terminate(call.key, reason, now)

    def _finish_call(self, call: Call, now: float) -> None:
        state_before = call.state
        call.state = CallState.CLOSED
        self.calls.pop(call.call_id, None)
        self._by_key.pop(call.key, None)
        latency = (call.started_at - call.created_at) if call.started_at is not None else None
        self._out.append(
            CallEnded(self.snapshot(call), call.end_reason, state_before.value, latency)
        )
        self._count("calls_ended")

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # ------------------------------------------------------------------ views
    def describe(self, call: Call) -> dict[str, Any]:
        snap = self.snapshot(call)
        return {
            "id": call.call_id,
            "acct_session_id": call.acct_session_id,
            "state": call.state.value,
            "username": call.username,
            "realm": call.realm,
            "interface": snap.interface,
            "mac": format_mac(snap.mac),
            "pppoe_session_id": snap.pppoe_session_id,
            "lns": snap.lns_id,
            "tunnel_id": snap.tunnel_id,
            "session_id": snap.session_id,
            "started_at": call.started_at,
        }
