"""Benchmark: LNS selections + reservations per second, memory backend vs Redis on loopback.

One "call" = ``load_view`` (counts, lockouts, probes for the realm's LNSs) + ``select`` (pure) +
``reserve_first`` (one atomic round trip: the first reservable candidate) + ``release``.
Variants: the view fetched fresh for every call, or shared and refreshed every 100 ms (reserve
is the authority on caps and lockouts, so a slightly old view only affects the order). The Redis
figures are for one broker node: one thread (round trips one after another) and the node's
thread pool busy (``--threads``, as deferToThreadPool runs concurrent calls).

    .venv/bin/python ops/bench/state_select.py [--seconds 3] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from broker.policy import RealmPolicy, select
from broker.policy.model import LnsEntry, MatchRule
from broker.policy.selection import (
    LoadView,
    static_candidates,
)
from broker.state import MemoryStateCore
from broker.state.base import Reservation, StateCore, choices_for
from broker.state.redis_store import RedisStateCore, make_redis_store
from ops.lab.redis_server import RedisServer

POLICY = RealmPolicy(
    "isp-a.example",
    MatchRule("exact", "isp-a.example"),
    static_pool=tuple(
        LnsEntry(f"lns{i}", f"192.0.2.{10 + i}", weight=1 + i % 3, preference=i // 4)
        for i in range(8)
    ),
    max_sessions=1_000_000,
)
CANDIDATES = static_candidates(POLICY)
IDS = [c.lns_id for c in CANDIDATES]
KEYS = [c.tunnel_key for c in CANDIDATES]


class SharedView:
    def __init__(self, core: StateCore, max_age: float) -> None:
        self.core = core
        self.max_age = max_age
        self.view: LoadView | None = None
        self.at = 0.0
        self.lock = threading.Lock()

    def get(self) -> LoadView:
        now = time.monotonic()
        with self.lock:
            if self.view is not None and now - self.at < self.max_age:
                return self.view
        view = self.core.load_view(IDS, POLICY.name, KEYS)
        with self.lock:
            self.view, self.at = view, now
        return view


def one_call(
    core: StateCore,
    rng: random.Random,
    views: SharedView | None = None,
    held: list[Reservation] | None = None,
) -> bool:
    view = views.get() if views else core.load_view(IDS, POLICY.name, KEYS)
    order = select(CANDIDATES, POLICY, view, rng)
    res = core.reserve_first(choices_for(order, POLICY), POLICY.name)
    if res is None:
        return False
    if held is None:
        core.release(res)
    else:
        held.append(res)  # released after the timed window
    return True


def run(
    core: StateCore, seconds: float, threads: int, cached: bool = False, hold: bool = False
) -> tuple[float, float]:
    views = SharedView(core, 0.1) if cached else None
    held: list[Reservation] | None = [] if hold else None
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i)
        n = 0
        while time.monotonic() < stop:
            for _ in range(50):
                one_call(core, rng, views, held)
            n += 50
        done[i] = n

    start, cpu = time.monotonic(), time.process_time()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rate = sum(done) / (time.monotonic() - start)
    per_cpu = sum(done) / max(1e-9, time.process_time() - cpu)
    for res in held or []:
        core.release(res)
    return rate, per_cpu


def raw_ceiling(core: RedisStateCore, seconds: float) -> tuple[float, float]:
    """redis-py alone, 100 reserve_first + release pairs per pipeline: this host's ceiling."""
    client = core.client
    sha_first = client.script_load(core._reserve_first.script)
    sha_release = client.script_load(core._release.script)
    line = f"{IDS[0]}\t{KEYS[0]}\t\t\t"
    n = 0
    stop = time.monotonic() + seconds
    start, cpu = time.monotonic(), time.process_time()
    while time.monotonic() < stop:
        pipe = client.pipeline(transaction=False)
        for i in range(100):
            rid = f"raw{n + i}"
            pipe.evalsha(sha_first, 0, "bench:", "raw", rid, POLICY.name, 1000, line)
            pipe.evalsha(sha_release, 0, "bench:", "raw", rid)
        pipe.execute()
        n += 100
    return n / (time.monotonic() - start), n / (time.process_time() - cpu)


def reactor_rates(
    core: RedisStateCore, seconds: float, in_flight: int
) -> list[tuple[str, float, float]]:
    """The reactor's path (RedisDeferredStore), ``in_flight`` call loops, with reserve_first/
    release on the reactor's own pipelined connection and, as the same-run baseline, through
    the pipeliner thread: full calls, then select+reserve only. (label, calls/s, per CPU-s)."""
    from twisted.internet import defer, reactor, task

    stores = {
        "reactor connection": make_redis_store(core, reactor, threads=32),
        "pipeliner thread": make_redis_store(core, reactor, threads=32, on_reactor=False),
    }
    views = SharedView(core, 0.1)
    done = [0]
    held: list[Reservation] = []
    stop_at = time.monotonic() + seconds
    phase = ["full"]

    @defer.inlineCallbacks
    def loop(store: Any, seed: int) -> Any:
        rng = random.Random(seed)
        while time.monotonic() < stop_at:
            order = select(CANDIDATES, POLICY, views.get(), rng)
            res = yield store.reserve_first(choices_for(order, POLICY), POLICY.name)
            if res is not None:
                if phase[0] == "full":
                    yield store.release(res)
                else:
                    held.append(res)
            done[0] += 1

    rates: list[tuple[str, float, float]] = []

    @defer.inlineCallbacks
    def both() -> Any:
        nonlocal stop_at
        for how, store in stores.items():
            warm = yield store.reserve_first(choices_for(CANDIDATES, POLICY), POLICY.name)
            yield task.deferLater(reactor, 0.5, lambda: None)  # connection up
            yield store.release(warm)
            for name in ("full", "reserve-only"):
                phase[0] = name
                done[0] = 0
                stop_at = time.monotonic() + seconds
                start, cpu = time.monotonic(), time.process_time()
                yield defer.gatherResults([loop(store, i) for i in range(in_flight)])
                wall = time.monotonic() - start
                rates.append(
                    (f"{how}, {name}", done[0] / wall, done[0] / (time.process_time() - cpu))
                )
            yield defer.gatherResults([store.release(r) for r in held])
            held.clear()

    def finished(result: object) -> None:
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(lambda: both().addBoth(finished))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=64)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    t = args.threads
    rows = [("memory", 1, False, False), ("memory", 1, True, False)]
    rows += [
        ("redis", 1, False, False),
        ("redis", t, False, False),
        ("redis", 1, True, False),
        ("redis", t, True, False),
        ("redis", t, True, True),
    ]
    with RedisServer() as server:
        mem = MemoryStateCore("bench")
        core = RedisStateCore(server.url, node="bench", prefix="bench:")
        print(f"{'':70} {'calls/s':>10} {'per CPU-s':>10}")
        for backend, threads, cached, hold in rows:
            rate, per_cpu = run(
                mem if backend == "memory" else core, args.seconds, threads, cached, hold
            )
            how = "view every 100 ms" if cached else "fresh view per call"
            if hold:
                how += ", select+reserve only"
            label = f"{backend:6} {threads:2} thread(s), {how}:"
            print(f"{label:70} {rate:10,.0f} {per_cpu:10,.0f}")
        for how, rate, per_cpu in reactor_rates(core, args.seconds, 256):
            label = f"redis  Deferreds, 256 in flight, view every 100 ms, {how}:"
            print(f"{label:70} {rate:10,.0f} {per_cpu:10,.0f}")
        raw, raw_cpu = raw_ceiling(core, args.seconds)
        label = "redis-py alone, pipelined reserve+release (no selection, ceiling):"
        print(f"{label:70} {raw:10,.0f} {raw_cpu:10,.0f}")
        assert core.status()["state"] == "ok"
        view = core.load_view(IDS, POLICY.name)
        assert sum(view.sessions_per_lns.values()) == 0, "every reservation released"
        core.close()
    print("(one call = load_view + select + reserve_first + release, unless 'reserve only')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
