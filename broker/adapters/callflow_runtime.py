"""Runs the pure :class:`CallFlow` on real sockets and carries out its commands.

Inputs: raw PPPoE frames (``RawEthernetPort``), L2TP datagrams (``L2tpUdpAdapter``), RADIUS
replies (N UDP source sockets), state-store answers (Deferreds). After every input the
runtime drains the call flow's commands and executes them: frames and datagrams are written,
state-store calls are made and answered back, splices attached/detached, accounting records
built (RFC 2866/2867) and submitted to the durable spool, metrics updated. One timer follows
``CallFlow.get_timer()``.

Data-plane fast path: a session frame whose (interface, MAC, session id) is spliced goes to
the splice without touching the call flow; L2TP data messages (T bit clear) likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from broker.adapters.faults import Faults
from broker.adapters.l2tp_udp import L2tpUdpAdapter
from broker.adapters.rawether import RawEthernetPort
from broker.adapters.timer import EngineTimer
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
from broker.callflow.orchestrator import CallFlow
from broker.dataplane.fastpath import FastSplice
from broker.policy.selection import LoadView
from broker.pppoe.discovery import PppoeSessionKey
from broker.radius.accounting import (
    AcctStatusType,
    AcctTerminateCause,
    Counters,
    NasInfo,
    SessionInfo,
    TunnelInfo,
    interim_record,
    start_record,
    stop_record,
    tunnel_link_record,
    tunnel_record,
)
from broker.state.base import Caps, SessionRecord, StateStore
from broker.wire import MacAddress, format_mac

_log = Logger(namespace="broker.callflow")

Peer = tuple[str, int]


class _RadiusSocket(DatagramProtocol):
    noisy = False

    def __init__(self, runtime: CallFlowRuntime, index: int) -> None:
        self.runtime = runtime
        self.index = index

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # Twisted override
        self.runtime.radius_datagram(datagram, (str(addr[0]), int(addr[1])), self.index)


class _L2tpFacade:
    """Looks like an L2TP engine to ``L2tpUdpAdapter``; feeds the call flow instead."""

    def __init__(self, runtime: CallFlowRuntime) -> None:
        self.runtime = runtime

    def receive_datagram(self, data: bytes, peer: Peer, now: float) -> None:
        self.runtime.flow.receive_l2tp(data, peer, now)
        self.runtime.after_input()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Peer]]:
        return []

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None

    def next_event(self) -> None:
        return None

    def note_data_received(self, tunnel_id: int, now: float) -> None:
        self.runtime.flow.e.l2tp.note_data_received(tunnel_id, now)


class _DiscoveryFacade:
    """Looks like a DiscoveryServer to ``RawEthernetPort``; feeds the call flow instead."""

    def __init__(self, runtime: CallFlowRuntime) -> None:
        self.runtime = runtime

    def set_local_mac(self, interface: str, mac: MacAddress) -> None:
        self.runtime.flow.e.discovery.set_local_mac(interface, mac)

    def receive_discovery(
        self, interface: str, src: MacAddress, dst: MacAddress, payload: bytes, now: float
    ) -> None:
        self.runtime.flow.receive_discovery(interface, src, dst, payload, now)
        self.runtime.after_input()

    def frames_to_send(self) -> list[Any]:
        return []

    def next_event(self) -> None:
        return None

    def terminate(self, key: PppoeSessionKey, reason: str, now: float) -> None:
        self.runtime.flow.e.discovery.terminate(key, reason, now)
        self.runtime.after_input()

    def setup_done(self, key: PppoeSessionKey) -> None:
        self.runtime.flow.e.discovery.setup_done(key)


class CallFlowRuntime:
    """The call flow's Twisted side. ``hooks`` receive CallUp/CallEnded for metrics."""

    def __init__(
        self,
        reactor: Any,
        flow: CallFlow,
        *,
        store: StateStore,
        nas: NasInfo,
        nas_port_type: int,
        local_address: str,
        submit_record: Callable[[Any], object] | None = None,
        on_call_up: Callable[[CallUp], None] | None = None,
        on_call_ended: Callable[[CallEnded], None] | None = None,
        on_lockout: Callable[[LockOut], None] | None = None,
        splice_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.reactor = reactor
        self.flow = flow
        self.store = store
        self.nas = nas
        self.nas_port_type = nas_port_type
        self.local_address = local_address
        self.submit_record = submit_record
        self.on_call_up = on_call_up
        self.on_call_ended = on_call_ended
        self.on_lockout = on_lockout
        self.timer = EngineTimer(flow, reactor, self.after_input, name="callflow")
        # The data plane: FastSplice (userspace) unless the composition injects another one
        # (same interface: attach/detach/counters_for/upstream/downstream/install/uninstall).
        make = splice_factory or FastSplice
        self.splice = make(self._send_l2tp, self._send_eth)
        self.raw: RawEthernetPort | None = None
        self.l2tp: L2tpUdpAdapter[Any] | None = None
        self.radius_ports: list[Any] = []
        self.counters: dict[str, int] = {}
        self._draining_commands = False
        self._handlers = self._dispatch_table()
        self._fault = Faults("runtime", self.counters)
        self.store_errors = 0
        self._tunnel_acct: dict[int, str] = {}

    # -- wiring ------------------------------------------------------------------------------
    def make_raw_port(self, interfaces: Sequence[str], **kwargs: Any) -> RawEthernetPort:
        self.raw = RawEthernetPort(
            cast(Any, _DiscoveryFacade(self)),
            interfaces,
            self.reactor,
            on_session_frame=self.session_frame,
            **kwargs,
        )
        return self.raw

    def make_l2tp_adapter(self, address: str, port: int, **kwargs: Any) -> L2tpUdpAdapter[Any]:
        self.l2tp = L2tpUdpAdapter(
            _L2tpFacade(self), self.reactor, address, port, on_data=self._l2tp_data, **kwargs
        )
        self.l2tp.noisy = False
        return self.l2tp

    def listen_radius(self, address: str, count: int) -> None:
        for i in range(count):
            self.radius_ports.append(
                self.reactor.listenUDP(0, _RadiusSocket(self, i), interface=address)
            )

    def close_radius(self) -> None:
        for port in self.radius_ports:
            port.stopListening()
        self.radius_ports.clear()

    # -- inputs ------------------------------------------------------------------------------
    def session_frame(self, interface: str, src: MacAddress, session_id: int, ppp: bytes) -> None:
        if self.splice.upstream(interface, src, session_id, ppp):
            return
        self.flow.receive_session_frame(interface, src, session_id, ppp, self.reactor.seconds())
        self.after_input()

    def _l2tp_data(self, data: bytes, peer: Peer) -> None:
        self.splice.downstream(data, (str(peer[0]), int(peer[1])))

    def radius_datagram(self, data: bytes, addr: Peer, index: int) -> None:
        self.flow.receive_radius(data, addr, index, self.reactor.seconds())
        self.after_input()

    def kill(self, call_id: int, reason: str) -> bool:
        ok = self.flow.kill(call_id, reason, self.reactor.seconds())
        self.after_input()
        return ok

    def disconnect(self, call_ids: Iterable[int]) -> int:
        n = self.flow.disconnect(call_ids, self.reactor.seconds())
        self.after_input()
        return n

    def shutdown(self) -> None:
        self.flow.shutdown(self.reactor.seconds())
        self.after_input()

    # -- outputs -----------------------------------------------------------------------------
    def after_input(self) -> None:
        """Execute every pending command (re-entrant calls are folded into this loop)."""
        if self._draining_commands:
            return
        self._draining_commands = True
        try:
            for _ in range(100_000):
                commands = self.flow.commands()
                if not commands:
                    break
                for cmd in commands:
                    try:
                        self.execute(cmd)
                    except Exception as exc:  # a bug in one command must not stop the rest
                        self._fault("command_errors", exc, type(cmd).__name__)
        finally:
            self._draining_commands = False
        self.timer.rearm()

    def execute(self, cmd: Command) -> None:
        """Run one command (dispatch on its type: one dict lookup, not an isinstance chain)."""
        handler = self._handlers.get(type(cmd))
        if handler is None:
            self.counters["unknown_commands"] = self.counters.get("unknown_commands", 0) + 1
            return
        handler(cmd)

    def _dispatch_table(self) -> dict[type, Callable[[Any], None]]:
        return {
            SendEthernet: self._x_send_ethernet,
            SendRadius: self._x_send_radius,
            SendL2tp: self._x_send_l2tp,
            QueryLoad: self._x_query_load,
            Reserve: self._x_reserve,
            Release: self._x_release,
            LockOut: self._x_lock_out,
            ProbeResult: self._x_probe_result,
            AttachSplice: self._x_attach,
            DetachSplice: self._x_detach,
            AccountStart: self._x_account_start,
            AccountStop: self._account_stop,
            AccountTunnel: self._account_tunnel,
            CallUp: self._x_call_up,
            CallEnded: self._x_call_ended,
        }

    def _x_send_ethernet(self, cmd: SendEthernet) -> None:
        if self.raw is not None:
            self.raw.send_frame(cmd.interface, cmd.dst, cmd.ethertype, cmd.payload)

    def _x_send_radius(self, cmd: SendRadius) -> None:
        dg = cmd.datagram
        try:
            self.radius_ports[dg.socket_index % len(self.radius_ports)].write(dg.payload, dg.addr)
        except OSError as exc:
            self._fault("radius_send_errors", exc, dg.server_name)

    def _x_send_l2tp(self, cmd: SendL2tp) -> None:
        self._send_l2tp(cmd.payload, cmd.peer)

    def _x_query_load(self, cmd: QueryLoad) -> None:
        d = self.store.load_view(cmd.lns_ids, cmd.realm, cmd.tunnel_keys)
        self._answer(
            d,
            lambda v: self.flow.view_ready(cmd.call_id, v, self.now()),
            lambda: self.flow.view_ready(cmd.call_id, LoadView(), self.now()),
        )

    def _x_reserve(self, cmd: Reserve) -> None:
        caps = Caps(cmd.lns_max, cmd.tunnel_max, cmd.realm_max)
        d2 = self.store.reserve(cmd.lns_id, cmd.tunnel_key, cmd.realm, caps)
        self._answer(
            d2,
            lambda r: self.flow.reserved(cmd.call_id, r, self.now()),
            lambda: self.flow.reserved(cmd.call_id, None, self.now()),
        )

    def _x_release(self, cmd: Release) -> None:
        self._quiet(self.store.release(cmd.reservation))

    def _x_lock_out(self, cmd: LockOut) -> None:
        _log.warn(
            "LNS {lns} locked out for {hold:.0f} s: {reason}",
            lns=cmd.lns_id,
            hold=cmd.hold,
            reason=cmd.reason,
        )
        self._quiet(self.store.lock_out(cmd.lns_id, cmd.hold))
        if self.on_lockout is not None:
            self.on_lockout(cmd)

    def _x_probe_result(self, cmd: ProbeResult) -> None:
        self._quiet(self.store.probe_result(cmd.lns_id, cmd.ok, cmd.hold))

    def _x_attach(self, cmd: AttachSplice) -> None:
        self._attach(cmd, self.reactor.seconds())

    def _x_detach(self, cmd: DetachSplice) -> None:
        counters = self.splice.detach(cmd.call_id)
        self.flow.detached(cmd.call_id, counters, self.reactor.seconds())

    def _x_account_start(self, cmd: AccountStart) -> None:
        if self.submit_record is None:  # no accounting configured: build nothing
            return
        info = self.session_info(cmd.call)
        self._submit(start_record(info, self.wall()))
        self._submit(tunnel_link_record(AcctStatusType.TUNNEL_LINK_START, info, self.wall()))

    def _x_call_up(self, cmd: CallUp) -> None:
        _log.info(
            "call up {user} mac={mac} lns={lns} tunnel={tid} session={sid} in {latency:.3f} s",
            user=cmd.call.username,
            mac=format_mac(cmd.call.mac),
            lns=cmd.call.lns_id,
            tid=cmd.call.tunnel_id,
            sid=cmd.call.session_id,
            latency=cmd.setup_latency,
        )
        if self.on_call_up is not None:
            self.on_call_up(cmd)

    def _x_call_ended(self, cmd: CallEnded) -> None:
        _log.info(
            "call ended {user} mac={mac} lns={lns} state={state}: {reason}",
            user=cmd.call.username,
            mac=format_mac(cmd.call.mac),
            lns=cmd.call.lns_id,
            state=cmd.state,
            reason=cmd.reason,
        )
        if cmd.call.started_at is not None:
            self._quiet(self.store.unregister_session(cmd.call.acct_session_id))
        if self.on_call_ended is not None:
            self.on_call_ended(cmd)

    def send_interims(self) -> int:
        """RFC 2866 Interim-Update for every spliced call, with the splice's counters."""
        sent = 0
        now = self.now()
        for call in list(self.flow.calls.values()):
            if call.started_at is None or not call.started_accounting:
                continue
            k = self.splice.counters_for(call.call_id)
            if k is None:
                continue
            counters = Counters(
                k["input_octets"], k["output_octets"], k["input_packets"], k["output_packets"]
            )
            info = self.session_info(self.flow.snapshot(call))
            self._submit(interim_record(info, counters, int(now - call.started_at), self.wall()))
            sent += 1
        return sent

    # -- helpers -----------------------------------------------------------------------------
    def now(self) -> float:
        return float(self.reactor.seconds())

    def wall(self) -> float:
        return float(self.reactor.seconds())

    def _attach(self, cmd: AttachSplice, now: float) -> None:
        c = cmd.call
        if c.tunnel_id is None or c.session_id is None or c.peer_session_id is None:
            raise ValueError("splice without L2TP ids")
        self.splice.attach(
            call_id=c.call_id,
            interface=c.interface,
            mac=c.mac,
            pppoe_session_id=c.pppoe_session_id,
            tunnel_id=c.tunnel_id,
            session_id=c.session_id,
            peer_tunnel_id=c.peer_tunnel_id or 0,
            peer_session_id=c.peer_session_id,
            peer=cmd.peer,
            sequencing=cmd.sequencing,
        )
        record = SessionRecord(
            node=self.flow.config.node_id,
            session_key=c.acct_session_id,
            subscriber=c.username or format_mac(c.mac),
            lns_id=c.lns_id or "",
            tunnel_id=c.tunnel_id,
            session_id=c.session_id,
            start=self.wall(),
        )
        self._quiet(self.store.register_session(record))

    def session_info(self, c: CallSnapshot) -> SessionInfo:
        tunnel = None
        if c.lns_address is not None:
            tunnel = TunnelInfo(
                client_endpoint=self.local_address,
                server_endpoint=c.lns_address,
                connection=f"{c.tunnel_id}/{c.session_id}",
                assignment_id=c.assignment_id,
            )
        return SessionInfo(
            acct_session_id=c.acct_session_id,
            user_name=c.username,
            nas=self.nas,
            nas_port_type=self.nas_port_type,
            nas_port_id=c.nas_port_id,
            nas_port=c.pppoe_session_id,
            calling_station_id=format_mac(c.mac),
            class_attrs=c.class_attrs,
            tunnel=tunnel,
        )

    def _account_stop(self, cmd: AccountStop) -> None:
        if self.submit_record is None:
            return
        k = cmd.counters
        counters = Counters(
            input_octets=k.get("input_octets", 0),
            output_octets=k.get("output_octets", 0),
            input_packets=k.get("input_packets", 0),
            output_packets=k.get("output_packets", 0),
        )
        info = self.session_info(cmd.call)
        cause = AcctTerminateCause(cmd.terminate_cause)
        seconds = int(cmd.session_time)
        self._submit(stop_record(info, counters, seconds, cause, self.wall()))
        self._submit(
            tunnel_link_record(
                AcctStatusType.TUNNEL_LINK_STOP,
                info,
                self.wall(),
                counters=counters,
                session_time=seconds,
                cause=cause,
            )
        )

    def _account_tunnel(self, cmd: AccountTunnel) -> None:
        if self.submit_record is None:
            return
        status = AcctStatusType(cmd.status)
        info = TunnelInfo(
            client_endpoint=self.local_address,
            server_endpoint=cmd.lns_address,
            connection=str(cmd.tunnel_id),
            assignment_id=cmd.assignment_id,
        )
        # RFC 2867: Tunnel-Start and the Tunnel-Stop of one tunnel carry one Acct-Session-Id
        # (the spool's open-record table pairs them by it), chosen when the tunnel starts.
        if status is AcctStatusType.TUNNEL_START:
            session_id = self._tunnel_acct_id(cmd.tunnel_id)
            self._tunnel_acct[cmd.tunnel_id] = session_id
        else:
            known = self._tunnel_acct.pop(cmd.tunnel_id, "")
            session_id = known or self._tunnel_acct_id(cmd.tunnel_id)
        self._submit(tunnel_record(status, session_id, self.nas, info, self.wall()))

    def _tunnel_acct_id(self, tunnel_id: int) -> str:
        return f"{self.flow.config.node_id}-T{tunnel_id:04X}-{int(self.wall()):X}"

    def _submit(self, record: Any) -> None:
        if self.submit_record is not None:
            self.submit_record(record)

    def _answer(
        self, d: Deferred[Any], ok: Callable[[Any], None], failed: Callable[[], None]
    ) -> None:
        def good(value: Any) -> None:
            ok(value)
            self.after_input()

        def bad(f: Failure) -> None:
            self.store_errors += 1
            self._fault("store_errors", f.value or RuntimeError("failure"), "state store")
            failed()
            self.after_input()

        d.addCallbacks(good, bad)

    def _quiet(self, d: Deferred[Any]) -> None:
        def bad(f: Failure) -> None:
            self.store_errors += 1
            self._fault("store_errors", f.value or RuntimeError("failure"), "state store")

        d.addErrback(bad)

    def _send_l2tp(self, payload: bytes, peer: Peer) -> None:
        transport = self.l2tp.transport if self.l2tp is not None else None
        if transport is None:
            return
        try:
            cast(Any, transport).write(payload, peer)
        except OSError as exc:
            self._fault("l2tp_send_errors", exc, peer[0])

    def _send_eth(self, interface: str, dst: MacAddress, ethertype: int, payload: bytes) -> None:
        if self.raw is not None:
            self.raw.send_frame(interface, dst, ethertype, payload)
