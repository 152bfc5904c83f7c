"""Composition: build one broker node from a :class:`BrokerConfig` as a Twisted MultiService.

The control API binds before anything else starts (a node that cannot be operated does not
start: :class:`ControlListenError`, and ``run`` exits with the reason). Services, in start
order: state store heartbeat, accounting (spool replay, Accounting-On, spool alarms), the call
flow runtime (L2TP socket, RADIUS sockets, raw PPPoE sockets), Disconnect/CoA listener,
control API. SIGTERM ends every call cleanly (CDN, PADT, Accounting-Stop), closes
the tunnels (StopCCN), sends Accounting-Off and stops. SIGHUP reloads the realm policies
without touching established sessions. SIGUSR2 starts tracemalloc, then writes a snapshot to the
state directory at each further SIGUSR2 (memory diagnostics).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import defer, endpoints, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from broker import __version__
from broker.accounting.service import AccountingService
from broker.accounting.spool import Spool
from broker.adapters.callflow_runtime import CallFlowRuntime
from broker.adapters.dynauth_udp import DynAuthListener
from broker.callflow.commands import CallEnded, CallUp, LockOut
from broker.callflow.orchestrator import CallFlow, CallFlowConfig
from broker.callflow.wiring import CallFlowEngines
from broker.config.model import BrokerConfig
from broker.control.api import ApiError, ControlFactory, endpoint_description, make_factory
from broker.control.metrics import Registry
from broker.dataplane.fastpath import FastSplice
from broker.dataplane.kernel import KernelSplice, kernel_support
from broker.l2tp.endpoint import L2tpEndpoint
from broker.policy.loader import load_policies
from broker.policy.model import PolicySet, lns_id_for
from broker.ppp.link import LinkConfig
from broker.pppoe.discovery import DiscoveryConfig, DiscoveryServer
from broker.radius.accounting import NasInfo
from broker.radius.acct_client import AccountingClient, AcctServer
from broker.radius.client import RadiusClient, RadiusServer
from broker.radius.dynauth import DisconnectOutcome, DynAuthClient, DynAuthServer, SessionCriteria
from broker.state.base import DeferredStateStore, StateStore
from broker.state.memory import MemoryStateCore
from broker.wire import format_mac

_log = Logger(namespace="broker.service")


class DataplaneUnavailable(Exception):
    pass


class ControlListenError(Exception):
    """The control API cannot listen: the message names the address, the reason and the fix;
    ``permission`` tells a missing privilege (exit 3) from a configuration problem (exit 2)."""

    def __init__(self, listen: str, reason: BaseException | None) -> None:
        cause = getattr(reason, "socketError", None) or reason
        errno_ = getattr(cause, "errno", None)
        why = getattr(cause, "strerror", None) or str(cause)
        self.permission = errno_ in (1, 13)  # EPERM, EACCES
        if errno_ == 98:  # EADDRINUSE
            fix = "another process listens there: stop it or change 'control:'"
        elif errno_ == 99:  # EADDRNOTAVAIL
            fix = "the address is not on this host: change 'control:'"
        elif self.permission:
            fix = "the daemon's user may not bind there (a port < 1024 or the socket's directory)"
        else:
            fix = "change 'control:' (HOST:PORT on loopback or unix:/path)"
        super().__init__(f"control API cannot listen on {listen}: {why}; fix: {fix}")


def choose_dataplane(
    requested: str, probe: Callable[[], tuple[bool, str]] | None = None
) -> tuple[str, str]:
    """(data plane, why): ``kernel`` needs AF_PPPOX (PPPoE, PPPoL2TP), /dev/ppp and the L2TP
    netlink family (issue 7); ``auto`` takes it when present, ``userspace`` otherwise."""
    if requested == "userspace":
        return "userspace", "configured"
    ok, why = (probe or kernel_support)()
    if ok:
        return "kernel", why
    if requested == "kernel":
        raise DataplaneUnavailable(
            f"dataplane: kernel is not available on this host: {why}; fix: load ppp_generic, "
            "pppoe, l2tp_ppp and l2tp_netlink (Linux 5.11+), or set dataplane: userspace or auto"
        )
    return "userspace", f"auto: {why}"


def make_splice_factory(dataplane: str) -> Callable[..., Any] | None:
    """The runtime's ``splice_factory`` for the chosen data plane (None: its default)."""
    if dataplane != "kernel":
        return None

    def log(message: str) -> None:
        _log.warn("{message}", message=message)

    def make(send_l2tp: Any, send_eth: Any) -> KernelSplice:
        return KernelSplice(send_l2tp, send_eth, log=log)

    return make


def make_store(cfg: BrokerConfig, reactor: Any) -> StateStore:
    if cfg.state == "memory":
        return DeferredStateStore(MemoryStateCore(cfg.node_id))
    from broker.state.redis_store import RedisStateCore, make_redis_store

    return make_redis_store(RedisStateCore(cfg.state, node=cfg.node_id), reactor)


#: LNS addresses come from RADIUS (any number of them over a daemon's life): per-LNS
#: lockout series and remembered lockouts are bounded by this.
MAX_LNS_SERIES = 1024


class BrokerMetrics:
    """The node's Prometheus metrics (names documented in README 'Metrics')."""

    def __init__(self, node: BrokerNode) -> None:
        r = self.registry = Registry()
        self.setup_seconds = r.histogram("setup_seconds", "Call set-up latency (PADS to splice)")
        self.setup_failures = r.counter(
            "setup_failures_total", "Calls that ended before the splice, by reason", ("reason",)
        )
        self.calls_ended = r.counter(
            "calls_ended_total", "Calls ended after the splice, by reason", ("reason",)
        )
        self.lockouts = r.counter(
            "lns_lockouts_total", "LNS lockouts", ("lns",), max_series=MAX_LNS_SERIES
        )
        r.gauge("sessions", "Calls by state", ("state",), collect=node.sessions_by_state)
        r.gauge(
            "sessions_by_realm",
            "Spliced sessions by realm",
            ("realm",),
            collect=lambda: node.spliced_by("realm"),
        )
        r.gauge(
            "sessions_by_lns",
            "Spliced sessions by LNS",
            ("lns",),
            collect=lambda: node.spliced_by("lns_id"),
        )
        r.gauge("tunnels", "L2TP tunnels", collect=lambda: {(): float(len(node.flow.tunnels))})
        r.gauge(
            "engine_counter",
            "Counters of the protocol engines",
            ("engine", "name"),
            collect=node.engine_counters,
        )
        r.gauge(
            "spool_depth",
            "Accounting records waiting in the spool",
            collect=lambda: {(): float(node.spool.depth()) if node.spool else 0.0},
        )
        r.gauge(
            "spool_alarm",
            "1 while the accounting spool holds at least spool_alarm_threshold records",
            collect=lambda: {(): node.spool_alarm("records")},
        )
        r.gauge(
            "spool_alarm_threshold",
            "Records waiting in the spool at which the spool alarm is raised",
            collect=lambda: {(): float(node.cfg.accounting.spool_alarm_records)},
        )
        r.gauge(
            "spool_disk_alarm",
            "1 while the spool's filesystem has less free space than the alarm floor",
            collect=lambda: {(): node.spool_alarm("disk")},
        )
        r.gauge(
            "spool_disk_free_bytes",
            "Free octets on the accounting spool's filesystem (-1: no spool or unknown)",
            collect=lambda: {(): node.spool_free_bytes()},
        )
        r.gauge(
            "draining",
            "1 when the node refuses new calls",
            collect=lambda: {(): float(node.flow.draining)},
        )
        r.gauge(
            "l2tp_retransmits",
            "L2TP control retransmissions",
            collect=lambda: {(): float(node.l2tp_retransmits())},
        )


class BrokerNode(MultiService):
    """One broker node (see module docstring)."""

    def __init__(self, cfg: BrokerConfig, reactor: Any, *, interfaces: tuple[str, ...] = ()):
        super().__init__()
        self.cfg = cfg
        self.reactor = reactor
        self.started = time.time()
        self.dataplane, self.dataplane_reason = choose_dataplane(cfg.dataplane)
        self.policies: PolicySet = load_policies(cfg.policies)
        self.policy_generation = 0
        cookie = cfg.pppoe.cookie_secret.resolve() if cfg.pppoe.cookie_secret else None
        discovery = DiscoveryServer(
            DiscoveryConfig(
                ac_name=cfg.pppoe.ac_name,
                cookie_secret=cookie or secrets.token_bytes(32),
                service_names=cfg.pppoe.service_names,
                max_sessions=cfg.pppoe.max_sessions,
                max_setups=cfg.pppoe.max_setups,
                padi_per_mac_per_s=cfg.pppoe.padi_per_mac_per_s,
                pado_per_s=cfg.pppoe.pado_per_s,
                padt_per_s=cfg.pppoe.padt_per_s,
                max_sessions_per_mac=cfg.pppoe.max_sessions_per_mac,
                rate_table_size=cfg.pppoe.padi_table_size,
            )
        )
        radius = RadiusClient(
            [
                RadiusServer(s.name, s.address, s.port, s.secret.resolve(), s.timeout, s.dead_time)
                for s in cfg.radius.servers
            ],
            sockets=cfg.radius.sockets,
            nas_identifier=cfg.radius.nas_identifier,
        )
        engines = CallFlowEngines(
            discovery=discovery,
            radius=radius,
            l2tp=L2tpEndpoint(),
            link_config=LinkConfig(
                mru=cfg.ppp.mru,
                auth=cfg.ppp.auth,
                echo_interval=cfg.ppp.echo_interval,
                echo_failures=cfg.ppp.echo_failures,
            ),
            resolve_secret=cfg.resolve_lns_secret,
        )
        self.flow = CallFlow(
            CallFlowConfig(
                node_id=cfg.node_id,
                nas_ip=cfg.radius.nas_ip,
                nas_identifier=cfg.radius.nas_identifier,
                nas_port_type=cfg.radius.nas_port_type,
                host_name=cfg.l2tp.host_name,
                hide_avps=cfg.l2tp.hide_avps,
                retransmit=cfg.l2tp.retransmit,
                hello_interval=cfg.l2tp.hello_interval,
                receive_window=cfg.l2tp.receive_window,
            ),
            engines,
            self.policies,
        )
        self.store = make_store(cfg, reactor)
        self.nas = NasInfo(cfg.radius.nas_ip, cfg.radius.nas_identifier)
        self.spool: Spool | None = None
        self.accounting: AccountingService | None = None
        if cfg.radius.accounting_servers:
            sync: Any = cfg.accounting.spool_sync
            self.spool = Spool(cfg.state_dir / "accounting.sqlite", sync=sync)
            client = AccountingClient(
                [
                    AcctServer(s.name, (s.address, s.port), s.secret.resolve())
                    for s in cfg.radius.accounting_servers
                ]
            )
            self.accounting = AccountingService(
                self.spool, client, reactor=reactor, bind_address=cfg.radius.bind,
                flush_interval=cfg.accounting.spool_sync_interval, nas=self.nas,
                boot_id=f"{cfg.node_id}-{int(self.started):X}",
                alarm_records=cfg.accounting.spool_alarm_records,
            )  # fmt: skip
            self.accounting.setServiceParent(self)
        self.metrics = BrokerMetrics(self)
        self.runtime = CallFlowRuntime(
            reactor, self.flow, store=self.store, nas=self.nas,
            nas_port_type=cfg.radius.nas_port_type, local_address=cfg.l2tp.listen,
            submit_record=self.accounting.submit if self.accounting else None,
            on_call_up=self._call_up, on_call_ended=self._call_ended, on_lockout=self._lockout,
            splice_factory=make_splice_factory(self.dataplane),
        )  # fmt: skip
        self.locked: dict[str, float] = {}
        self.drained: set[str] = set()
        self.dynauth: DynAuthListener | None = None
        _RuntimeService(self, interfaces or cfg.interfaces).setServiceParent(self)
        if cfg.radius.dynauth_listen is not None:
            engine = DynAuthServer(
                [DynAuthClient(f"dac{i}", c.address, c.secret.resolve())
                 for i, c in enumerate(cfg.radius.dynauth_clients)],
                nas_ip=cfg.radius.nas_ip, nas_identifier=cfg.radius.nas_identifier,
                find_and_disconnect=self.find_and_disconnect,
            )  # fmt: skip
            self.dynauth = DynAuthListener(
                engine, reactor=reactor, address=cfg.radius.dynauth_listen,
                port=cfg.radius.dynauth_port,
            )  # fmt: skip
            self.dynauth.setServiceParent(self)
        self.control = _ControlService(self)
        self.control.setServiceParent(self)

    def startService(self) -> None:  # Twisted's name
        # The control API binds first: if it cannot (port in use, permission), nothing else
        # has started (no sockets, no Accounting-On) and `run` exits with the reason.
        self.control.listen()
        super().startService()

    # -- events --------------------------------------------------------------------------
    def _call_up(self, ev: CallUp) -> None:
        self.metrics.setup_seconds.observe(ev.setup_latency)

    def _call_ended(self, ev: CallEnded) -> None:
        reason = ev.reason.split(":")[0]
        if ev.call.started_at is None:
            self.metrics.setup_failures.inc(reason)
        else:
            self.metrics.calls_ended.inc(reason)

    def _lockout(self, cmd: LockOut) -> None:
        self.metrics.lockouts.inc(cmd.lns_id)
        now = self.reactor.seconds()
        if len(self.locked) >= MAX_LNS_SERIES:  # forget lockouts that have ended
            self.locked = {k: v for k, v in self.locked.items() if v > now}
        self.locked[cmd.lns_id] = now + cmd.hold

    # -- operations ----------------------------------------------------------------------
    def reload_policies(self) -> None:
        try:
            policies = load_policies(self.cfg.policies)
        except Exception as exc:
            _log.error("SIGHUP: policies not reloaded, keeping the old ones: {error}", error=exc)
            return
        self.policies = policies
        self.flow.policies = policies
        self.policy_generation += 1
        _log.info("SIGHUP: policies reloaded (generation {g})", g=self.policy_generation)

    def find_and_disconnect(self, c: SessionCriteria) -> DisconnectOutcome:
        if c.framed_ip_address is not None or c.acct_multi_session_id is not None:
            # addresses come from the LNS (the LAC never sees IPCP results) and multi-session
            # ids are not issued: such a request names nothing we can identify.
            return DisconnectOutcome.NOT_FOUND
        if all(
            v is None for v in (c.user_name, c.acct_session_id, c.calling_station_id, c.nas_port_id)
        ):
            return DisconnectOutcome.NOT_FOUND
        found = []
        for call in self.flow.calls.values():
            if c.nas_port_id is not None and self.flow.snapshot(call).nas_port_id != c.nas_port_id:
                continue
            if c.user_name is not None and call.username != c.user_name:
                continue
            if c.acct_session_id is not None and call.acct_session_id != c.acct_session_id:
                continue
            if c.calling_station_id is not None and format_mac(call.key.mac) != (
                c.calling_station_id.lower().replace("-", ":")
            ):
                continue
            found.append(call.call_id)
        if not found:
            return DisconnectOutcome.NOT_FOUND
        self.runtime.disconnect(found)
        return DisconnectOutcome.DISCONNECTED

    def sessions_by_state(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for call in self.flow.calls.values():
            out[(call.state.value,)] = out.get((call.state.value,), 0.0) + 1
        return out

    def spliced_by(self, field: str) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for call in self.flow.calls.values():
            if call.started_at is None:
                continue
            value = (
                call.realm
                if field == "realm"
                else (call.candidate.lns_id if call.candidate else "")
            )
            out[(value,)] = out.get((value,), 0.0) + 1
        return out

    def engine_counters(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        e = self.flow.e
        sources: list[tuple[str, dict[str, int]]] = [
            ("callflow", self.flow.counters), ("pppoe", e.discovery.counters),
            ("radius", e.radius.counters), ("l2tp", e.l2tp.counters),
            ("splice", self.runtime.splice.counters), ("runtime", self.runtime.counters),
        ]  # fmt: skip
        if self.runtime.raw is not None:
            sources.append(("rawether", self.runtime.raw.counters))
        if self.dynauth is not None:
            sources.append(("dynauth", self.dynauth.engine.counters))
        if self.control.factory is not None:
            sources.append(("control", self.control.factory.counters))
        for engine, counters in sources:
            for name, v in counters.items():
                out[(engine, name)] = float(v)
        return out

    def spool_alarm(self, which: str) -> float:
        acct = self.accounting
        if acct is None:
            return 0.0
        return float(acct.alarm.records_active if which == "records" else acct.alarm.disk_active)

    def spool_free_bytes(self) -> float:
        free = self.accounting.alarm.free_bytes if self.accounting is not None else None
        return -1.0 if free is None else float(free)

    def alarms(self) -> list[str]:
        """Names of the alarms raised now (``spool_records``, ``spool_disk``)."""
        if self.accounting is None:
            return []
        return [a.value for a in self.accounting.alarm.active]

    def l2tp_retransmits(self) -> int:
        # Tunnels count into their endpoint's counters dict (one shared dict): read it once.
        return int(self.flow.e.l2tp.counters.get("retransmits", 0))

    # -- control API backend ---------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "node": self.cfg.node_id,
            "version": __version__,
            "uptime": round(time.time() - self.started, 1),
            "calls": len(self.flow.calls),
            "sessions": sum(1 for c in self.flow.calls.values() if c.started_at is not None),
            "tunnels": len(self.flow.tunnels),
            "dataplane": self.dataplane,
            "dataplane_features": dict(getattr(self.runtime.splice, "features", None) or {}),
            "state": "memory" if self.cfg.state == "memory" else "redis",
            "draining": self.flow.draining,
            "policy_generation": self.policy_generation,
            "spool_depth": self.spool.depth() if self.spool else 0,
            "spool_alarm_records": self.cfg.accounting.spool_alarm_records,
            "alarms": self.alarms(),
        }

    def sessions(self) -> list[dict[str, Any]]:
        now = self.reactor.seconds()
        rows = []
        for call in self.flow.calls.values():
            row = self.flow.describe(call)
            row["uptime"] = round(now - call.started_at, 1) if call.started_at else None
            counters = self.runtime.splice.counters_for(call.call_id)
            if counters:
                row.update(counters)
            rows.append(row)
        return rows

    def tunnels(self) -> list[dict[str, Any]]:
        rows = []
        for rec in self.flow.tunnels.values():
            info = self.flow.e.l2tp.tunnel_info(rec.tunnel_id)
            rows.append({
                "tunnel_id": rec.tunnel_id, "lns": rec.lns_id, "peer": f"{rec.peer[0]}",
                "peer_tunnel_id": info[1] if info else None,
                "state": info[2] if info else "gone", "sessions": len(rec.calls),
            })  # fmt: skip
        return rows

    def _lns_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for policy in (self.policies.defaults, *self.policies.realms):
            for entry in policy.static_pool:
                names[entry.name] = lns_id_for(entry.address, entry.port)
        return names

    def lns(self) -> list[dict[str, Any]]:
        now = self.reactor.seconds()
        names = self._lns_names()
        by_id = {v: k for k, v in names.items()}
        ids = set(names.values()) | {r.lns_id for r in self.flow.tunnels.values()}
        ids |= set(self.locked)
        counts: dict[str, int] = {}
        for call in self.flow.calls.values():
            if call.started_at is not None and call.candidate is not None:
                counts[call.candidate.lns_id] = counts.get(call.candidate.lns_id, 0) + 1
        rows = []
        for lns_id in sorted(ids):
            until = self.locked.get(lns_id, 0.0)
            rows.append({
                "name": by_id.get(lns_id, lns_id), "address": lns_id,
                "sessions": counts.get(lns_id, 0), "locked_out": until > now,
                "locked_until": round(until - now, 1) if until > now else None,
                "drained": lns_id in self.drained,
            })  # fmt: skip
        return rows

    def realms(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for call in self.flow.calls.values():
            if call.started_at is not None:
                counts[call.realm] = counts.get(call.realm, 0) + 1
        return [
            {"realm": p.name, "match": f"{p.match.kind}:{p.match.value}",
             "tunnel_source": p.tunnel_source, "strategy": p.strategy,
             "sessions": counts.get(p.name, 0), "max_sessions": p.max_sessions}
            for p in (*self.policies.realms, self.policies.defaults)
        ]  # fmt: skip

    def lns_action(self, name: str, action: str) -> defer.Deferred[dict[str, Any]]:
        names = self._lns_names()
        lns_id = names.get(name) or (name if ":" in name else f"{name}:1701")
        known = set(names.values()) | {r.lns_id for r in self.flow.tunnels.values()}
        if lns_id not in known and name not in names:
            raise ApiError(404, f"no LNS named {name!r}; see `l2tp-broker show lns`")
        hold = 10 * 365 * 86400.0
        d: defer.Deferred[Any]
        if action == "drain":
            self.drained.add(lns_id)
            d = self.store.drain(lns_id, True)
        elif action == "undrain":
            self.drained.discard(lns_id)
            d = self.store.drain(lns_id, False)
        elif action == "lock":
            self.locked[lns_id] = self.reactor.seconds() + hold
            d = self.store.lock_out(lns_id, hold)
        else:
            self.locked.pop(lns_id, None)
            d = self.store.unlock(lns_id)
        _log.info("operator: LNS {lns} {action}", lns=lns_id, action=action)
        return d.addCallback(
            lambda _: {"name": name, "lns_id": lns_id, "action": action, "ok": True}
        )

    def kill_session(self, session_id: str) -> dict[str, Any]:
        ids = [
            c.call_id
            for c in self.flow.calls.values()
            if str(c.call_id) == session_id or c.acct_session_id == session_id
        ]
        if not ids:
            raise KeyError(f"no session {session_id!r}; see `l2tp-broker show sessions`")
        for cid in ids:
            self.runtime.kill(cid, "operator-kill")
        return {"id": session_id, "killed": True}

    def set_drain(self, on: bool) -> dict[str, Any]:
        self.flow.draining = on
        _log.info("operator: drain {state}", state="on" if on else "off")
        return {"draining": on}

    def metrics_text(self) -> str:
        return self.metrics.registry.render()

    # -- lifecycle ------------------------------------------------------------------------
    def graceful_stop(self) -> defer.Deferred[None]:
        """CDN and PADT for every call, Accounting-Stop for each, StopCCN for every tunnel."""
        _log.info("shutting down: ending {n} calls", n=len(self.flow.calls))
        self.runtime.shutdown()
        d: defer.Deferred[None] = defer.Deferred()

        def wait(deadline: float) -> None:
            busy = self.flow.calls or any(
                t.state.name != "IDLE" for t in self.flow.e.l2tp.tunnels.values()
            )
            if busy and self.reactor.seconds() < deadline:
                self.reactor.callLater(0.1, wait, deadline)
            else:
                d.callback(None)

        wait(self.reactor.seconds() + 3.0)
        return d


class _RuntimeService(Service):
    def __init__(self, node: BrokerNode, interfaces: tuple[str, ...]) -> None:
        self.node = node
        self.interfaces = interfaces
        self.heartbeat: task.LoopingCall | None = None
        self.interim: task.LoopingCall | None = None

    def startService(self) -> None:  # Twisted's name
        node, cfg = self.node, self.node.cfg
        rt = node.runtime
        rt.make_l2tp_adapter(cfg.l2tp.listen, cfg.l2tp.port).start()
        rt.listen_radius(cfg.radius.bind, cfg.radius.sockets)
        if self.interfaces:
            rt.make_raw_port(self.interfaces).startService()
        # FastSplice: ring + socket loops on the hot sockets; KernelSplice: tunnel sockets,
        # drop filter, and its userspace fallback's loops
        if cfg.l2tp.direct_egress and isinstance(rt.splice, FastSplice):
            rt.splice.install(rt.raw, rt.l2tp, direct=True)
        else:
            rt.splice.install(rt.raw, rt.l2tp)
        features = getattr(rt.splice, "features", None)
        if features:
            _log.info(
                "data plane features: {features}",
                features=", ".join(k for k, on in sorted(features.items()) if on) or "none",
            )
        self.heartbeat = task.LoopingCall(node.store.heartbeat)
        self.heartbeat.clock = node.reactor
        self.heartbeat.start(5.0, now=True)
        if cfg.radius.interim_interval > 0 and node.accounting is not None:
            self.interim = task.LoopingCall(rt.send_interims)
            self.interim.clock = node.reactor
            self.interim.start(cfg.radius.interim_interval, now=False)
        _log.info(
            "l2tp-broker {version} node {node}: dataplane {dp} ({why}), state {state}, L2TP on "
            "{addr}:{port}, PPPoE on {ifaces}",
            version=__version__, node=cfg.node_id, dp=node.dataplane, why=node.dataplane_reason,
            state="memory" if cfg.state == "memory" else "redis", addr=cfg.l2tp.listen,
            port=rt.l2tp.port if rt.l2tp else cfg.l2tp.port, ifaces=",".join(self.interfaces),
        )  # fmt: skip
        super().startService()

    def stopService(self) -> defer.Deferred[None]:  # Twisted's name
        super().stopService()
        node = self.node
        for loop in (self.heartbeat, self.interim):
            if loop is not None and loop.running:
                loop.stop()
        d = node.graceful_stop()

        def close(_: object) -> None:
            rt = node.runtime
            rt.timer.stop()
            rt.splice.uninstall()
            if rt.raw is not None:
                rt.raw.stopService()
            rt.close_radius()
            if rt.l2tp is not None:
                rt.l2tp.stop()

        return d.addCallback(close)


class _ControlService(Service):
    def __init__(self, node: BrokerNode) -> None:
        self.node = node
        self.port: Any = None
        self.factory: ControlFactory | None = None

    def listen(self) -> None:
        """Bind the control API now; raises :class:`ControlListenError` when it cannot."""
        if self.port is not None:
            return
        listen = self.node.cfg.control
        if listen.startswith("unix:"):
            path = Path(listen[5:])
            if path.exists() and path.is_socket():
                if _unix_socket_live(path):
                    raise ControlListenError(listen, OSError(98, "Address already in use"))
                path.unlink()  # stale, from a previous run
        ep = endpoints.serverFromString(self.node.reactor, endpoint_description(listen))
        result: list[Any] = []
        self.factory = make_factory(self.node)
        d = ep.listen(self.factory)
        d.addBoth(result.append)
        if not result:  # not synchronous (other endpoint types): log a late failure
            d.addCallback(lambda p: setattr(self, "port", p))
            d.addErrback(lambda f: _log.error("{e}", e=ControlListenError(listen, f.value)))
            return
        if isinstance(result[0], Failure):
            raise ControlListenError(listen, result[0].value)
        self.port = result[0]

    def startService(self) -> None:  # Twisted's name
        self.listen()
        super().startService()

    def stopService(self) -> Any:  # Twisted's name
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


def _unix_socket_live(path: Path) -> bool:
    """Whether a process accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def install_signals(node: BrokerNode, reactor: Any, stop: Callable[[], None]) -> None:
    def on_term(signum: int, frame: Any) -> None:
        reactor.callFromThread(stop)

    def on_hup(signum: int, frame: Any) -> None:
        reactor.callFromThread(node.reload_policies)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)


def write_memory_snapshot(directory: Path, frames: int = 16) -> Path | None:
    """SIGUSR2 (memory diagnostics): the first signal starts tracemalloc (``frames`` frames per
    traceback; nothing allocated before is traced), each later one runs a full garbage
    collection (the count of unreachable objects is logged) and writes a snapshot to
    ``<state_dir>/memory-<pid>-<n>.tracemalloc``; compare two with
    ``python -m ops.bench.leak_lab --compare A B``. Tracing costs CPU and memory: restart the
    daemon to turn it off."""
    import tracemalloc

    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)
        _log.warn("SIGUSR2: tracemalloc started; the next SIGUSR2 writes a snapshot")
        return None
    import gc

    unreachable = gc.collect()  # the snapshot shows what is kept, not garbage in cycles
    pid = os.getpid()
    n = len(list(directory.glob(f"memory-{pid}-*.tracemalloc")))
    path = directory / f"memory-{pid}-{n}.tracemalloc"
    try:
        tracemalloc.take_snapshot().dump(str(path))
    except OSError as exc:
        _log.error("SIGUSR2: memory snapshot not written: {error}", error=exc)
        return None
    _log.info(
        "SIGUSR2: memory snapshot written to {path} ({n} unreachable objects collected first)",
        path=str(path),
        n=unreachable,
    )
    return path


def state_dir_ready(cfg: BrokerConfig) -> None:
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.state_dir, 0o700)
