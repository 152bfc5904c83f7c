"""Two L2TP endpoints (our LAC and our LNS role) joined by a lossy, duplicating, reordering
link with a fake clock: the paired-engine harness of tests/l2tp."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import TypeVar

from broker.l2tp.config import TunnelConfig
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import L2tpEvent
from broker.l2tp.session import SessionPolicy
from broker.l2tp.tunnel import TunnelPolicy

E = TypeVar("E")
LAC_ADDR = ("192.0.2.1", 1701)
LNS_ADDR = ("192.0.2.2", 1701)


class Net:
    """Two endpoints joined by a lossy, duplicating, reordering link with a fake clock."""

    def __init__(
        self,
        *,
        seed: int = 1,
        loss: float = 0.0,
        dup: float = 0.0,
        jitter: float = 0.0,
        lns_config: TunnelConfig | None = None,
        lns: bool = True,
        lns_policy: SessionPolicy | None = None,
        lns_tunnel_policy: TunnelPolicy | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.lac = L2tpEndpoint(rand_bytes=random.Random(seed + 1).randbytes, strict=True)
        self.lns = L2tpEndpoint(
            rand_bytes=random.Random(seed + 2).randbytes,
            lns_config=(lns_config or TunnelConfig(host_name="lns")) if lns else None,
            lns_policy=lns_policy,
            lns_tunnel_policy=lns_tunnel_policy,
            strict=True,
        )
        self.loss, self.dup, self.jitter = loss, dup, jitter
        self.now = 0.0
        self.wire: list[tuple[float, int, int, bytes]] = []  # (time, seq, 0=to LNS/1=to LAC)
        self.seq = 0
        self.lac_events: list[L2tpEvent] = []
        self.lns_events: list[L2tpEvent] = []
        self.sent: list[tuple[float, str, bytes]] = []
        self.drop_to: set[int] = set()  # directions that lose everything (0 LAC->LNS, 1 back)

    def _transmit(self, direction: int, data: bytes) -> None:
        self.sent.append((self.now, "lac" if direction == 0 else "lns", data))
        if direction in self.drop_to or self.rng.random() < self.loss:
            return
        copies = 2 if self.rng.random() < self.dup else 1
        for _ in range(copies):
            self.seq += 1
            delay = 0.005 + self.rng.random() * self.jitter
            heapq.heappush(self.wire, (self.now + delay, self.seq, direction, data))

    def _drain(self) -> None:
        for data, _peer in self.lac.datagrams_to_send(self.now):
            self._transmit(0, data)
        for data, _peer in self.lns.datagrams_to_send(self.now):
            self._transmit(1, data)
        while (e := self.lac.next_event()) is not None:
            self.lac_events.append(e)
        while (e := self.lns.next_event()) is not None:
            self.lns_events.append(e)

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> bool:
        while True:
            self._drain()
            while self.wire and self.wire[0][0] <= self.now:
                _t, _s, direction, data = heapq.heappop(self.wire)
                if direction == 0:
                    self.lns.receive_datagram(data, LAC_ADDR, self.now)
                else:
                    self.lac.receive_datagram(data, LNS_ADDR, self.now)
                self._drain()
            if stop is not None and stop():
                return True
            nxt = [
                t
                for t in (
                    self.lac.get_timer(),
                    self.lns.get_timer(),
                    self.wire[0][0] if self.wire else None,
                )
                if t is not None
            ]
            if not nxt or min(nxt) > until:
                self.now = max(self.now, until)
                return False
            self.now = max(self.now, min(nxt))
            self.lac.handle_timer(self.now)
            self.lns.handle_timer(self.now)

    def of(self, events: list[L2tpEvent], kind: type[E]) -> list[E]:
        return [e for e in events if isinstance(e, kind)]
