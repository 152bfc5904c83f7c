"""Issue 9 item 2, a dead LNS: LNS A killed with SIGKILL, or frozen with SIGSTOP (it keeps
its socket and answers nothing). Its tunnel is declared dead within HELLO interval + the
retransmission schedule, its sessions end with an Accounting-Stop, LNS A is locked out and
the subscribers' redials are routed to LNS B (Tunnel-Preference 10)."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from ops.lab.broker_lab import LNS_A, LNS_B
from ops.lab.faults import FaultLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

COUNT = 10
HELLO = 2.0
RETRANSMIT = (1.0, 1.0, 2.0)


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    lab = FaultLab(hello_interval=HELLO, retransmit=RETRANSMIT)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def _on(lab: FaultLab, lns: str) -> list[dict[str, object]]:
    return [r for r in lab.sessions() if r["state"] == "spliced" and r["lns"] == f"{lns}:1701"]


@pytest.mark.parametrize("fault", ["sigkill", "sigstop"])
def test_dead_lns_sessions_stopped_and_calls_rerouted(lab: FaultLab, fault: str) -> None:
    ready = lab.dir / "ready.json"
    proc, out = lab.subscribers(
        COUNT, rate=20, hold=-1, background=True,
        extra=["--ready-file", str(ready), "--redial-lost", "--timeout", "150",
               "--setup-timeout", "30"],
    )  # fmt: skip
    try:
        assert poll(ready.exists, 60, interval=0.5), lab.broker_log()[-3000:]
        assert len(_on(lab, LNS_A)) == COUNT
        assert poll(
            lambda: (
                len(lab.accounting())
                and sum(1 for r in lab.accounting() if r.get("Acct-Status-Type") == "Start")
                == COUNT
            ),
            30,
        )
        on_a = {str(r["acct_session_id"]) for r in _on(lab, LNS_A)}
        t0 = time.monotonic()
        if fault == "sigkill":
            lab.sims["lns-a"].kill()
        else:
            lab.sims["lns-a"].freeze()
        # declared dead: no tunnel to A any more, A locked out
        budget = HELLO + sum(RETRANSMIT) + 6.0
        assert poll(lambda: not any(t["lns"] == f"{LNS_A}:1701" for t in lab.control("/tunnels")),
                    budget + 10, interval=0.2), lab.control("/tunnels")  # fmt: skip
        dead_after = time.monotonic() - t0
        assert dead_after <= budget, f"declared dead after {dead_after:.1f} s (budget {budget})"
        lns = {r["address"]: r for r in lab.control("/lns")}
        assert lns[f"{LNS_A}:1701"]["locked_out"] is True

        # every session on A ended with an Accounting-Stop (with a cause)
        def stops() -> dict[str, str]:
            return {
                r["Acct-Session-Id"]: r.get("Acct-Terminate-Cause", "")
                for r in lab.accounting()
                if r.get("Acct-Status-Type") == "Stop"
            }

        assert poll(lambda: set(stops()) >= on_a, 30, interval=0.5), stops()
        causes = {stops()[sid] for sid in on_a}
        assert "" not in causes and "User-Request" not in causes, causes
        # the subscribers redial and land on LNS B
        assert poll(lambda: len(_on(lab, LNS_B)) == COUNT, 60, interval=0.5), (
            lab.sessions()[:2],
            lab.broker_log()[-2000:],
        )
        assert poll(lambda: lab.sims["lns-b"].status().get("ipcp_up") == COUNT, 10)
        rerouted = time.monotonic() - t0
        print(f"\nLNS {fault}: tunnel dead after {dead_after:.1f} s, {COUNT} calls on LNS B "
              f"{rerouted:.1f} s after the fault, Stop causes {sorted(causes)}")  # fmt: skip
    finally:
        lab.sims["lns-a"].thaw()
        proc.send_signal(signal.SIGTERM)
        stop_process(proc, timeout=30)
    report = json.loads(out.read_text())
    assert report["up"] == COUNT and report["setups"] >= 2 * COUNT, report
