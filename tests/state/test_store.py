"""One StateStore suite, run against the memory core and against a real redis-server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.state import Caps, DeferredStateStore, MemoryStateCore, Reservation, SessionRecord
from broker.state.base import StateCore
from broker.state.redis_store import RedisStateCore
from ops.lab.redis_server import RedisServer

LNS = "192.0.2.10:1701"
LNS2 = "192.0.2.11:1701"


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.02)


class Harness:
    """Builds cores of one backend and lets lockout holds pass (fake clock or real time)."""

    def __init__(self, kind: str, server: RedisServer | None, prefix: str) -> None:
        self.kind = kind
        self.server = server
        self.prefix = prefix
        self.now = 1000.0
        self.cores: list[StateCore] = []
        self._shared: MemoryStateCore | None = None

    def clock(self) -> float:
        return self.now

    def core(self, node: str = "n1") -> StateCore:
        if self.kind == "memory":
            # The memory backend is single-node: every "node" is the same process-wide core.
            if self._shared is None:
                self._shared = MemoryStateCore(node, clock=self.clock, probe_timeout=30.0)
            return self._shared
        assert self.server is not None
        c = RedisStateCore(
            self.server.url, node=node, prefix=self.prefix, node_ttl=5.0, probe_timeout=30.0
        )
        self.cores.append(c)
        return c

    def let_pass(self, seconds: float, cond: Callable[[], bool]) -> None:
        if self.kind == "memory":
            self.now += seconds
        wait_until(cond)

    def close(self) -> None:
        for c in self.cores:
            c.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    h = Harness(request.param, server, prefix)
    try:
        yield h
    finally:
        h.close()


def test_reserve_counts_and_release_exactly_once(harness: Harness) -> None:
    s = harness.core()
    r1 = s.reserve(LNS, "tk1", "isp-a", Caps())
    r2 = s.reserve(LNS, "tk1", "isp-a", Caps())
    assert r1 is not None and r2 is not None and r1.id != r2.id
    view = s.load_view([LNS, LNS2], "isp-a", ["tk1"])
    assert view.sessions_per_lns == {LNS: 2, LNS2: 0}
    assert view.sessions_per_tunnel == {"tk1": 2}
    assert view.realm_sessions == 2
    assert view.existing_tunnels == frozenset({"tk1"})
    assert s.release(r1) is True
    assert s.release(r1) is False  # second release is a no-op
    view = s.load_view([LNS], "isp-a", ["tk1"])
    assert view.sessions_per_lns[LNS] == 1 and view.realm_sessions == 1
    assert s.release(r2) is True
    view = s.load_view([LNS], "isp-a", ["tk1"])
    assert view.sessions_per_lns[LNS] == 0 and view.existing_tunnels == frozenset()


@pytest.mark.parametrize(
    ("caps", "allowed"),
    [(Caps(lns=3), 3), (Caps(tunnel=2), 2), (Caps(realm=4), 4), (Caps(lns=5, realm=1), 1)],
)
def test_caps_refuse_beyond_limit(harness: Harness, caps: Caps, allowed: int) -> None:
    s = harness.core()
    got = [s.reserve(LNS, "tk", "r", caps) for _ in range(allowed + 3)]
    assert sum(r is not None for r in got) == allowed
    assert all(r is not None for r in got[:allowed])


def test_lockout_refuses_then_one_probe_then_readmits(harness: Harness) -> None:
    s = harness.core()
    s.lock_out(LNS, 0.3)
    assert s.reserve(LNS, "tk", "r", Caps()) is None
    view = s.load_view([LNS, LNS2], "r")
    assert LNS in view.locked_out and LNS2 not in view.locked_out
    assert s.reserve(LNS2, "tk2", "r", Caps()) is not None
    harness.let_pass(1.0, lambda: LNS not in s.load_view([LNS], "r").locked_out)
    assert s.load_view([LNS], "r").probe_available == frozenset({LNS})
    probe = s.reserve(LNS, "tk", "r", Caps())
    assert probe is not None and probe.probe
    assert s.reserve(LNS, "tk", "r", Caps()) is None  # only one probe at a time
    assert s.claim_probe(LNS) is False
    assert s.load_view([LNS], "r").probe_in_flight == frozenset({LNS})
    s.probe_result(LNS, True, 0.3)
    after = s.reserve(LNS, "tk", "r", Caps())
    assert after is not None and not after.probe
    view = s.load_view([LNS], "r")
    assert not view.locked_out and not view.probe_available and not view.probe_in_flight


def test_failed_probe_locks_out_again(harness: Harness) -> None:
    s = harness.core()
    s.lock_out(LNS, 0.2)
    harness.let_pass(1.0, lambda: s.claim_probe(LNS))
    s.probe_result(LNS, False, 60.0)
    assert s.reserve(LNS, "tk", "r", Caps()) is None
    assert s.load_view([LNS], "r").locked_out[LNS] > 30.0


def test_unlock_and_drain_by_operator(harness: Harness) -> None:
    s = harness.core()
    s.lock_out(LNS, 300.0)
    s.unlock(LNS)
    assert s.reserve(LNS, "tk", "r", Caps()) is not None
    s.drain(LNS, True)
    assert s.reserve(LNS, "tk", "r", Caps()) is None
    assert s.load_view([LNS], "r").drained == frozenset({LNS})
    s.drain(LNS, False)
    assert s.reserve(LNS, "tk", "r", Caps()) is not None


def test_claim_probe_needs_expired_lockout(harness: Harness) -> None:
    s = harness.core()
    assert s.claim_probe(LNS) is False  # never locked: nothing to probe
    s.lock_out(LNS, 300.0)
    assert s.claim_probe(LNS) is False  # still held


def test_session_registry(harness: Harness) -> None:
    s = harness.core()
    rec = SessionRecord(s.node, "k1", "alice@isp-a.example", LNS, 11, 22, 1.7e9)
    s.register_session(rec)
    assert s.sessions() == [rec]
    s.unregister_session("k1")
    assert s.sessions() == []
    assert SessionRecord.decode(rec.encode()) == rec


def test_status_and_heartbeat(harness: Harness) -> None:
    s = harness.core()
    s.heartbeat()
    st_ = s.status()
    assert st_["state"] == "ok" and st_["node"] == s.node


def test_concurrent_reservations_never_exceed_caps(harness: Harness) -> None:
    cores = [harness.core(f"n{i}") for i in range(3)]
    won: list[Reservation] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(core: StateCore) -> None:
        try:
            for _ in range(40):
                r = core.reserve(LNS, "tk", "r", Caps(lns=50, realm=60))
                if r is not None:
                    with lock:
                        won.append(r)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in cores for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(won) == 50
    assert cores[0].load_view([LNS], "r").sessions_per_lns[LNS] == 50


ops_strategy = st.lists(
    st.tuples(st.sampled_from(["reserve", "release"]), st.integers(0, 2), st.integers(0, 1)),
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=ops_strategy, cap=st.integers(1, 6))
def test_property_counts_match_held_and_caps_hold(harness: Harness, ops: Any, cap: int) -> None:
    harness.prefix = harness.prefix + "x"  # fresh keys per example
    harness._shared = None
    cores = [harness.core(f"p{i}") for i in range(3)]
    held: list[Reservation] = []
    lnss = [LNS, LNS2]
    for op, node, which in ops:
        core = cores[node]
        if op == "reserve":
            r = core.reserve(lnss[which], f"tk{which}", "r", Caps(lns=cap))
            count = sum(1 for h in held if h.lns_id == lnss[which])
            assert (r is not None) == (count < cap)
            if r is not None:
                held.append(r)
        elif held:
            r = held.pop(which % len(held))
            owner = next(c for c in cores if c.node == r.node)
            assert owner.release(r) is True
        view = cores[0].load_view(lnss, "r")
        for lns in lnss:
            assert view.sessions_per_lns[lns] == sum(1 for h in held if h.lns_id == lns) <= cap


def test_deferred_wrapper_over_memory_fires_at_once() -> None:
    store = DeferredStateStore(MemoryStateCore("m"))
    results: list[Any] = []
    store.reserve(LNS, "tk", "r", Caps()).addCallback(results.append)
    assert isinstance(results[0], Reservation)
    store.release(results[0]).addCallback(results.append)
    store.load_view([LNS], "r").addCallback(results.append)
    assert results[1] is True and results[2].sessions_per_lns == {LNS: 0}
    assert store.status()["backend"] == "memory"


def test_reserve_first_takes_first_reservable_in_order(harness: Harness) -> None:
    s = harness.core()
    a, b, c = "192.0.2.1:1701", "192.0.2.2:1701", "192.0.2.3:1701"
    s.lock_out(a, 300.0)
    s.drain(b, True)
    choices = [(a, "ta", Caps()), (b, "tb", Caps()), (c, "tc", Caps(lns=1))]
    first = s.reserve_first(choices, "r")
    assert first is not None and (first.lns_id, first.tunnel_key) == (c, "tc")
    assert s.reserve_first(choices, "r") is None  # c is full now, a locked, b drained
    assert s.reserve_first([], "r") is None
    s.drain(b, False)
    second = s.reserve_first(choices, "r")
    assert second is not None and second.lns_id == b
    assert s.load_view([a, b, c], "r").sessions_per_lns == {a: 0, b: 1, c: 1}


def test_reserve_first_admits_the_probe(harness: Harness) -> None:
    s = harness.core()
    s.lock_out(LNS, 0.2)
    harness.let_pass(1.0, lambda: LNS in s.load_view([LNS], "r").probe_available)
    choices = [(LNS, "tk", Caps()), (LNS2, "tk2", Caps())]
    probe = s.reserve_first(choices, "r")
    assert probe is not None and probe.lns_id == LNS and probe.probe
    other = s.reserve_first(choices, "r")  # probe in flight: the next candidate
    assert other is not None and other.lns_id == LNS2 and not other.probe


def test_probe_claim_expires_when_the_prober_vanishes(harness: Harness) -> None:
    s = harness.core()
    if isinstance(s, RedisStateCore):
        s.probe_timeout = 0.3
    else:
        assert isinstance(s, MemoryStateCore)
        s.probe_timeout = 0.3
    s.lock_out(LNS, 0.2)
    harness.let_pass(1.0, lambda: s.claim_probe(LNS))
    assert s.claim_probe(LNS) is False
    harness.let_pass(1.0, lambda: s.claim_probe(LNS))  # a new probe once the claim lapsed


def test_separator_characters_cannot_corrupt_records(harness: Harness) -> None:
    s = harness.core()
    r = s.reserve(LNS, "tk", "evil\trealm\nx", Caps())
    assert r is not None
    assert s.load_view([LNS], "evil\trealm\nx").realm_sessions == 1
    assert s.release(r) is True
    assert s.load_view([LNS], "evil\trealm\nx").realm_sessions == 0


def _identity_candidate(cap: int | None) -> Any:
    from broker.policy.selection import Candidate

    return Candidate(
        LNS, "192.0.2.10", 1701, b"s", 0, 1, cap, (LNS, "grp", None, b"s"), "radius"
    )  # fmt: skip


@pytest.mark.parametrize(("lns_cap", "admitted"), [(None, 8), (7, 7)])  # realm cap 8
def test_identity_is_not_capped_per_tunnel(
    harness: Harness, lns_cap: int | None, admitted: int
) -> None:
    """``max_tunnel_sessions`` caps one tunnel (the call flow opens a sibling with the same
    identity), so the store admits an identity beyond it; LNS and realm caps still hold."""
    from broker.policy.model import MatchRule, RealmPolicy
    from broker.state.base import choices_for

    policy = RealmPolicy("r", MatchRule("default", ""), max_tunnel_sessions=3, max_sessions=8)
    c = _identity_candidate(lns_cap)
    s = harness.core()
    got = [s.reserve_first(choices_for([c], policy), "r") for _ in range(9)]
    assert sum(r is not None for r in got) == admitted
    assert all(r is not None for r in got[:admitted])
    assert s.load_view([LNS], "r", [c.tunnel_key]).sessions_per_tunnel[c.tunnel_key] == admitted


def test_memory_identity_holds_more_than_65535() -> None:
    from broker.policy.model import MatchRule, RealmPolicy
    from broker.state.base import choices_for

    policy = RealmPolicy("r", MatchRule("default", ""))
    c = _identity_candidate(None)
    core = MemoryStateCore("n1")
    choices = choices_for([c], policy)
    for _ in range(65_600):
        assert core.reserve_first(choices, "r") is not None
    assert core.load_view([LNS], "r", [c.tunnel_key]).sessions_per_tunnel[c.tunnel_key] == 65_600
