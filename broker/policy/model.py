"""Realm policy values (frozen): static LNS pools, match rules, strategies (RFC 2809 §3, §4).

A realm policy says how a subscriber whose username carries a realm is tunnelled: which RADIUS
server group authenticates it, whether the realm is stripped before RADIUS, where the tunnel
endpoints come from (RADIUS tunnel attributes per RFC 2868, a static pool, or both), how the
LNSs of one preference level share load, and the session limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

MatchKind = Literal["exact", "suffix", "regex", "default"]
TunnelSource = Literal["radius", "static", "radius-then-static"]
Strategy = Literal["weighted-random", "least-sessions", "existing-first"]
RadiusUnreachable = Literal["reject", "static"]
FailoverMode = Literal["same-then-next-level", "next-level", "same-level-only"]
CaseFolding = Literal["lower", "preserve"]

MATCH_KINDS: tuple[str, ...] = ("exact", "suffix", "regex", "default")
TUNNEL_SOURCES: tuple[str, ...] = ("radius", "static", "radius-then-static")
STRATEGIES: tuple[str, ...] = ("weighted-random", "least-sessions", "existing-first")
RADIUS_UNREACHABLE: tuple[str, ...] = ("reject", "static")
FAILOVER_MODES: tuple[str, ...] = ("same-then-next-level", "next-level", "same-level-only")
CASE_FOLDINGS: tuple[str, ...] = ("lower", "preserve")


@dataclass(frozen=True, slots=True)
class LnsEntry:
    """One statically configured LNS (a static pool member, or a weight override for RADIUS)."""

    name: str
    address: str
    port: int = 1701
    secret_ref: str | None = None
    weight: int = 1
    preference: int = 0
    max_sessions: int | None = None
    host_name: str | None = None

    @property
    def lns_id(self) -> str:
        return lns_id_for(self.address, self.port)


def lns_id_for(address: str, port: int) -> str:
    """Stable identity of an LNS endpoint: ``ip:port`` (``[v6]:port`` for IPv6)."""
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class MatchRule:
    kind: MatchKind
    value: str = ""

    def matches(self, realm: str) -> bool:
        """Does ``realm`` (already case folded) satisfy this rule? Default matches everything."""
        if self.kind == "default":
            return True
        if self.kind == "exact":
            return realm == self.value
        if self.kind == "suffix":
            bare = self.value.lstrip(".")
            return realm == bare or realm.endswith("." + bare)
        return re.fullmatch(self.value, realm) is not None


@dataclass(frozen=True, slots=True)
class RealmPolicy:
    name: str
    match: MatchRule
    radius_group: str = "default"
    strip_realm: bool = False
    tunnel_source: TunnelSource = "radius"
    static_pool: tuple[LnsEntry, ...] = ()
    strategy: Strategy = "weighted-random"
    max_sessions: int | None = None
    on_radius_unreachable: RadiusUnreachable = "reject"
    lockout_hold: float = 300.0
    failover: FailoverMode = "same-then-next-level"
    max_tunnel_sessions: int = 65535
    source_file: str = ""


@dataclass(frozen=True, slots=True)
class UsernameConfig:
    """How a username splits: ``user@realm``, ``realm/user``, ``realm\\user``."""

    suffix_delimiters: tuple[str, ...] = ("@",)
    prefix_delimiters: tuple[str, ...] = ("/", "\\")
    realm_case: CaseFolding = "lower"
    user_case: CaseFolding = "preserve"


@dataclass(frozen=True, slots=True)
class ParsedUser:
    user: str
    realm: str  # "" when the username carries no realm
    full: str

    def radius_name(self, strip_realm: bool) -> str:
        """The User-Name to send to RADIUS under a policy's ``strip_realm``."""
        return self.user if strip_realm and self.realm else self.full


@dataclass(frozen=True, slots=True)
class PolicySet:
    defaults: RealmPolicy
    realms: tuple[RealmPolicy, ...] = ()
    username: UsernameConfig = field(default_factory=UsernameConfig)
    source_dir: str = ""

    def match(self, username: str) -> tuple[RealmPolicy, ParsedUser]:
        """Parse ``username`` and find its policy: exact, then longest suffix, then regex (in
        file order), then a realm with ``match: default``, then the defaults policy."""
        from broker.policy.username import parse_username

        parsed = parse_username(username, self.username)
        return self.policy_for_realm(parsed.realm), parsed

    def policy_for_realm(self, realm: str) -> RealmPolicy:
        exact = [p for p in self.realms if p.match.kind == "exact" and p.match.matches(realm)]
        if exact:
            return exact[0]
        suffix = [p for p in self.realms if p.match.kind == "suffix" and p.match.matches(realm)]
        if suffix:
            return max(suffix, key=lambda p: len(p.match.value.lstrip(".")))
        for p in self.realms:
            if p.match.kind == "regex" and p.match.matches(realm):
                return p
        for p in self.realms:
            if p.match.kind == "default":
                return p
        return self.defaults
