"""Issue 9 (memory under churn): calls through the in-memory call flow with the soak's mix of
endings and faults leave nothing behind; the heap does not grow per call."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from ops.bench.leak_probe import USERS, Churn, structure_sizes
from tests.support.callflow_harness import World, write_policies

CYCLE = 5  # rounds per fault cycle: LNS restart, RADIUS down, LNS frozen, two quiet rounds
ROUNDS = 2 * CYCLE
PER_ROUND = 6


def traced_broker_bytes() -> int:
    gc.collect()
    snap = tracemalloc.take_snapshot().filter_traces(
        [
            tracemalloc.Filter(True, "*/broker/*"),
        ]
    )
    return sum(s.size for s in snap.statistics("filename"))


def test_churn_with_faults_leaves_no_per_call_state(tmp_path: Path) -> None:
    w = World(write_policies(tmp_path / "pol"), users=USERS)
    churn = Churn(w, PER_ROUND)
    for _ in range(ROUNDS):  # warm-up: tunnels, caches, every fault path
        churn.one_round()
    tracemalloc.start(1)
    try:
        for _ in range(ROUNDS):
            churn.one_round()
        sizes_n = structure_sizes(w)
        heap_n = traced_broker_bytes()
        for _ in range(ROUNDS):
            churn.one_round()
        sizes_2n = structure_sizes(w)
        heap_2n = traced_broker_bytes()
    finally:
        tracemalloc.stop()
    calls = 3 * ROUNDS * PER_ROUND
    assert w.flow.counters["calls_ended"] == w.flow.counters["calls_discovered"] == calls
    assert w.flow.calls == {} and w.store.reservations == {}
    # every container of the engines (calls, keys, tunnels, timers, ids) is as it was N ago
    grown = {k: (sizes_n.get(k, 0), v) for k, v in sizes_2n.items() if v != sizes_n.get(k, 0)}
    assert grown == {}, grown
    # measured: a few B per call (calls in flight at the snapshots); one kept CallSnapshot
    # or rate-table bucket per call is ~200 B
    per_call = (heap_2n - heap_n) / (ROUNDS * PER_ROUND)
    assert per_call < 32, f"broker heap grew {per_call:.0f} B per call"
