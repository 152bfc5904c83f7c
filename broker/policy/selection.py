"""LNS selection (RFC 2868 §3.8 Tunnel-Preference, RFC 2809 §4): a pure, ordered try-list.

Candidates come from RADIUS tunnel groups (one per tag) and/or a realm's static pool. The result
lists every eligible candidate: lower preference first; inside one preference level the policy's
strategy orders them (weighted random permutation, least sessions, existing tunnel first).
Locked-out, drained, probe-in-flight and full LNSs (``max_sessions``) are left out; a realm at
its limit yields nothing; a tunnel identity is never full (a full tunnel gets a sibling). The
state store's atomic ``reserve`` is the authority on caps; this list is the order
in which the call flow asks it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from broker.policy.model import LnsEntry, RealmPolicy, lns_id_for

L2TP_PORT = 1701  #: RFC 2661 §8.1 default UDP port

TunnelIdentity = tuple[str, bytes | str | None, bytes | str | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Candidate:
    lns_id: str
    address: str
    port: int
    secret: bytes | None = field(repr=False)
    preference: int
    weight: int
    max_sessions: int | None
    #: RFC 2868 §3.7: sessions share a tunnel when endpoint, Tunnel-Assignment-ID,
    #: Tunnel-Client-Auth-ID and Tunnel-Password all match.
    tunnel_identity: TunnelIdentity = field(repr=False)
    source: Literal["radius", "static"]
    host_name: str | None = None  # our Host Name AVP towards this LNS (Tunnel-Client-Auth-ID)
    name: str = ""
    server_name: str | None = None  # expected LNS Host Name (Tunnel-Server-Auth-ID)

    #: A stable, secret-free string for the tunnel identity (used as a state-store key).
    tunnel_key: str = field(init=False, default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tunnel_key", tunnel_key_for(self.tunnel_identity))


def tunnel_key_for(identity: TunnelIdentity) -> str:
    h = hashlib.sha256()
    for part in identity:
        raw = part.encode() if isinstance(part, str) else (part if part is not None else b"")
        h.update(len(raw).to_bytes(4, "big") + raw + (b"\x01" if part is None else b"\x00"))
    return f"{identity[0]}/{h.hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class LoadView:
    """What the state store knows, at one moment, about the LNSs of one call."""

    sessions_per_lns: Mapping[str, int] = field(default_factory=dict)
    sessions_per_tunnel: Mapping[str, int] = field(default_factory=dict)  # by tunnel_key
    locked_out: Mapping[str, float] = field(default_factory=dict)  # lns_id -> seconds left
    probe_available: frozenset[str] = frozenset()  # hold expired; one probe call admitted
    probe_in_flight: frozenset[str] = frozenset()  # another call is probing it now
    drained: frozenset[str] = frozenset()
    realm_sessions: int = 0
    existing_tunnels: frozenset[str] = frozenset()  # tunnel keys with an open tunnel

    def unavailable(self, lns_id: str) -> bool:
        return (
            lns_id in self.locked_out or lns_id in self.drained or (lns_id in self.probe_in_flight)
        )


class TunnelCandidateLike(Protocol):
    """What selection reads from a decoded RADIUS tunnel group (broker.radius.tunnel)."""

    @property
    def server_endpoint(self) -> str: ...
    @property
    def preference(self) -> int | None: ...
    @property
    def password(self) -> bytes | None: ...
    @property
    def assignment_id(self) -> str | bytes | None: ...
    @property
    def client_auth_id(self) -> str | bytes | None: ...
    @property
    def server_auth_id(self) -> str | bytes | None: ...


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """Tunnel-Server-Endpoint (RFC 2868 §3.3): ``addr``, ``addr:port``, ``[v6]:port`` or FQDN."""
    text = endpoint.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else L2TP_PORT
        return host, port
    try:
        return str(ipaddress.ip_address(text)), L2TP_PORT
    except ValueError:
        pass
    host, sep, port_text = text.rpartition(":")
    if sep and port_text.isdigit() and 0 < int(port_text) < 65536 and ":" not in host:
        return host, int(port_text)
    return text, L2TP_PORT


def _text(value: str | bytes | None) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return value.decode("utf-8", "replace") or None


def static_candidates(
    policy: RealmPolicy, resolve_secret: Callable[[str], bytes | None] | None = None
) -> list[Candidate]:
    out = []
    for entry in policy.static_pool:
        secret = resolve_secret(entry.secret_ref) if resolve_secret and entry.secret_ref else None
        out.append(
            Candidate(
                lns_id=entry.lns_id,
                address=entry.address,
                port=entry.port,
                secret=secret,
                preference=entry.preference,
                weight=entry.weight,
                max_sessions=entry.max_sessions,
                tunnel_identity=(entry.lns_id, None, entry.host_name, secret),
                source="static",
                host_name=entry.host_name,
                name=entry.name,
            )
        )
    return out


def candidates_from_radius(
    tunnels: Sequence[TunnelCandidateLike],
    policy: RealmPolicy,
    resolve_secret: Callable[[str], bytes | None] | None = None,
) -> list[Candidate]:
    """Merge RADIUS tunnel groups with the realm policy per its ``tunnel_source``.

    ``radius``: RADIUS groups only. ``static``: the static pool only. ``radius-then-static``:
    RADIUS groups if there are any, else the static pool. A static pool entry whose address and
    port equal a RADIUS endpoint overrides that candidate's weight, cap, host name and (when
    RADIUS sent no Tunnel-Password) secret.
    """
    if policy.tunnel_source == "static":
        return static_candidates(policy, resolve_secret)
    overrides: dict[str, LnsEntry] = {e.lns_id: e for e in policy.static_pool}
    out: list[Candidate] = []
    for t in tunnels:
        address, port = parse_endpoint(t.server_endpoint)
        lid = lns_id_for(address, port)
        entry = overrides.get(lid)
        secret = t.password
        if secret is None and entry is not None and entry.secret_ref and resolve_secret:
            secret = resolve_secret(entry.secret_ref)
        out.append(
            Candidate(
                lns_id=lid,
                address=address,
                port=port,
                secret=secret,
                preference=t.preference if t.preference is not None else 0,
                weight=entry.weight if entry is not None else 1,
                max_sessions=entry.max_sessions if entry is not None else None,
                tunnel_identity=(lid, t.assignment_id, t.client_auth_id, t.password),
                source="radius",
                host_name=_text(t.client_auth_id) or (entry.host_name if entry else None),
                name=entry.name if entry is not None else lid,
                server_name=_text(t.server_auth_id),
            )
        )
    if not out and policy.tunnel_source == "radius-then-static":
        return static_candidates(policy, resolve_secret)
    return out


def eligible(candidate: Candidate, policy: RealmPolicy, view: LoadView) -> bool:
    if view.unavailable(candidate.lns_id):
        return False
    # ``policy.max_tunnel_sessions`` caps one tunnel, not the identity: when the open tunnels
    # of an identity are full the call flow opens another one with the same identity (RFC 2868
    # §3.7 names a tunnel, RFC 2661 §4.4 allows several per LAC/LNS pair), so the identity's
    # session count (``sessions_per_tunnel``) only orders candidates, it never excludes one.
    return candidate.max_sessions is None or (
        view.sessions_per_lns.get(candidate.lns_id, 0) < candidate.max_sessions
    )


def _weighted_order(items: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """Weighted random permutation (Efraimidis-Spirakis): the first element is drawn with
    probability weight/sum; weight 0 members come last, in random order."""
    keyed: list[tuple[int, float, Candidate]] = []
    for c in items:
        u = rng.random()
        if c.weight > 0:
            keyed.append((1, u ** (1.0 / c.weight), c))
        else:
            keyed.append((0, u, c))
    keyed.sort(key=lambda k: (k[0], k[1]), reverse=True)
    return [k[2] for k in keyed]


def _order_level(
    level: Sequence[Candidate], policy: RealmPolicy, view: LoadView, rng: random.Random
) -> list[Candidate]:
    if policy.strategy == "least-sessions":
        shuffled = list(level)
        rng.shuffle(shuffled)
        return sorted(shuffled, key=lambda c: view.sessions_per_lns.get(c.lns_id, 0))
    if policy.strategy == "existing-first":
        existing = [c for c in level if c.tunnel_key in view.existing_tunnels]
        fresh = [c for c in level if c.tunnel_key not in view.existing_tunnels]
        # Among open tunnels, fill the least loaded first; then weighted random for new ones.
        rng.shuffle(existing)
        existing.sort(key=lambda c: view.sessions_per_tunnel.get(c.tunnel_key, 0))
        return existing + _weighted_order(fresh, rng)
    return _weighted_order(level, rng)


def select(
    candidates: Sequence[Candidate], policy: RealmPolicy, view: LoadView, rng: random.Random
) -> list[Candidate]:
    """Ordered list of candidates to try; empty when none is eligible or the realm is full."""
    if policy.max_sessions is not None and view.realm_sessions >= policy.max_sessions:
        return []
    seen: set[tuple[str, str]] = set()
    usable: list[Candidate] = []
    for c in candidates:
        ident = (c.lns_id, c.tunnel_key)
        if ident in seen or not eligible(c, policy, view):
            continue
        seen.add(ident)
        usable.append(c)
    out: list[Candidate] = []
    for pref in sorted({c.preference for c in usable}):
        out.extend(_order_level([c for c in usable if c.preference == pref], policy, view, rng))
    return out


def preference_levels(candidates: Iterable[Candidate]) -> list[int]:
    return sorted({c.preference for c in candidates})
