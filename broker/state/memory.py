"""In-process state store (the embedded default, single node); also the Redis backend's local
view while Redis is unreachable (then ``baseline`` holds the other nodes' last known counts).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from broker.policy.selection import LoadView
from broker.state.base import Caps, Choice, Reservation, SessionRecord


class MemoryStateCore:
    def __init__(
        self,
        node: str = "local",
        clock: Callable[[], float] = time.monotonic,
        probe_timeout: float = 120.0,
    ) -> None:
        self.node = node
        self.clock = clock
        self.probe_timeout = probe_timeout
        self._lock = threading.RLock()
        self.reservations: dict[str, Reservation] = {}
        self.lns_counts: Counter[str] = Counter()
        self.tunnel_counts: Counter[str] = Counter()
        self.realm_counts: Counter[str] = Counter()
        self.locked_until: dict[str, float] = {}
        self.suspect: set[str] = set()
        self.probe_claims: dict[str, float] = {}  # lns_id -> claim expiry
        self.drained: set[str] = set()
        self.session_records: dict[str, SessionRecord] = {}
        # Other nodes' counts (Redis outage: last known); added to ours for cap checks.
        self.baseline_lns: Mapping[str, int] = {}
        self.baseline_tunnel: Mapping[str, int] = {}
        self.baseline_realm: Mapping[str, int] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _locked(self, lns_id: str, now: float) -> bool:
        until = self.locked_until.get(lns_id)
        if until is None:
            return False
        if until > now:
            return True
        del self.locked_until[lns_id]
        return False

    def _probe_claimed(self, lns_id: str, now: float) -> bool:
        expiry = self.probe_claims.get(lns_id)
        if expiry is None:
            return False
        if expiry > now:
            return True
        del self.probe_claims[lns_id]
        return False

    def total_lns(self, lns_id: str) -> int:
        return self.lns_counts[lns_id] + self.baseline_lns.get(lns_id, 0)

    def total_tunnel(self, key: str) -> int:
        return self.tunnel_counts[key] + self.baseline_tunnel.get(key, 0)

    def total_realm(self, realm: str) -> int:
        return self.realm_counts[realm] + self.baseline_realm.get(realm, 0)

    def refusal(self, lns_id: str, tunnel_key: str, realm: str, caps: Caps) -> str | None:
        """Why ``reserve`` would refuse now (``None``: it would not). Caller holds the lock."""
        now = self.clock()
        if lns_id in self.drained:
            return "drained"
        if self._locked(lns_id, now):
            return "locked-out"
        if lns_id in self.suspect and self._probe_claimed(lns_id, now):
            return "probe-in-flight"
        if caps.lns is not None and self.total_lns(lns_id) >= caps.lns:
            return "lns-full"
        if caps.tunnel is not None and self.total_tunnel(tunnel_key) >= caps.tunnel:
            return "tunnel-full"
        if caps.realm is not None and self.total_realm(realm) >= caps.realm:
            return "realm-full"
        return None

    def adopt(self, reservation: Reservation) -> None:
        """Record a reservation made elsewhere (Redis) without checking caps."""
        with self._lock:
            if reservation.id in self.reservations:
                return
            self.reservations[reservation.id] = reservation
            self.lns_counts[reservation.lns_id] += 1
            self.tunnel_counts[reservation.tunnel_key] += 1
            self.realm_counts[reservation.realm] += 1

    # -- StateCore -------------------------------------------------------------------------
    def reserve(self, lns_id: str, tunnel_key: str, realm: str, caps: Caps) -> Reservation | None:
        with self._lock:
            if self.refusal(lns_id, tunnel_key, realm, caps) is not None:
                return None
            probe = lns_id in self.suspect
            if probe:
                self.probe_claims[lns_id] = self.clock() + self.probe_timeout
            res = Reservation(uuid.uuid4().hex, self.node, lns_id, tunnel_key, realm, probe)
            self.adopt(res)
            return res

    def reserve_first(self, choices: Sequence[Choice], realm: str) -> Reservation | None:
        with self._lock:
            for lns_id, tunnel_key, caps in choices:
                res = self.reserve(lns_id, tunnel_key, realm, caps)
                if res is not None:
                    return res
            return None

    def release(self, reservation: Reservation) -> bool:
        with self._lock:
            if self.reservations.pop(reservation.id, None) is None:
                return False
            for counter, key in (
                (self.lns_counts, reservation.lns_id),
                (self.tunnel_counts, reservation.tunnel_key),
                (self.realm_counts, reservation.realm),
            ):
                counter[key] -= 1
                if counter[key] <= 0:
                    del counter[key]
            return True

    def lock_out(self, lns_id: str, hold: float) -> None:
        with self._lock:
            until = self.clock() + hold
            self.locked_until[lns_id] = max(until, self.locked_until.get(lns_id, until))
            self.suspect.add(lns_id)
            self.probe_claims.pop(lns_id, None)

    def unlock(self, lns_id: str) -> None:
        with self._lock:
            self.locked_until.pop(lns_id, None)
            self.suspect.discard(lns_id)
            self.probe_claims.pop(lns_id, None)

    def drain(self, lns_id: str, on: bool) -> None:
        with self._lock:
            if on:
                self.drained.add(lns_id)
            else:
                self.drained.discard(lns_id)

    def claim_probe(self, lns_id: str) -> bool:
        with self._lock:
            now = self.clock()
            if lns_id not in self.suspect or self._locked(lns_id, now):
                return False
            if self._probe_claimed(lns_id, now):
                return False
            self.probe_claims[lns_id] = now + self.probe_timeout
            return True

    def probe_result(self, lns_id: str, ok: bool, hold: float) -> None:
        with self._lock:
            if ok:
                self.unlock(lns_id)
            else:
                self.locked_until.pop(lns_id, None)
                self.lock_out(lns_id, hold)

    def load_view(
        self, lns_ids: Iterable[str], realm: str, tunnel_keys: Iterable[str] = ()
    ) -> LoadView:
        with self._lock:
            now = self.clock()
            ids = list(lns_ids)
            keys = list(tunnel_keys)
            locked = {i: self.locked_until[i] - now for i in ids if self._locked(i, now)}
            suspect = {i for i in ids if i in self.suspect and i not in locked}
            in_flight = {i for i in suspect if self._probe_claimed(i, now)}
            tunnels = {k: self.total_tunnel(k) for k in keys}
            return LoadView(
                sessions_per_lns={i: self.total_lns(i) for i in ids},
                sessions_per_tunnel=tunnels,
                locked_out=locked,
                probe_available=frozenset(suspect - in_flight),
                probe_in_flight=frozenset(in_flight),
                drained=frozenset(i for i in ids if i in self.drained),
                realm_sessions=self.total_realm(realm),
                existing_tunnels=frozenset(k for k, n in tunnels.items() if n > 0),
            )

    def register_session(self, record: SessionRecord) -> None:
        with self._lock:
            self.session_records[record.session_key] = record

    def unregister_session(self, session_key: str) -> None:
        with self._lock:
            self.session_records.pop(session_key, None)

    def sessions(self) -> list[SessionRecord]:
        with self._lock:
            return list(self.session_records.values())

    def heartbeat(self) -> None:
        with self._lock:
            now = self.clock()
            for lns_id in list(self.locked_until):
                self._locked(lns_id, now)
            for lns_id in list(self.probe_claims):
                self._probe_claimed(lns_id, now)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "backend": "memory",
                "node": self.node,
                "state": "ok",
                "reservations": len(self.reservations),
                "sessions": len(self.session_records),
                "locked_out": sorted(self.locked_until),
            }

    def close(self) -> None:
        return None
