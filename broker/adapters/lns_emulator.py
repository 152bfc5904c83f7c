"""The LNS emulator (:class:`broker.sim.lns.LnsEmulator`) on a UDP socket (RFC 2661 §8.1).

Built on :class:`~broker.adapters.l2tp_udp.L2tpUdpAdapter`: control messages go to the engine's
``receive_datagram``; data messages (T=0) come back through ``on_data`` and are fed to
``receive_data``; after each the adapter flushes (writes ``datagrams_to_send``, drains events,
re-arms its one timer, which covers the PPP timers of every session too).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from broker.adapters.l2tp_udp import L2TP_PORT, L2tpUdpAdapter, Peer
from broker.l2tp.events import (
    IncomingTunnel,
    SessionClosed,
    SessionEstablished,
    TunnelClosed,
    TunnelEstablished,
)
from broker.sim.lns import LnsEmulator, LnsEvent, LnsIpcpUp

__all__ = ["LnsEmulatorService"]

_log = Logger(namespace="broker.adapters.lns_emulator")


class LnsEmulatorService:
    """Runs an :class:`LnsEmulator` on ``local_address:port`` (``port=0``: any free port)."""

    def __init__(
        self,
        engine: LnsEmulator,
        reactor: Any,
        local_address: str,
        port: int = L2TP_PORT,
        *,
        on_event: Callable[[LnsEvent], None] | None = None,
        log_events: bool = True,
    ) -> None:
        self.engine = engine
        self.reactor = reactor
        self.on_event_cb = on_event
        self.log_events = log_events
        self.adapter: L2tpUdpAdapter[LnsEvent] = L2tpUdpAdapter(
            engine,
            reactor,
            local_address,
            port,
            on_event=self._on_event,
            on_data=self._on_data,
        )
        self.counters: dict[str, int] = {}

    @property
    def port(self) -> int:
        return self.adapter.port

    def start(self) -> None:
        self.adapter.start()
        _log.info(
            "LNS emulator on {address}:{port}, PPP address {own}",
            address=self.adapter.local_address,
            port=self.port,
            own=self.engine.own_address,
        )

    def stop(self) -> Any:
        return self.adapter.stop()

    def die(self) -> None:
        self.engine.die()
        self.adapter.timer.rearm()

    def _on_data(self, data: bytes, peer: Peer) -> None:
        self.engine.receive_data(data, peer, self.reactor.seconds())
        self.adapter.flush()

    def _on_event(self, event: LnsEvent) -> None:
        name = type(event).__name__
        self.counters[name] = self.counters.get(name, 0) + 1
        if self.log_events:
            if isinstance(event, IncomingTunnel | TunnelEstablished):
                _log.info(
                    "{event} tunnel={tid} peer={peer}",
                    event=name,
                    tid=event.tunnel_id,
                    peer=f"{event.peer[0]}:{event.peer[1]}",
                )
            elif isinstance(event, TunnelClosed):
                _log.info(
                    "TunnelClosed tunnel={tid} reason={reason}",
                    tid=event.tunnel_id,
                    reason=event.reason,
                )
            elif isinstance(event, SessionEstablished | SessionClosed):
                _log.debug(
                    "{event} tunnel={tid} session={sid}",
                    event=name,
                    tid=event.tunnel_id,
                    sid=event.session_id,
                )
            elif isinstance(event, LnsIpcpUp):
                _log.debug(
                    "IPCP up tunnel={tid} session={sid} address={address}",
                    tid=event.tunnel_id,
                    sid=event.session_id,
                    address=event.address,
                )
        if self.on_event_cb is not None:
            self.on_event_cb(event)
