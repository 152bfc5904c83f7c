"""Every Redis key the broker uses is built here, under one configurable prefix.

Layout (prefix ``l2tpb:`` by default):

``{p}cnt:lns`` hash lns_id -> sessions (all live nodes); ``{p}cnt:tun`` hash tunnel_key -> sessions;
``{p}cnt:realm`` hash realm -> sessions; ``{p}node:{node}:cnt`` hash ``l|lns``/``t|tun``/``r|realm``
-> this node's share; ``{p}node:{node}:res`` hash reservation id -> ``lns\\ttun\\trealm``;
``{p}node:{node}:sess`` hash session key -> encoded SessionRecord; ``{p}nodes`` zset node ->
liveness deadline (ms, Redis clock); ``{p}lock:{lns}`` string with PX = lockout hold;
``{p}suspect:{lns}`` marks an LNS that needs a successful probe; ``{p}probe:{lns}`` the single
probe claim (PX = probe timeout); ``{p}drained`` set of drained LNSs.

The Lua scripts receive the prefix as an argument and build the same names: keep both in step
(``tests/state`` checks them against a live server).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "l2tpb:"

    @property
    def lns_counts(self) -> str:
        return f"{self.prefix}cnt:lns"

    @property
    def tunnel_counts(self) -> str:
        return f"{self.prefix}cnt:tun"

    @property
    def realm_counts(self) -> str:
        return f"{self.prefix}cnt:realm"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    @property
    def drained(self) -> str:
        return f"{self.prefix}drained"

    def node_counts(self, node: str) -> str:
        return f"{self.prefix}node:{node}:cnt"

    def node_reservations(self, node: str) -> str:
        return f"{self.prefix}node:{node}:res"

    def node_sessions(self, node: str) -> str:
        return f"{self.prefix}node:{node}:sess"

    def lock(self, lns_id: str) -> str:
        return f"{self.prefix}lock:{lns_id}"

    def suspect(self, lns_id: str) -> str:
        return f"{self.prefix}suspect:{lns_id}"

    def probe(self, lns_id: str) -> str:
        return f"{self.prefix}probe:{lns_id}"

    def pattern(self) -> str:
        """Glob matching every key of this prefix (tests and ``flush``)."""
        return f"{self.prefix}*"
