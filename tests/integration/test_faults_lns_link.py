"""Issue 9 item 2, link faults: 20 % loss (both directions) with reordering on the LNS link
while 1,000 calls set up (duplication: test_faults_lns_dup.py). The link impairment is the
userspace netem of :mod:`ops.lab.faults` (this kernel has no sch_netem).

What must hold whatever the dice say (no success ratio is asserted beyond a sanity floor):
every call ends up or with a counted failure reason; once settled no call is stuck in set-up;
the broker's spliced sessions, the generator's up subscribers and the LNSs' IPCP-up sessions
are the same number; retransmissions happened.
``FAULTS_CALLS`` overrides the number of calls (default 1000).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ops.lab.faults import FaultLab
from ops.lab.netns import poll
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

CALLS = int(os.environ.get("FAULTS_CALLS", "1000"))
#: reasons the generator may give for a call that did not come up under loss
EXTRA = ["--setup-timeout", "20", "--outstanding", "500", "--hangup", "padt"]
LOSS_REASONS = {"timeout-ppp", "padt-during-setup", "timeout-discovery", "auth-failed"}


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    # 100 Tunnel-Assignment-IDs: 100 control connections share the set-up load (one
    # connection at 20 % loss stalls ~1 s per lost message); HELLO every 5 s on both sides so
    # tunnels one side gave up on are cleared by the other's stale-tunnel StopCCN
    lab = FaultLab(
        impair=("lns-a",), tunnels=100, hello_interval=5.0,
        lns_args=("--hello-interval", "5"), users=max(CALLS, 400),
    )  # fmt: skip
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def test_thousand_calls_through_twenty_percent_loss_and_reordering(lab: FaultLab) -> None:
    lab.impair("lns-a", loss=0.2, reorder=0.25, delay=0.005, jitter=0.003)
    early, proc, out = lab.hold(CALLS, timeout=150, extra=EXTRA)
    try:
        assert early is not None, lab.broker_log()[-3000:]
        # every call ended up or failed with a counted reason; none still in set-up
        assert early["up"] + early["failed"] == CALLS, early
        assert sum(early["failures"].values()) == early["failed"]
        assert set(early["failures"]) <= LOSS_REASONS, early["failures"]
        assert early["up"] >= CALLS // 2, early  # sanity floor only (98-99 % measured)
        stats = lab.impairments["lns-a"].stats()
        assert stats["dropped"] > 0 and stats["reordered"] > 0, stats
        assert lab.metric("engine_counter", engine="l2tp", name="retransmits") > 0
        # Then the link is made clean: broker, generator and LNSs must agree once the
        # stragglers (CDNs lost to the loss, tunnels one side gave up on) are cleared by
        # retransmission, HELLO and the stale-tunnel StopCCN: nothing half up, nothing stuck
        # in set-up. (Under continuing loss the counts keep moving, so agreement is only
        # required after the fault, with a generous deadline for a loaded CI machine.)
        lab.impair("lns-a")
        agreed = poll(lab.agreement, 120, interval=0.5)
        assert agreed, (lab.sessions()[:3], lab.lns_totals(), lab.broker_log()[-2000:])
        spliced = agreed[0]
        assert spliced <= early["up"]
        # calls the loss took down after they were up are counted by the broker with a reason
        ended = lab.metric("calls_ended_total")
        assert ended >= early["up"] - spliced
        cpu = lab.broker_sample().get("cpu_s", 0.0)
        rtx = lab.metric("engine_counter", engine="l2tp", name="retransmits")
        print(
            f"\n20 % loss: {early['up']}/{CALLS} up, failures {early['failures']}, setup ms "
            f"{early['latency_ms']}, settled in {early['duration']:.1f} s, {spliced} agreed, "
            f"relay {stats}, retransmits {rtx:.0f}, broker CPU "
            f"{cpu:.1f} s ({early['setups'] / max(cpu, 0.001):.0f} setups per CPU-s)"
        )
    finally:
        report = lab.hang_up(proc, out)
    # (both sides empty after a hang-up: test_faults_lns_dup; kept out of here for the
    # 90 s budget of this file)
    assert report["up"] == early["up"]
