"""The reactor's own pipelined Redis connection (broker/state/redis_reactor.py) against a real
redis-server: many calls in flight on one connection, Redis killed, stalled (SIGSTOP) and
restarted, scripts flushed. Each scenario runs a reactor in a subprocess (reactors do not
restart) with its own redis-server, and prints a line the test checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, signal, sys, time
sys.path.insert(0, ROOT)
from twisted.internet import defer, task
from broker.state import Caps
from broker.state.redis_store import RedisStateCore, make_redis_store
from ops.lab.redis_server import RedisServer

X, Y = "192.0.2.10:1701", "192.0.2.11:1701"
CHOICES = [(X, "tx", Caps(lns=150)), (Y, "ty", Caps(lns=100))]


def sleep(reactor, seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def until(reactor, cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        yield sleep(reactor, 0.02)


@defer.inlineCallbacks
def connected(reactor, store):
    first = yield store.reserve_first(CHOICES, "r")  # starts the connection
    yield until(reactor, lambda: store.fast.ready)
    yield store.release(first)


@defer.inlineCallbacks
def pipelined(reactor, server, core, store):
    yield connected(reactor, store)
    threaded = core._pipeliner.calls
    got = yield defer.gatherResults([store.reserve_first(CHOICES, "r") for _ in range(300)])
    held = [r for r in got if r is not None]
    assert len(held) == 250 and sum(r.lns_id == X for r in held) == 150, len(held)
    oks = yield defer.gatherResults([store.release(r) for r in held + held[:10]])
    assert oks.count(True) == 250 and oks.count(False) == 10
    assert core._pipeliner.calls == threaded, "hot path left the reactor connection"
    view = yield store.load_view([X, Y], "r")
    assert dict(view.sessions_per_lns) == {X: 0, Y: 0}, view
    assert store.fast.counters["connects"] == 1
    print("SCENARIO-OK")


@defer.inlineCallbacks
def killed(reactor, server, core, store):
    yield connected(reactor, store)
    held = yield defer.gatherResults([store.reserve_first(CHOICES, "r") for _ in range(20)])
    server.kill()
    during = yield defer.gatherResults([store.reserve_first(CHOICES, "r") for _ in range(20)])
    assert all(r is not None for r in during), "the local view must keep placing calls"
    assert core.degraded and core.counters["degraded_reserves"] >= 1
    server.start()
    yield until(reactor, lambda: (core.heartbeat() or True) and not core.degraded)
    after = yield store.reserve_first(CHOICES, "r")  # reconnects the reactor connection
    yield until(reactor, lambda: store.fast.ready)
    more = yield defer.gatherResults([store.reserve_first(CHOICES, "r") for _ in range(10)])
    total = len(held) + len(during) + 1 + len(more)
    view = yield store.load_view([X, Y], "r")
    assert sum(view.sessions_per_lns.values()) == total, (view, total)
    assert store.fast.counters["connects"] == 2
    print("SCENARIO-OK")


@defer.inlineCallbacks
def stalled(reactor, server, core, store):
    yield connected(reactor, store)
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        got = yield defer.gatherResults([store.reserve_first(CHOICES, "r") for _ in range(5)])
        waited = time.monotonic() - start
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    assert all(r is not None for r in got) and core.degraded
    assert store.fast.counters["timeouts"] == 1 and waited < 5.0, (store.fast.counters, waited)
    print("SCENARIO-OK")


@defer.inlineCallbacks
def flushed(reactor, server, core, store):
    yield connected(reactor, store)
    before = store.fast.counters["noscript"]
    core.client.script_flush()
    got = yield store.reserve_first(CHOICES, "r")
    assert got is not None and store.fast.counters["noscript"] == before + 1, store.fast.counters
    ok = yield store.release(got)
    assert ok and not core.degraded, (ok, core.status())
    print("SCENARIO-OK")


def main(reactor, name):
    server = RedisServer()
    server.start()
    core = RedisStateCore(server.url, node="n1", prefix="rr:", socket_timeout=0.5)
    store = make_redis_store(core, reactor)
    reactor.addSystemEventTrigger("after", "shutdown", server.close)
    return globals()[name](reactor, server, core, store)


task.react(main, (sys.argv[1],))
""".replace("ROOT", repr(str(ROOT)), 1)


@pytest.mark.parametrize("scenario", ["pipelined", "killed", "stalled", "flushed"])
def test_reactor_connection(scenario: str) -> None:
    require_binary("redis-server")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, scenario],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert "SCENARIO-OK" in out.stdout, out.stdout + out.stderr
