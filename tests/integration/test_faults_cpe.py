"""Issue 9 item 2, CPEs that vanish without PADT (the load generator's ``power-off`` hang-up:
no PADT, no LCP Terminate, nothing more on the wire). After the splice the LNS owns the PPP
keepalive (RFC 1661 Echo-Request): ``sim lns --echo-interval 2 --echo-failures 3`` misses its
echoes, ends the call with a CDN, and the broker clears the PPPoE session and writes the
Accounting-Stop (Acct-Terminate-Cause Host-Request: the LNS ended it). Nothing is left on
either side and every Start has its Stop."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import pytest

from ops.lab.faults import FaultLab
from ops.lab.netns import poll
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

COUNT = 30
ECHO, FAILURES = 2.0, 3


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    lab = FaultLab(lns_args=("--echo-interval", str(ECHO), "--echo-failures", str(FAILURES)))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def test_powered_off_cpes_are_cleared_by_keepalive(lab: FaultLab) -> None:
    report = lab.subscribers(
        COUNT, rate=30, hold=3.0, extra=["--hangup", "power-off", "--timeout", "60"], timeout=90
    )
    assert report["up"] == COUNT, report
    gone = time.monotonic()
    budget = ECHO * (FAILURES + 1) + 10.0
    assert poll(lambda: lab.sessions() == [], budget + 20, interval=0.5), lab.sessions()[:3]
    cleared = time.monotonic() - gone
    assert cleared <= budget, f"cleared after {cleared:.1f} s (budget {budget:.0f} s)"
    assert poll(lambda: lab.sims["lns-a"].status().get("sessions") == 0, 10)
    assert poll(lambda: lab.control("/status")["spool_depth"] == 0, 30, interval=0.5)

    def records(kind: str) -> list[dict[str, str]]:
        return [r for r in lab.accounting() if r.get("Acct-Status-Type") == kind]

    assert poll(lambda: len({r["Acct-Session-Id"] for r in records("Stop")}) == COUNT, 20)
    starts = {r["Acct-Session-Id"] for r in records("Start")}
    stops = {r["Acct-Session-Id"]: r["Acct-Terminate-Cause"] for r in records("Stop")}
    assert set(stops) == starts
    assert collections.Counter(stops.values()) == {"Host-Request": COUNT}
    print(f"\nCPE power-off: {COUNT} sessions cleared {cleared:.1f} s after the CPEs vanished")
