"""Hostile L2TP against a running broker (real FreeRADIUS, real l2tpns LNSs, simulated CPEs):
SCCRQ from a peer no policy names, control and data for unknown tunnel and session ids,
StopCCN/CDN injected from the wrong address, the wrong port or outside the sequence window,
truncated and oversized datagrams, and a tunnel whose secret is wrong (Challenge Response
fails). Each is dropped and counted in /metrics; the established sessions stay up and their
traffic keeps passing."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest

from broker.l2tp.constants import MessageType
from ops.lab.broker_lab import LAC_ADDR, LNS_A, LNS_B
from ops.lab.hostile import (
    STRANGER,
    WRONG_SECRET_REALM,
    HostileLab,
    broken_l2tp_datagrams,
    cdn,
    l2tp_control,
    l2tp_data,
    sccrq,
    stopccn,
)
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

LCP_ECHO = b"\xc0\x21\x09\x01\x00\x08\x00\x00\x00\x00"


@pytest.fixture
def lab() -> Iterator[HostileLab]:
    require_root()
    for binary in ("freeradius", "l2tpns"):
        require_binary(binary)
    lab = HostileLab(retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def spliced(lab: HostileLab) -> list[dict]:
    return [r for r in lab.control("/sessions") if r["state"] == "spliced"]


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def counted(lab: HostileLab, before: dict[str, float], want: dict[str, float]) -> dict[str, float]:
    """Poll /metrics until every counter in ``want`` grew by at least its value."""

    def check() -> dict[str, float] | None:
        d = delta(before, lab.metrics())
        return d if all(d.get(k, 0.0) >= v for k, v in want.items()) else None

    d = poll(check, 15, interval=0.2)
    assert d is not None, f"expected at least {want}, got {delta(before, lab.metrics())}"
    return d


def traffic_still_passes(lab: HostileLab, sessions: dict[int, dict]) -> None:
    """Each session's downstream packet count grows by at least 3 pings from now on."""
    start = {r["id"]: r["output_packets"] for r in spliced(lab)}
    assert set(start) == set(sessions)

    def grew() -> bool:
        now = {r["id"]: r["output_packets"] for r in spliced(lab)}
        return set(now) == set(start) and all(now[i] >= start[i] + 3 for i in start)

    assert poll(grew, 20, interval=0.3), (start, spliced(lab))


def udp(lab: HostileLab, ns: str, source: str, payloads: list[bytes], wait: float = 0.5) -> list:
    out = lab.run_in(
        ns, "udp", "--target", f"{LAC_ADDR}:1701", "--source", source, "--wait", str(wait),
        *[p.hex() for p in payloads],
    )  # fmt: skip
    return list(out["answers"])


def test_unknown_peers_spoofed_ids_injection_and_broken_datagrams(lab: HostileLab) -> None:
    proc, out = lab.subscribers(
        2, user_template="user{i}@isp-a.example", rate=10, hold=-1, ping=LNS_A,
        extra=["--ping-count", "10000", "--ping-interval", "0.3"], background=True,
    )  # fmt: skip
    try:
        assert poll(lambda: len(spliced(lab)) == 2, 40, interval=0.3), lab.broker_log()[-3000:]
        tunnel = lab.control("/tunnels")[0]
        tid, ptid = tunnel["tunnel_id"], tunnel["peer_tunnel_id"]
        sessions = {r["id"]: r for r in spliced(lab)}
        sid = next(iter(sessions.values()))["session_id"]
        unknown_tids = [t for t in range(1, 60) if t != tid]
        rng = random.Random(9)
        attacks: list[tuple[str, str, str, list[bytes], dict[str, float]]] = [
            # (what, namespace, source, datagrams, counters that must grow)
            ("SCCRQ from an address no policy names", "lns-a", f"{STRANGER}:0",
             [sccrq(77), sccrq(78)], {"l2tp/unknown_tunnel": 2}),
            ("StopCCN for unknown tunnel ids", "lns-a", f"{STRANGER}:0",
             [stopccn(t, 5, ns=0, nr=0) for t in unknown_tids],
             {"l2tp/unknown_tunnel": len(unknown_tids)}),
            ("StopCCN with the right ids from the wrong address", "lns-a", f"{STRANGER}:1701",
             [stopccn(tid, ptid, ns=3, nr=3)], {"l2tp/wrong_peer": 1}),
            ("StopCCN with the right ids from the wrong port", "lns-a", f"{LNS_A}:1702",
             [stopccn(tid, ptid, ns=3, nr=3)], {"l2tp/wrong_peer": 1}),
            ("StopCCN spoofed from the LNS, Ns ahead of the window", "lns-a", f"{LNS_A}:1701",
             [stopccn(tid, ptid, ns=30000, nr=0)], {"l2tp/out_of_window": 1}),
            ("CDN spoofed from the LNS, Ns behind (a duplicate)", "lns-a", f"{LNS_A}:1701",
             [cdn(tid, sid, 1, ns=40000, nr=0)], {"l2tp/duplicates": 1}),
            ("CDN from the wrong address", "lns-a", f"{STRANGER}:1701",
             [cdn(tid, sid, 1, ns=5, nr=5)], {"l2tp/wrong_peer": 1}),
            ("data for unknown tunnel/session ids", "lns-a", f"{LNS_A}:1701",
             [l2tp_data(t, rng.randrange(1, 1 << 16), LCP_ECHO) for t in unknown_tids[:20]]
             + [l2tp_data(tid, s, LCP_ECHO) for s in (1, 2, 3) if s != sid],
             {"splice/unknown_downstream": 20 + len([s for s in (1, 2, 3) if s != sid])}),
            ("truncated, inconsistent and oversized datagrams", "lns-a", f"{LNS_A}:1701",
             broken_l2tp_datagrams(tid, rng),
             {"l2tp/malformed": 6, "splice/malformed_downstream": 1}),
        ]  # fmt: skip
        figures: dict[str, dict[str, float]] = {}
        for what, ns, source, datagrams, want in attacks:
            before = lab.metrics()
            answers = udp(lab, ns, source, datagrams)
            assert answers == [], f"{what}: the broker answered {answers}"
            figures[what] = counted(lab, before, want)
            assert lab.brokers[0].poll() is None, f"{what}: the broker died"
            assert {r["id"] for r in spliced(lab)} == set(sessions), what
            assert lab.control("/tunnels")[0]["state"] == "ESTABLISHED", what
        # A HELLO for an unknown tunnel from a stranger gets the (rate-limited) stale StopCCN
        # of the restart clean-up, never more than one per (peer, tunnel) and second.
        before = lab.metrics()
        hellos = [l2tp_control(MessageType.HELLO, 4242, ns=i) for i in range(20)]
        answers = udp(lab, "lns-a", f"{STRANGER}:0", hellos, wait=1.0)
        assert len(answers) <= 2, answers
        d = counted(lab, before, {"l2tp/unknown_tunnel": 20})
        assert d.get("l2tp/stale_stopccn_sent", 0) <= 2
        traffic_still_passes(lab, sessions)
        proc.terminate()
        proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    report = json.loads(out.read_text())
    assert report["up"] == 2 and report["downs"] == {}, report
    stops = [r for r in lab.accounting() if r.get("Acct-Status-Type") == "Stop"]
    assert poll(
        lambda: len([r for r in lab.accounting() if r.get("Acct-Status-Type") == "Stop"]) == 2,
        20,
    ), stops
    causes = {
        r.get("Acct-Terminate-Cause")
        for r in lab.accounting()
        if r.get("Acct-Status-Type") == "Stop"
    }
    assert causes == {"User-Request"}, causes  # ended by the CPEs, not by an injection
    (lab.dir / "l2tp-figures.json").write_text(json.dumps(figures))


def test_wrong_tunnel_secret_fails_that_call_only(lab: HostileLab) -> None:
    proc, out = lab.subscribers(
        1, user_template="user{i}@isp-b.example", rate=10, hold=-1, ping=LNS_B,
        extra=["--ping-count", "10000", "--ping-interval", "0.3"], background=True,
    )  # fmt: skip
    try:
        assert poll(lambda: len(spliced(lab)) == 1, 40, interval=0.3), lab.broker_log()[-3000:]
        good = spliced(lab)[0]
        before = lab.metrics()
        report = lab.subscribers(
            1, user_template="user{i}@" + WRONG_SECRET_REALM, rate=10,
            extra=["--setup-timeout", "25", "--first-index", "5"], timeout=60,
        )  # fmt: skip
        assert report["up"] == 0 and report["failed"] == 1, report
        d = counted(lab, before, {"l2tp/auth_failed": 1})
        assert d.get('l2tp_broker_setup_failures_total{reason="rejected"}', 0) >= 1, d
        assert [r["id"] for r in spliced(lab)] == [good["id"]]  # the good session stays up
        tunnels = lab.control("/tunnels")
        assert [t["tunnel_id"] for t in tunnels if t["state"] == "ESTABLISHED"] == [
            good["tunnel_id"]
        ]
        traffic_still_passes(lab, {good["id"]: good})
        proc.terminate()
        proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    report = json.loads(out.read_text())
    assert report["up"] == 1 and report["downs"] == {}, report
