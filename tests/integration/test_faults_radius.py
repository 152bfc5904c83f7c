"""Issue 9 item 2, FreeRADIUS stopped and started mid-load.

Established sessions are untouched by the outage; calls made while the server is down fail
with a reason (policy ``on_radius_unreachable: reject``: CHAP Failure after the RADIUS
timeouts); calls after the restart succeed; accounting records produced during the outage
(the Stops of sessions hung up meanwhile) wait in the spool and all arrive once the server is
back: every Start has exactly its Stop."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest

from ops.lab.faults import FaultLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    lab = FaultLab()
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def _ids(lab: FaultLab, kind: str) -> list[str]:
    return [r["Acct-Session-Id"] for r in lab.accounting() if r.get("Acct-Status-Type") == kind]


def test_radius_outage_mid_load(lab: FaultLab) -> None:
    assert lab.radius is not None
    ready = lab.dir / "ready-a.json"
    held, _ = lab.subscribers(
        10, rate=20, hold=-1, background=True, extra=["--ready-file", str(ready)]
    )
    try:
        assert poll(ready.exists, 60, interval=0.5), lab.broker_log()[-3000:]
        assert json.loads(ready.read_text())["up"] == 10
        assert poll(lambda: len(set(_ids(lab, "Start"))) == 10, 30)
        lab.radius.stop()
        # calls during the outage: each fails with a reason, none hangs
        during = lab.subscribers(
            8, rate=20, extra=["--first-index", "100", "--setup-timeout", "40", "--timeout", "60"],
            timeout=90,
        )  # fmt: skip
        assert during["up"] == 0 and during["failed"] == 8, during
        assert sum(during["failures"].values()) == 8 and set(during["failures"]) <= {
            "auth-failed",
            "timeout-ppp",
        }, during["failures"]
        # the established sessions are untouched
        assert sum(1 for r in lab.sessions() if r["state"] == "spliced") == 10
        # hang up the held sessions while the server is down: their Stops are spooled
        held.send_signal(signal.SIGTERM)
        held.wait(30)
        assert poll(lambda: lab.sessions() == [], 30, interval=0.5)
        depth = lab.control("/status")["spool_depth"]
        assert depth >= 10, depth
        lab.radius.start()
        after = lab.subscribers(
            10, rate=20, hold=1.0, extra=["--first-index", "200", "--timeout", "60"], timeout=90
        )
        assert after["up"] == 10 and after["failed"] == 0, after
    finally:
        stop_process(held, timeout=30)
    assert poll(lambda: lab.control("/status")["spool_depth"] == 0, 60, interval=0.5)
    assert poll(lambda: len(set(_ids(lab, "Stop"))) == 20, 30, interval=0.5)
    starts, stops = set(_ids(lab, "Start")), set(_ids(lab, "Stop"))
    assert starts == stops and len(starts) == 20
    print(f"\nRADIUS outage: {during['failures']} during, {depth} records spooled and replayed")
