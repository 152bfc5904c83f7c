"""LNS selection: table tests and properties (locked-out never chosen, preference order,
weights within 1 percentage point over 100k draws, caps)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.policy import LoadView, RealmPolicy, candidates_from_radius, select
from broker.policy.model import LnsEntry, MatchRule
from broker.policy.selection import Candidate, eligible, parse_endpoint, static_candidates

POLICY = RealmPolicy("isp", MatchRule("exact", "isp"))


def cand(
    n: int, pref: int = 0, weight: int = 1, cap: int | None = None, tunnel: str = ""
) -> Candidate:
    lid = f"192.0.2.{n}:1701"
    return Candidate(
        lid,
        f"192.0.2.{n}",
        1701,
        b"s",
        pref,
        weight,
        cap,
        (lid, tunnel or None, None, b"s"),
        "radius",
    )


def ids(cs: list[Candidate]) -> list[int]:
    return [int(c.address.rsplit(".", 1)[1]) for c in cs]


@dataclass(frozen=True)
class FakeTunnel:
    server_endpoint: str
    preference: int | None = None
    password: bytes | None = None
    assignment_id: bytes | None = None
    client_auth_id: bytes | None = None
    server_auth_id: bytes | None = None


# (name, candidates, view, policy changes, expected order or set of possible first ids)
TABLE = [
    ("preference order", [cand(1, 10), cand(2, 0), cand(3, 5)], LoadView(), {}, [2, 3, 1]),
    ("locked skipped", [cand(1), cand(2, 5)], LoadView(locked_out={cand(1).lns_id: 9.0}), {}, [2]),
    (
        "drained skipped",
        [cand(1), cand(2, 5)],
        LoadView(drained=frozenset({cand(1).lns_id})),
        {},
        [2],
    ),
    (
        "probe in flight skipped, probe available kept",
        [cand(1), cand(2, 1)],
        LoadView(probe_in_flight=frozenset({cand(1).lns_id})),
        {},
        [2],
    ),
    (
        "lns cap",
        [cand(1, cap=2), cand(2, 1)],
        LoadView(sessions_per_lns={cand(1).lns_id: 2}),
        {},
        [2],
    ),
    (
        # max_tunnel_sessions caps one tunnel: a full identity gets a sibling tunnel
        "tunnel identity above the per-tunnel cap stays eligible",
        [cand(1), cand(2, 1)],
        LoadView(sessions_per_tunnel={cand(1).tunnel_key: 70_000}),
        {"max_tunnel_sessions": 7},
        [1, 2],
    ),
    ("realm full", [cand(1)], LoadView(realm_sessions=5), {"max_sessions": 5}, []),
    ("realm below limit", [cand(1)], LoadView(realm_sessions=4), {"max_sessions": 5}, [1]),
    (
        "least sessions",
        [cand(1), cand(2), cand(3)],
        LoadView(sessions_per_lns={cand(1).lns_id: 5, cand(2).lns_id: 1, cand(3).lns_id: 3}),
        {"strategy": "least-sessions"},
        [2, 3, 1],
    ),
    (
        "existing first",
        [cand(1, weight=100), cand(2, weight=1)],
        LoadView(existing_tunnels=frozenset({cand(2).tunnel_key})),
        {"strategy": "existing-first"},
        [2, 1],
    ),
    ("duplicates collapse", [cand(1), cand(1)], LoadView(), {}, [1]),
    ("nothing", [], LoadView(), {}, []),
]


@pytest.mark.parametrize(
    ("name", "cands", "view", "changes", "expected"), TABLE, ids=[t[0] for t in TABLE]
)
def test_selection_table(
    name: str,
    cands: list[Candidate],
    view: LoadView,
    changes: dict[str, object],
    expected: list[int],
) -> None:
    policy = replace(POLICY, **changes)  # type: ignore[arg-type]
    for seed in range(5):
        assert ids(select(cands, policy, view, random.Random(seed))) == expected


def test_weight_zero_goes_last() -> None:
    for seed in range(50):
        order = select(
            [cand(1, weight=0), cand(2, weight=1)], POLICY, LoadView(), random.Random(seed)
        )
        assert ids(order) == [2, 1]


def test_weighted_random_within_one_point_over_100k_draws() -> None:
    weights = {1: 5, 2: 3, 3: 1, 4: 1}
    cands = [cand(n, weight=w) for n, w in weights.items()]
    rng = random.Random(20261121)
    draws = 100_000
    first = Counter(ids(select(cands, POLICY, LoadView(), rng))[0] for _ in range(draws))
    total = sum(weights.values())
    for n, w in weights.items():
        assert abs(first[n] / draws - w / total) < 0.01, (n, first[n] / draws, w / total)


candidate_sets = st.lists(
    st.builds(
        cand,
        n=st.integers(1, 12),
        pref=st.integers(0, 3),
        weight=st.integers(0, 5),
        cap=st.one_of(st.none(), st.integers(1, 5)),
    ),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(
    cands=candidate_sets,
    locked=st.sets(st.integers(1, 12)),
    loads=st.dictionaries(st.integers(1, 12), st.integers(0, 6)),
    strategy=st.sampled_from(["weighted-random", "least-sessions", "existing-first"]),
    seed=st.integers(0, 2**32),
)
def test_selection_properties(
    cands: list[Candidate], locked: set[int], loads: dict[int, int], strategy: str, seed: int
) -> None:
    view = LoadView(
        sessions_per_lns={f"192.0.2.{n}:1701": v for n, v in loads.items()},
        locked_out={f"192.0.2.{n}:1701": 10.0 for n in locked},
    )
    policy = replace(POLICY, strategy=strategy)  # type: ignore[arg-type]
    out = select(cands, policy, view, random.Random(seed))
    # never a locked-out LNS (whether or not another is eligible)
    assert all(c.lns_id not in view.locked_out for c in out)
    # every eligible candidate appears exactly once; no ineligible one
    assert {(c.lns_id, c.tunnel_key) for c in out} == {
        (c.lns_id, c.tunnel_key) for c in cands if eligible(c, policy, view)
    }
    assert len(out) == len({(c.lns_id, c.tunnel_key) for c in out})
    # preference order respected
    prefs = [c.preference for c in out]
    assert prefs == sorted(prefs)
    # per-LNS caps: nothing at or over its cap
    for c in out:
        assert c.max_sessions is None or view.sessions_per_lns.get(c.lns_id, 0) < c.max_sessions


def test_candidates_from_radius_merges_static_overrides() -> None:
    pool = (
        LnsEntry("a1", "192.0.2.10", weight=7, max_sessions=99, host_name="lac-x"),
        LnsEntry("b1", "198.51.100.1", preference=9, secret_ref="env:S"),
    )
    policy = replace(POLICY, static_pool=pool, tunnel_source="radius-then-static")
    tunnels = [
        FakeTunnel("192.0.2.10", 1, b"pw", b"grp", None),
        FakeTunnel("203.0.113.5:1702", None, None, None, b"lac-y", b"lns-y"),
    ]
    got = candidates_from_radius(tunnels, policy, lambda ref: b"resolved")
    a, b = got
    assert (a.lns_id, a.weight, a.max_sessions, a.host_name, a.preference) == (
        "192.0.2.10:1701",
        7,
        99,
        "lac-x",
        1,
    )
    assert a.secret == b"pw" and a.tunnel_identity == ("192.0.2.10:1701", b"grp", None, b"pw")
    assert (b.lns_id, b.port, b.preference, b.host_name, b.server_name) == (
        "203.0.113.5:1702",
        1702,
        0,
        "lac-y",
        "lns-y",
    )
    assert b"pw" not in a.tunnel_key.encode()  # no secrets in state-store keys
    # no RADIUS tunnels: the static pool
    static = candidates_from_radius([], policy, lambda ref: b"resolved")
    assert [c.name for c in static] == ["a1", "b1"] and static[1].secret == b"resolved"
    # radius only: no fallback; static only: RADIUS ignored
    assert candidates_from_radius([], replace(policy, tunnel_source="radius")) == []
    only = candidates_from_radius(tunnels, replace(policy, tunnel_source="static"))
    assert [c.source for c in only] == ["static", "static"]


def test_radius_tunnel_candidate_type_is_accepted() -> None:
    from broker.radius.tunnel import TunnelCandidate

    t = TunnelCandidate(
        tag=1,
        tunnel_type=3,
        medium_type=1,
        server_endpoint="192.0.2.7",
        password=b"x",
        preference=2,
        assignment_id=b"a",
    )
    (c,) = candidates_from_radius([t], POLICY)
    assert c.lns_id == "192.0.2.7:1701" and c.preference == 2 and c.secret == b"x"


def test_tunnel_identity_separates_tunnels() -> None:
    a = cand(1, tunnel="x")
    b = cand(1, tunnel="y")
    assert a.tunnel_key != b.tunnel_key and a.tunnel_key == cand(1, tunnel="x").tunnel_key
    assert ids(select([a, b], POLICY, LoadView(), random.Random(1))) == [1, 1]


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("192.0.2.1", "192.0.2.1", 1701),
        ("192.0.2.1:1702", "192.0.2.1", 1702),
        ("2001:db8::1", "2001:db8::1", 1701),
        ("[2001:db8::1]:1705", "2001:db8::1", 1705),
        ("lns.example", "lns.example", 1701),
        ("lns.example:99", "lns.example", 99),
    ],
)
def test_parse_endpoint(text: str, host: str, port: int) -> None:
    assert parse_endpoint(text) == (host, port)


def test_static_candidates_without_resolver_have_no_secret() -> None:
    policy = replace(POLICY, static_pool=(LnsEntry("a", "192.0.2.1", secret_ref="env:X"),))
    (c,) = static_candidates(policy)
    assert c.secret is None and c.source == "static"


def test_candidate_repr_hides_secrets() -> None:
    c = cand(1)
    c = replace(c, secret=b"topsecret", tunnel_identity=(c.lns_id, None, None, b"topsecret"))
    assert "topsecret" not in repr(c)
