"""Several broker nodes sharing one real redis-server: lockouts, counts, probes, node expiry,
and a Redis outage in the middle of a run (stop, restart empty, converge)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from broker.state import Caps, Reservation, SessionRecord
from broker.state.keys import Keys
from broker.state.redis_store import RedisStateCore, make_client
from ops.lab.redis_server import RedisServer

pytestmark = pytest.mark.integration

LNS = "192.0.2.10:1701"
LNS2 = "192.0.2.11:1701"
ROOT = Path(__file__).resolve().parents[2]


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def nodes(redis_server: RedisServer, prefix: str) -> Iterator[Callable[..., RedisStateCore]]:
    made: list[RedisStateCore] = []

    def make(name: str, **kw: float) -> RedisStateCore:
        opts: dict[str, float] = {"node_ttl": 5.0, "retry_interval": 0.05}
        opts.update(kw)
        core = RedisStateCore(redis_server.url, node=name, prefix=prefix, **opts)  # type: ignore[arg-type]
        made.append(core)
        return core

    try:
        yield make
    finally:
        for core in made:
            core.close()
        redis_server.start()  # a test that stopped the server must not break the next one


@pytest.mark.parametrize("count", [2, 3])
def test_nodes_share_counts_and_lockouts_at_once(
    nodes: Callable[..., RedisStateCore], count: int
) -> None:
    ns = [nodes(f"node{i}") for i in range(count)]
    for i, n in enumerate(ns):
        for _ in range(i + 1):
            assert n.reserve(LNS, "tk", "isp-a", Caps()) is not None
    expected = sum(range(1, count + 1))
    for n in ns:
        view = n.load_view([LNS], "isp-a", ["tk"])
        assert view.sessions_per_lns[LNS] == expected and view.realm_sessions == expected
    ns[0].lock_out(LNS, 300.0)
    for n in ns[1:]:  # seen by every other node on its very next call
        assert LNS in n.load_view([LNS], "isp-a").locked_out
        assert n.reserve(LNS, "tk", "isp-a", Caps()) is None
    ns[-1].unlock(LNS)
    assert ns[0].reserve(LNS, "tk", "isp-a", Caps()) is not None


def test_caps_hold_across_nodes(nodes: Callable[..., RedisStateCore]) -> None:
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    got = [n.reserve(LNS, "tk", "r", Caps(lns=4)) for n in (a, b, c, a, b, c)]
    assert sum(r is not None for r in got) == 4
    assert c.load_view([LNS], "r").sessions_per_lns[LNS] == 4


def test_exactly_one_probe_across_nodes(nodes: Callable[..., RedisStateCore]) -> None:
    ns = [nodes(f"p{i}") for i in range(3)]
    ns[0].lock_out(LNS, 0.2)
    wait_until(lambda: LNS in ns[1].load_view([LNS], "r").probe_available)
    wins: list[object] = []
    lock = threading.Lock()
    barrier = threading.Barrier(9)

    def attempt(node: RedisStateCore, use_reserve: bool) -> None:
        barrier.wait(10)
        result: object = (
            node.reserve(LNS, "tk", "r", Caps()) if use_reserve else node.claim_probe(LNS)
        )
        if result:
            with lock:
                wins.append(result)

    threads = [threading.Thread(target=attempt, args=(n, i % 2 == 0)) for n in ns for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(wins) == 1
    if isinstance(wins[0], Reservation):
        assert wins[0].probe
    ns[2].probe_result(LNS, True, 300.0)
    for n in ns:
        view = n.load_view([LNS], "r")
        assert not view.locked_out and not view.probe_available and not view.probe_in_flight


def test_dead_node_counts_expire_and_return_on_recovery(
    nodes: Callable[..., RedisStateCore],
) -> None:
    a = nodes("a", node_ttl=0.4)
    b = nodes("b", node_ttl=0.4)
    for _ in range(3):
        assert a.reserve(LNS, "tk", "r", Caps()) is not None
    a.register_session(SessionRecord("a", "s1", "alice", LNS, 1, 2, 1.0))
    assert b.reserve(LNS, "tk", "r", Caps()) is not None
    b.heartbeat()
    assert {s.session_key for s in b.all_sessions()} == {"s1"}

    # Node a stops heart-beating; b's heartbeats reap a's share.
    def reaped() -> bool:
        b.heartbeat()
        return b.load_view([LNS], "r").sessions_per_lns[LNS] == 1

    wait_until(reaped)
    assert b.all_sessions() == []
    # a comes back: it notices it was expired and re-publishes its ledger.
    a.heartbeat()
    assert b.load_view([LNS], "r").sessions_per_lns[LNS] == 4
    assert {s.session_key for s in b.all_sessions()} == {"s1"}


def test_redis_outage_mid_run_no_exception_and_counts_converge(
    redis_server: RedisServer, nodes: Callable[..., RedisStateCore], prefix: str
) -> None:
    a, b = nodes("a"), nodes("b")
    held: dict[str, list[Reservation]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    placed = {"a": 0, "b": 0}
    stop = threading.Event()

    def run(node: RedisStateCore) -> None:
        i = 0
        try:
            while not stop.is_set():
                i += 1
                lns = LNS if i % 2 else LNS2
                node.load_view([LNS, LNS2], "r", ["tk"])
                r = node.reserve(lns, "tk", "r", Caps(lns=10_000))
                if r is not None:
                    held[node.node].append(r)
                    placed[node.node] += 1
                if i % 3 == 0 and held[node.node]:
                    node.release(held[node.node].pop(0))
                if i % 10 == 0:
                    node.heartbeat()
                time.sleep(0.001)
        except BaseException as exc:  # pragma: no cover - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: placed["a"] > 20 and placed["b"] > 20)
        redis_server.kill()  # crash: all shared data is gone
        wait_until(lambda: a.degraded and b.degraded)
        during = dict(placed)
        wait_until(lambda: placed["a"] > during["a"] + 20 and placed["b"] > during["b"] + 20)
        assert "degraded" in a.status()["state"]
        redis_server.start()  # same port, empty
        wait_until(lambda: not a.degraded and not b.degraded)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    a.heartbeat()
    b.heartbeat()
    mine = {lns: sum(1 for n in "ab" for r in held[n] if r.lns_id == lns) for lns in (LNS, LNS2)}
    for node in (a, b):
        view = node.load_view([LNS, LNS2], "r", ["tk"])
        assert dict(view.sessions_per_lns) == mine
        assert view.realm_sessions == mine[LNS] + mine[LNS2]
        assert node.status()["outages"] == 1 and node.status()["resyncs"] >= 2
    # releasing everything brings the shared counts back to zero
    for n, core in (("a", a), ("b", b)):
        for r in held[n]:
            assert core.release(r)
    assert dict(a.load_view([LNS, LNS2], "r").sessions_per_lns) == {LNS: 0, LNS2: 0}
    raw = make_client(redis_server.url)
    assert raw.hgetall(Keys(prefix).lns_counts) == {}
    raw.close()


def test_lockout_made_during_outage_is_published_on_return(
    redis_server: RedisServer, nodes: Callable[..., RedisStateCore]
) -> None:
    a, b = nodes("a"), nodes("b")
    redis_server.kill()
    a.lock_out(LNS, 300.0)  # no exception, recorded locally
    assert a.reserve(LNS, "tk", "r", Caps()) is None
    assert a.reserve(LNS2, "tk", "r", Caps()) is not None
    redis_server.start()
    wait_until(lambda: (a.heartbeat(), not a.degraded)[1])
    assert LNS in b.load_view([LNS], "r").locked_out


def test_keys_live_under_prefix(
    redis_server: RedisServer, nodes: Callable[..., RedisStateCore], prefix: str
) -> None:
    a = nodes("a")
    r = a.reserve(LNS, "tk", "r", Caps())
    a.lock_out(LNS2, 300.0)
    a.drain(LNS2, True)
    a.register_session(SessionRecord("a", "s", "u", LNS, 1, 1, 0.0))
    assert r is not None
    k = Keys(prefix)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        names = set(client.keys(k.pattern()))
        assert names == {
            k.lns_counts,
            k.tunnel_counts,
            k.realm_counts,
            k.nodes,
            k.drained,
            k.node_counts("a"),
            k.node_reservations("a"),
            k.node_sessions("a"),
            k.lock(LNS2),
            k.suspect(LNS2),
        }
    finally:
        client.close()


def test_unreachable_at_start_is_degraded_not_fatal() -> None:
    from ops.lab.redis_server import free_port

    core = RedisStateCore(f"redis://127.0.0.1:{free_port()}/0", node="lonely", retry_interval=60)
    try:
        assert "degraded" in core.status()["state"]
        assert core.reserve(LNS, "tk", "r", Caps(lns=1)) is not None
        assert core.reserve(LNS, "tk", "r", Caps(lns=1)) is None
    finally:
        core.close()


def test_sentinel_url(redis_server: RedisServer, prefix: str) -> None:
    from ops.lab.redis_server import RedisSentinel

    with RedisSentinel(redis_server) as sentinel:
        # Sentinel learns the master at once from its config; the store resolves it.
        core = RedisStateCore(sentinel.sentinel_url, node="s", prefix=prefix)
        try:
            assert core.status()["state"] == "ok"
            assert core.reserve(LNS, "tk", "r", Caps()) is not None
        finally:
            core.close()


def test_deferred_store_runs_off_the_reactor_thread(redis_server: RedisServer) -> None:
    script = f"""
import sys, threading
sys.path.insert(0, {str(ROOT)!r})
from twisted.internet import task, defer
from broker.state import Caps
from broker.state.redis_store import RedisStateCore, make_redis_store

@defer.inlineCallbacks
def main(reactor):
    store = make_redis_store(RedisStateCore({redis_server.url!r}, node="d", prefix="dfr:"), reactor)
    main_thread = threading.current_thread()
    res = yield store.reserve("x:1701", "tk", "r", Caps(lns=1))
    none = yield store.reserve("x:1701", "tk", "r", Caps(lns=1))
    view = yield store.load_view(["x:1701"], "r")
    ok = yield store.release(res)
    assert res is not None and none is None and view.sessions_per_lns == {{"x:1701": 1}} and ok
    print("DEFERRED-OK")

task.react(main)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "DEFERRED-OK" in out.stdout, out.stderr


def test_script_cache_flush_is_survived(nodes: Callable[..., RedisStateCore]) -> None:
    a = nodes("a")
    a.client.script_flush()
    r = a.reserve_first([(LNS, "tk", Caps())], "r")
    assert r is not None and a.release(r) is True
    assert a.status()["state"] == "ok"


def test_unpipelined_core_behaves_the_same(redis_server: RedisServer, prefix: str) -> None:
    a = RedisStateCore(redis_server.url, node="a", prefix=prefix, pipeline=False)
    b = RedisStateCore(redis_server.url, node="b", prefix=prefix)
    try:
        assert a.reserve(LNS, "tk", "r", Caps(lns=1)) is not None
        assert b.reserve(LNS, "tk", "r", Caps(lns=1)) is None
        b.lock_out(LNS2, 300.0)
        assert LNS2 in a.load_view([LNS2], "r").locked_out
    finally:
        a.close()
        b.close()


def test_nowait_path_matches_blocking_semantics(
    redis_server: RedisServer, nodes: Callable[..., RedisStateCore]
) -> None:
    a = nodes("a")
    futs = [a.reserve_first_nowait([(LNS, "tk", Caps(lns=5))], "r") for _ in range(8)]
    got = [f.result(10) for f in futs if f is not None]
    assert len(got) == 8 and sum(r is not None for r in got) == 5
    held = [r for r in got if r is not None]
    rel = [a.release_nowait(r) for r in held]
    assert [f.result(10) for f in rel if f is not None] == [True] * 5
    again = a.release_nowait(held[0])
    assert again is not None and again.result(10) is False  # exactly once
    assert a.load_view([LNS], "r").sessions_per_lns[LNS] == 0
    redis_server.kill()
    fut = a.reserve_first_nowait([(LNS, "tk", Caps())], "r")
    assert fut is not None and fut.result(10) is not None  # local view after the failure
    assert a.degraded
    assert a.reserve_first_nowait([(LNS, "tk", Caps())], "r") is None  # blocking path now


def test_reactor_store_many_calls_in_flight(redis_server: RedisServer) -> None:
    script = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from twisted.internet import task, defer
from broker.state import Caps
from broker.state.redis_store import RedisStateCore, make_redis_store

@defer.inlineCallbacks
def main(reactor):
    core = RedisStateCore({redis_server.url!r}, node="d", prefix="inflight:")
    store = make_redis_store(core, reactor)
    choices = [("x:1701", "tk", Caps(lns=150)), ("y:1701", "tk2", Caps(lns=100))]
    got = yield defer.gatherResults([store.reserve_first(choices, "r") for _ in range(300)])
    held = [r for r in got if r is not None]
    assert len(held) == 250, len(held)
    assert sum(r.lns_id == "x:1701" for r in held) == 150
    view = yield store.load_view(["x:1701", "y:1701"], "r")
    assert dict(view.sessions_per_lns) == {{"x:1701": 150, "y:1701": 100}}, view
    oks = yield defer.gatherResults([store.release(r) for r in held + held[:10]])
    assert oks.count(True) == 250 and oks.count(False) == 10
    view = yield store.load_view(["x:1701", "y:1701"], "r")
    assert dict(view.sessions_per_lns) == {{"x:1701": 0, "y:1701": 0}}, view
    print("INFLIGHT-OK")

task.react(main)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "INFLIGHT-OK" in out.stdout, out.stderr
