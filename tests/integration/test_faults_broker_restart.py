"""Issue 9 item 2, the broker killed with SIGKILL and restarted (FreeRADIUS and ``sim lns``
LNSs in namespaces):

- records spooled while the accounting server was down and the broker was killed are sent
  after the restart;
- every session that had a Start gets exactly one Stop, with Acct-Terminate-Cause NAS-Reboot
  and the last known session time and counters (from its last Interim-Update), written by the
  restarted node from the spool's open-session table; no Stop without a Start;
- the LNS's tunnels of the dead broker are cleared at its next HELLO by the restarted broker's
  StopCCN for the unknown tunnel (RFC 2661 Assigned Tunnel ID), well before the LNS's own
  retransmission schedule would give up.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from collections.abc import Iterator

import pytest

from ops.lab.faults import FaultLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

COUNT = 12


@pytest.fixture
def lab() -> Iterator[FaultLab]:
    require_root()
    require_binary("freeradius")
    lab = FaultLab(
        hello_interval=5.0, lns_args=("--hello-interval", "5"), interim=2.0,
        retransmit=(1.0, 2.0, 4.0, 8.0, 8.0),
    )  # fmt: skip
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def _kinds(lab: FaultLab, kind: str) -> list[dict[str, str]]:
    return [r for r in lab.accounting() if r.get("Acct-Status-Type") == kind]


def _stale_sent(lab: FaultLab) -> float:
    return lab.metric("engine_counter", name="stale_stopccn_sent")


def test_sigkill_restart_replays_spool_and_stops_open_sessions(lab: FaultLab) -> None:
    ready = lab.dir / "ready.json"
    proc, _out = lab.subscribers(
        COUNT, rate=20, hold=-1, background=True,
        extra=["--ready-file", str(ready), "--timeout", "120"],
    )  # fmt: skip
    try:
        assert poll(ready.exists, 60, interval=0.5), lab.broker_log()[-3000:]
        assert json.loads(ready.read_text())["up"] == COUNT
        assert poll(lambda: len({r["Acct-Session-Id"] for r in _kinds(lab, "Start")}) == COUNT, 30)
        started = {r["Acct-Session-Id"] for r in _kinds(lab, "Start")}
        # an Interim-Update for every session reaches the server, then the server goes away
        assert poll(
            lambda: {r["Acct-Session-Id"] for r in _kinds(lab, "Interim-Update")} >= started, 30
        )
        assert lab.radius is not None
        lab.radius.stop()
        outage = time.time()
        interims_before = len(_kinds(lab, "Interim-Update"))
        assert poll(lambda: lab.control("/status")["spool_depth"] >= COUNT, 30, interval=0.5)
        spooled = lab.control("/status")["spool_depth"]
        assert lab.sims["lns-a"].status()["tunnels"] == 1
        lab.kill_broker(0)  # SIGKILL: no Stop, no CDN, no StopCCN, no Accounting-Off
        killed = time.time()
        lab.radius.start()
        lab.start_broker(0)
        restarted = time.monotonic()

        # the LNS's tunnel of the dead broker: its next HELLO (5 s idle) gets our StopCCN; its
        # sessions go at once, the tunnel after the StopCCN hold (31 s, RFC 2661 5.7)
        assert poll(lambda: _stale_sent(lab) >= 1, 30, interval=0.5), lab.broker_log()[-2000:]
        assert poll(lambda: lab.sims["lns-a"].status().get("sessions") == 0, 10, interval=0.5), (
            lab.sims["lns-a"].status()
        )
        cleared_after = time.monotonic() - restarted
        # well before the LNS's own give-up (HELLO + 1+2+4+8+8 s of retransmissions)
        assert cleared_after < 5 + 23, cleared_after

        # the spool: everything written before the kill arrives, then the NAS-Reboot Stops
        assert poll(lambda: lab.control("/status")["spool_depth"] == 0, 60, interval=0.5)
        assert poll(lambda: {r["Acct-Session-Id"] for r in _kinds(lab, "Stop")} >= started, 30)
        # the spooled records were Interim-Updates (nothing else happens while held)
        assert len(_kinds(lab, "Interim-Update")) - interims_before >= spooled - 2
        stops = _kinds(lab, "Stop")
        by_session: dict[str, set[tuple[str, str, str]]] = collections.defaultdict(set)
        for r in stops:
            by_session[r["Acct-Session-Id"]].add(
                (r["Acct-Terminate-Cause"], r["Acct-Session-Time"], r["Acct-Input-Octets"])
            )
        assert set(by_session) == started  # no Stop without a Start, none missing
        for sid, contents in by_session.items():
            assert len(contents) == 1, (sid, contents)  # retransmissions only, no second Stop
            ((cause, seconds, _octets),) = contents
            assert cause == "NAS-Reboot"
            assert int(seconds) >= 2  # the last Interim's session time, not zero
        links = collections.Counter(r["Acct-Session-Id"] for r in _kinds(lab, "Tunnel-Link-Stop"))
        assert set(links) == started
        assert len(_kinds(lab, "Accounting-On")) == 2
        log = lab.broker_log()
        assert f"{COUNT} sessions left open by the previous run" in log
        assert poll(lambda: lab.sims["lns-a"].status().get("tunnels") == 0, 45, interval=0.5)
        print(
            f"\nbroker SIGKILL: outage {killed - outage:.1f} s, LNS tunnel cleared "
            f"{cleared_after:.1f} s after the restart, {spooled} records replayed, "
            f"{len(stops)} Stop records"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        stop_process(proc, timeout=30)
