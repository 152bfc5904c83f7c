"""Issue 9 item 2, the shared state store failing: Redis stopped and restarted (empty), and a
Sentinel failover (``redis+sentinel://``; the master is SIGKILLed, the replica promoted).

Established sessions are untouched; calls continue on the node's local view during the
outage; once Redis is back (or the new master is found) the node's counts are written again
and the per-LNS session count in Redis equals the sessions the node carries."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from ops.lab.broker_lab import LNS_A
from ops.lab.faults import FaultLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration


def _lab(state: str) -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    require_binary("redis-server")
    lab = FaultLab(state=state)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


@pytest.fixture
def redis_lab() -> Iterator[FaultLab]:
    yield from _lab("redis")


@pytest.fixture
def sentinel_lab() -> Iterator[FaultLab]:
    yield from _lab("sentinel")


def _spliced(lab: FaultLab) -> int:
    return sum(1 for r in lab.sessions() if r["state"] == "spliced")


def _redis_count(lab: FaultLab, role: str) -> int:
    """Sessions on LNS A in the shared count (a missing field is 0; -1: no answer)."""
    out = lab.redis_cli(role, "HGET", "l2tpb:cnt:lns", f"{LNS_A}:1701").strip()
    if out.lstrip("-").isdigit():
        return int(out)
    return 0 if out == "" else -1


def _hold(lab: FaultLab, count: int, first: int, name: str) -> object:
    ready = lab.dir / f"ready-{name}.json"
    proc, _ = lab.subscribers(
        count, rate=20, hold=-1, background=True,
        extra=["--ready-file", str(ready), "--first-index", str(first), "--seed", str(first + 1)],
    )  # fmt: skip
    assert poll(ready.exists, 60, interval=0.5), lab.broker_log()[-3000:]
    report = json.loads(ready.read_text())
    assert report["up"] == count, report
    return proc


def test_redis_stopped_and_restarted(redis_lab: FaultLab) -> None:
    lab = redis_lab
    procs = [_hold(lab, 8, 0, "a")]
    try:
        assert poll(lambda: _redis_count(lab, "master") == 8, 20, interval=0.5)
        lab.stop_redis("master")
        procs.append(_hold(lab, 4, 100, "b"))  # calls continue on the local view
        assert _spliced(lab) == 12
        lab.redis_server("master")  # back, empty
        assert poll(lambda: _redis_count(lab, "master") == 12, 60, interval=0.5), (
            _redis_count(lab, "master"),
            lab.broker_log()[-2000:],
        )
        assert _spliced(lab) == 12
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
            stop_process(p, timeout=30)  # type: ignore[arg-type]
    assert poll(lambda: _redis_count(lab, "master") == 0, 30, interval=0.5)


def test_sentinel_failover(sentinel_lab: FaultLab) -> None:
    lab = sentinel_lab
    procs = [_hold(lab, 8, 0, "a")]
    try:
        assert poll(lambda: _redis_count(lab, "replica") == 8, 20, interval=0.5)
        lab.stop_redis("master", hard=True)
        assert poll(lambda: "master" in lab.redis_cli("replica", "ROLE").split()[:1], 40), (
            lab.redis_cli("replica", "ROLE")
        )
        assert _spliced(lab) == 8
        procs.append(_hold(lab, 4, 100, "b"))
        assert poll(lambda: _redis_count(lab, "replica") == 12, 60, interval=0.5), (
            _redis_count(lab, "replica"),
            lab.broker_log()[-2000:],
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
            stop_process(p, timeout=30)  # type: ignore[arg-type]
