"""End to end in namespaces with real FreeRADIUS, real l2tpns LNSs and the simulated CPEs:
IPCP through the splice, traffic, accounting with octets, Tunnel-Link records, failover by
Tunnel-Preference, Disconnect-Request, SIGTERM balance, two nodes sharing one Redis."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator

import pytest

from ops.lab.broker_lab import LNS_A, LNS_B, BrokerLab
from ops.lab.netns import poll, stop_process
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration


def _require() -> None:
    require_root()
    for binary in ("freeradius", "l2tpns", "radclient", "redis-server"):
        require_binary(binary)


@pytest.fixture
def lab() -> Iterator[BrokerLab]:
    _require()
    lab = BrokerLab(retransmit=(1.0, 1.0, 2.0), interim=2.0)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        lab.remove()


def spliced(lab: BrokerLab, node: int = 0) -> list[dict]:
    return [r for r in lab.control("/sessions", node) if r["state"] == "spliced"]


def wait_sessions(lab: BrokerLab, n: int, node: int = 0, timeout: float = 40) -> list[dict]:
    assert poll(lambda: len(spliced(lab, node)) >= n, timeout, interval=0.5), lab.broker_log(node)[
        -3000:
    ]
    return spliced(lab, node)


def acct(lab: BrokerLab, kind: str) -> list[dict[str, str]]:
    return [r for r in lab.accounting() if r.get("Acct-Status-Type") == kind]


def test_ipcp_traffic_accounting_octets_and_tunnel_link_records(lab: BrokerLab) -> None:
    traffic_and_accounting(lab)
    assert not lab.control("/status")["dataplane_features"].get("direct_egress")


def test_direct_egress_carries_the_same_traffic() -> None:
    """``l2tp.direct_egress: true``: LNS-bound data leaves as raw frames from a transmit ring
    on the LNS-facing interface; l2tpns sees the same calls, traffic and octets."""
    _require()
    lab = BrokerLab(retransmit=(1.0, 1.0, 2.0), interim=2.0, direct_egress=True)
    try:
        lab.start()
        traffic_and_accounting(lab)
        features = lab.control("/status")["dataplane_features"]
        assert features["direct_egress"] and features["direct_tx_ring"], features
    finally:
        lab.close()
        lab.remove()


def traffic_and_accounting(lab: BrokerLab) -> None:
    proc, out = lab.subscribers(
        8, user_template="user{i}@isp-a.example", ping=LNS_A, hold=8.0,
        extra=["--ping-count", "4", "--ping-interval", "0.5"], background=True,
    )  # fmt: skip
    rows = wait_sessions(lab, 8)
    assert {r["lns"] for r in rows} == {f"{LNS_A}:1701"}
    proc.communicate(timeout=60)
    stop_process(proc)
    import json

    report = json.loads(out.read_text())
    assert report["up"] == 8 and report["pings_received"] == report["pings_sent"] == 32
    assert poll(lambda: len(acct(lab, "Stop")) == 8, 30, interval=0.5)
    assert poll(lambda: lab.control("/status")["spool_depth"] == 0, 20)
    starts, stops = acct(lab, "Start"), acct(lab, "Stop")
    assert {r["Acct-Session-Id"] for r in starts} == {r["Acct-Session-Id"] for r in stops}
    for stop in stops:
        # 4 echo requests of 84 octets + LCP/IPCP upstream; 4 replies downstream at least
        assert int(stop["Acct-Input-Octets"]) >= 4 * 86
        assert int(stop["Acct-Output-Octets"]) >= 4 * 86
        assert int(stop["Acct-Input-Packets"]) >= 4
        assert stop["Acct-Terminate-Cause"] == "User-Request"
        assert stop["Tunnel-Server-Endpoint:0"] == LNS_A
        assert stop["Class"] == "0x6c61622d62696c6c696e67"  # echoed from Access-Accept
    assert len(acct(lab, "Tunnel-Link-Start")) == 8
    assert len(acct(lab, "Tunnel-Link-Stop")) == 8
    assert acct(lab, "Interim-Update"), "interim accounting every 2 s"
    assert acct(lab, "Accounting-On")


def test_failover_by_preference_and_disconnect_request(lab: BrokerLab) -> None:
    lab.kill_lns("lns-a")
    proc, _ = lab.subscribers(
        3, user_template="user{i}@isp-a.example", ping=LNS_B, hold=30.0,
        extra=["--setup-timeout", "40"], background=True,
    )  # fmt: skip
    try:
        rows = wait_sessions(lab, 3, timeout=60)
        assert {r["lns"] for r in rows} == {f"{LNS_B}:1701"}  # preference 10, after A failed
        lns = {r["address"]: r for r in lab.control("/lns")}
        assert lns[f"{LNS_A}:1701"]["locked_out"] is True
        user = rows[0]["username"]
        answer = lab.disconnect(user)
        assert "Disconnect-ACK" in answer, answer
        assert poll(lambda: user not in {r["username"] for r in lab.control("/sessions")}, 10)
        assert "Disconnect-NAK" in lab.disconnect("nobody@isp-a.example")
        assert poll(
            lambda: any(r.get("Acct-Terminate-Cause") == "Admin-Reset" for r in acct(lab, "Stop")),
            20,
        )
    finally:
        stop_process(proc)


def test_sigterm_ends_every_session_and_accounting_balances(lab: BrokerLab) -> None:
    proc, _ = lab.subscribers(
        6, user_template="user{i}@isp-b.example", hold=60.0, background=True, rate=20,
    )  # fmt: skip
    try:
        wait_sessions(lab, 6)
        assert lab.stop_broker(0) == 0
    finally:
        stop_process(proc)
    records = lab.accounting()
    kinds = collections.Counter(r.get("Acct-Status-Type") for r in records)
    assert kinds["Start"] == kinds["Stop"] == 6, kinds
    assert kinds["Accounting-Off"] == 1
    causes = {r["Acct-Terminate-Cause"] for r in records if r.get("Acct-Status-Type") == "Stop"}
    assert causes == {"Admin-Reboot"}
    tunnel = collections.defaultdict(set)
    for r in records:
        if r.get("Acct-Status-Type") in ("Tunnel-Start", "Tunnel-Stop"):
            tunnel[r["Acct-Status-Type"]].add(r["Acct-Session-Id"])
    assert tunnel["Tunnel-Stop"] and tunnel["Tunnel-Stop"] == tunnel["Tunnel-Start"], tunnel
    assert "shutting down: ending 6 calls" in lab.broker_log()


def test_two_nodes_share_redis_state() -> None:
    _require()
    lab = BrokerLab(state="redis", nodes=2, retransmit=(1.0, 1.0, 2.0))
    try:
        lab.start()
        procs = [
            # distinct users per node: l2tpns refuses a second login of a user name
            lab.subscribers(3, user_template=f"user{n + 1}{{i}}@isp-a.example", node=n,
                            hold=30.0,
                            extra=["--seed", str(n + 1)], background=True)[0]
            for n in (0, 1)
        ]  # fmt: skip
        try:
            for n in (0, 1):
                wait_sessions(lab, 3, node=n)
            # an operator lock on node 0 is seen by node 1's next calls at once
            lab.control(f"/lns/{LNS_A}/lock", 0, post=True)
            time.sleep(0.5)
            rep = lab.subscribers(
                2,
                user_template="user{i}@isp-a.example",
                node=1,
                hold=1.0,
                extra=["--seed", "9"],
                ping=LNS_B,
                timeout=60,
            )
            assert rep["up"] == 2 and rep["pings_received"] == rep["pings_sent"] > 0
            r = lab.lac.run(["redis-cli", "-p", "6379", "--scan", "--pattern", "*"])  # type: ignore[union-attr]
            assert r.stdout.strip(), "the nodes keep their shared state in Redis"
        finally:
            for p in procs:
                stop_process(p)
    finally:
        lab.close()
        lab.remove()
