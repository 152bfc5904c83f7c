"""Issue 9 item 2, link faults: 20 % duplicated and 25 % reordered frames (no loss) on the
LNS link (userspace netem, :mod:`ops.lab.faults`): every call comes up exactly once, broker,
generator and LNS agree, and every Start has exactly one Stop after hang-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ops.lab.faults import FaultLab
from ops.lab.netns import poll
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

EXTRA = ["--setup-timeout", "30", "--outstanding", "500", "--hangup", "padt"]


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    lab = FaultLab(impair=("lns-a",), tunnels=20, hello_interval=5.0,
                   lns_args=("--hello-interval", "5"))  # fmt: skip
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def test_duplication_and_reordering_lose_nothing(lab: FaultLab) -> None:
    """No loss, 20 % duplicated and 25 % reordered frames: every call comes up once, and
    every Start has exactly one Stop after hang-up."""
    count = 200
    lab.impair("lns-a", duplicate=0.2, reorder=0.25, delay=0.003, jitter=0.002)
    early, proc, out = lab.hold(count, timeout=90, extra=EXTRA)
    try:
        assert early is not None, lab.broker_log()[-3000:]
        assert early["up"] == count and early["failed"] == 0, early
        assert poll(lambda: lab.agreement() == (count,) * 4, 30, interval=0.5), (
            lab.agreement(),
            lab.lns_totals(),
        )
        assert lab.impairments["lns-a"].stats()["duplicated"] > 0
    finally:
        lab.hang_up(proc, out)
    assert poll(lambda: lab.sessions() == [] and lab.lns_totals() == (0, 0), 60, interval=0.5)
    assert poll(lambda: lab.control("/status")["spool_depth"] == 0, 60, interval=0.5)
    records = lab.accounting()
    starts = [r["Acct-Session-Id"] for r in records if r.get("Acct-Status-Type") == "Start"]
    stops = [r["Acct-Session-Id"] for r in records if r.get("Acct-Status-Type") == "Stop"]
    assert len(set(starts)) == len(set(stops)) == count
    assert set(starts) == set(stops)
