"""Interop with the clients and LNSs people really run, in a qemu guest (Debian 6.1 kernel):
real pppd PPPoE clients (CHAP and PAP) -> the broker on the host (userspace data plane) ->
xl2tpd + pppd LNSs in the guest and l2tpns on the host. IPCP, ping, a bulk transfer, PADT from
pppd, LNS-side disconnect and broker SIGTERM clean up both sides; xl2tpd accepts the proxy
LCP/auth AVPs and its pppd renegotiates LCP (and re-authenticates with ``require chap``).

Topology and helpers: :mod:`ops.vm.interop`. One guest for the module (TCG boot is slow); each
test starts its own pppd clients (own guest netns, MAC and user)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.lab.broker_lab import LNS_A
from ops.lab.netns import poll
from ops.vm.interop import LNSS, InteropLab
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

LNS_X, LNS_Y = LNSS
IPCP_TIMEOUT = 180.0
BULK_BYTES = 4 << 20
BULK_SERVER = """
import hashlib, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5301))
s.listen(1)
s.settimeout(150)
c, _ = s.accept()
c.settimeout(150)
h, n = hashlib.sha256(), 0
while chunk := c.recv(65536):
    h.update(chunk)
    n += len(chunk)
print(n, h.hexdigest())
"""
BULK_CLIENT = f"""
import hashlib, random, socket, sys
data = random.Random(7).randbytes({BULK_BYTES})
c = socket.create_connection((sys.argv[1], 5301), timeout=150)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print(len(data), hashlib.sha256(data).hexdigest())
"""
CLEANUP_TIMEOUT = 90.0


def _require() -> None:
    require_root()
    for binary in ("qemu-system-x86_64", "busybox", "pppd", "xl2tpd", "iperf3", "freeradius",
                   "l2tpns", "apt-get", "dpkg-deb"):  # fmt: skip
        require_binary(binary)


@pytest.fixture(scope="module")
def lab() -> Iterator[InteropLab]:
    _require()
    lab = InteropLab(retransmit=(1.0, 1.0, 2.0), interim=0.0)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
        shutil.rmtree(lab.dir, ignore_errors=True)


#: Every test's pppd clients (guest netns name -> user, auth), started together at module
#: setup so that their sessions come up in parallel (TCG is slow).
CLIENTS = {
    "ip1": ("user1@isp-x.example", "chap"),
    "ip2": ("user2@isp-x.example", "pap"),
    "ip3": ("user3@isp-a.example", "chap"),  # RADIUS tunnel attributes -> l2tpns A
    "rn1": ("user5@isp-y.example", "chap"),
    "hu1": ("user6@isp-x.example", "chap"),
    "pd1": ("user10@isp-x.example", "chap"),
    "ld1": ("user7@isp-x.example", "pap"),
    "st1": ("user8@isp-x.example", "chap"),
    "st2": ("user9@isp-a.example", "chap"),
}


@pytest.fixture(scope="module")
def started(lab: InteropLab) -> InteropLab:
    lab.start_clients([(name, user, auth) for name, (user, auth) in CLIENTS.items()])
    return lab


@pytest.fixture
def vm(started: InteropLab) -> Iterator[InteropLab]:
    """The module's lab with its clients started; guest and broker logs are printed at
    teardown (pytest shows them in the report of a failed test)."""
    try:
        yield started
    finally:
        print(started.guest_logs())


def _cpu(pid: int) -> float:
    """User + system CPU seconds of a host process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sessions(lab: InteropLab) -> dict[str, dict[str, object]]:
    return {str(r["username"]): r for r in lab.control("/sessions")}


def stops(lab: InteropLab, user: str) -> list[dict[str, str]]:
    return [
        r
        for r in lab.accounting()
        if r.get("Acct-Status-Type") == "Stop" and r.get("User-Name", "").strip('"') == user
    ]


def gone(lab: InteropLab, user: str) -> bool:
    return user not in sessions(lab)


def test_pppd_clients_get_ipv4_from_the_lns_ping_and_bulk_transfer(vm: InteropLab) -> None:
    names = ("ip1", "ip2", "ip3")
    got = {name: vm.client_session(name, IPCP_TIMEOUT) for name in names}
    # IPCP: addresses from the LNS pools, the LNS's own address as the peer.
    assert got["ip1"].remote == got["ip2"].remote == LNS_X.local_ip
    assert got["ip1"].local != got["ip2"].local
    for name in ("ip1", "ip2"):
        assert got[name].local.startswith("203.0.113.1"), got[name]
    assert got["ip3"].remote == LNS_A
    rows = sessions(vm)
    assert rows["user1@isp-x.example"]["lns"] == f"{LNS_X.address}:1701"
    assert rows["user2@isp-x.example"]["lns"] == f"{LNS_X.address}:1701"
    assert rows["user3@isp-a.example"]["lns"] == f"{LNS_A}:1701"
    assert all(rows[CLIENTS[n][0]]["state"] == "spliced" for n in names)
    assert "CHAP authentication succeeded" in vm.clients["ip1"].output()
    assert "PAP authentication succeeded" in vm.clients["ip2"].output()

    g = vm.guest
    assert g is not None
    for name, s in got.items():
        r = g.run(f"ip netns exec {name} ping -c 3 -i 0.5 -W 5 {s.remote}", timeout=60)
        assert r.ok, r.out

    # Bulk: 4 MiB of seeded random bytes, subscriber -> LNS through the broker's splice,
    # checked byte for byte (count and SHA-256) on the LNS side.
    ip = LNS_X.local_ip
    server = g.popen_bg(
        f"exec ip netns exec {LNS_X.netns} python3 -c {shlex.quote(BULK_SERVER)} {ip}"
    )
    assert g.wait_for(f"ip netns exec {LNS_X.netns} ss -Hltn 'sport = :5301' | grep -q .", 60).ok, (
        server.output()
    )
    before = int(rows["user1@isp-x.example"]["input_octets"])  # type: ignore[call-overload]
    cpu0, qcpu0, t0 = _cpu(vm.brokers[0].pid), g.cpu_seconds(), time.monotonic()
    r = g.run(f"ip netns exec ip1 python3 -c {shlex.quote(BULK_CLIENT)} {ip}", timeout=180)
    assert r.ok, r.out
    wall, cpu, qcpu = time.monotonic() - t0, _cpu(vm.brokers[0].pid) - cpu0, g.cpu_seconds() - qcpu0
    print(f"bulk: 4 MiB in {wall:.1f} s wall; broker {cpu:.2f} CPU s; qemu {qcpu:.2f} CPU s")
    assert poll(lambda: not server.alive(), 60, interval=0.5), server.output()
    assert server.output().split() == r.out.split(), (server.output(), r.out)
    after = int(sessions(vm)["user1@isp-x.example"]["input_octets"])  # type: ignore[call-overload]
    assert after - before >= BULK_BYTES

    # Throughput figure (printed, not asserted): iperf3 through the same path.
    g.popen_bg(f"exec ip netns exec {LNS_X.netns} iperf3 -s -1 -B {ip}")
    assert g.wait_for(f"ip netns exec {LNS_X.netns} ss -Hltn 'sport = :5201' | grep -q .", 30).ok
    r = g.run(f"ip netns exec ip1 iperf3 -c {ip} -B {got['ip1'].local} -n 4M -J", timeout=180)
    assert r.ok, r.out
    end_ = json.loads(r.out)["end"]
    assert end_["sum_sent"]["bytes"] >= BULK_BYTES
    print(f"bulk: iperf3 {end_['sum_received']['bits_per_second'] / 1e6:.1f} Mbit/s (TCG guest)")


def test_proxy_lcp_and_auth_accepted_by_xl2tpd_and_pppd_renegotiates_lcp(vm: InteropLab) -> None:
    s = vm.client_session("ip1", IPCP_TIMEOUT)
    assert s.remote == LNS_X.local_ip
    xl2tpd_log = (vm.share / LNS_X.netns / "xl2tpd.log").read_text(errors="replace")
    # xl2tpd takes the ICCN with the proxy AVPs (26-28 LCP CONFREQs, 29-33 proxy auth) without
    # a CDN: it has no handler for them and ignores them; its pppd then negotiates LCP afresh
    # (no authentication: "require authentication = no").
    assert "no handler for attribute 26" in xl2tpd_log
    assert "Ignoring AVP" in xl2tpd_log
    client_log = vm.clients["ip1"].output()
    assert client_log.count("rcvd [LCP ConfReq") >= 2, client_log  # the broker's, the LNS's
    assert client_log.count("rcvd [CHAP Success") == 1, client_log  # the broker's only


def test_lns_renegotiating_lcp_and_reauthenticating_chap(vm: InteropLab) -> None:
    user = CLIENTS["rn1"][0]
    s = vm.client_session("rn1", IPCP_TIMEOUT)
    assert s.remote == LNS_Y.local_ip
    client_log = vm.clients["rn1"].output()
    # Authenticated twice: by the broker, then again by the LNS's pppd (require chap).
    assert f'name = "vm-{LNS_Y.netns}"' in client_log, client_log
    assert client_log.count("rcvd [CHAP Success") == 2, client_log
    lns_log = (vm.share / LNS_Y.netns / "pppd.log").read_text(errors="replace")
    assert f'name = "{user}"' in lns_log
    g = vm.guest
    assert g is not None
    assert g.run(f"ip netns exec rn1 ping -c 2 -W 5 {s.remote}", timeout=60).ok


def test_pppd_hangup_cleans_up_broker_lns_and_accounting(vm: InteropLab) -> None:
    user, client = CLIENTS["hu1"][0], vm.clients["hu1"]
    s = vm.client_session("hu1", IPCP_TIMEOUT)
    lns = poll(lambda: vm.lns_session(s.local), 30)
    assert lns is not None
    assert user in sessions(vm)
    # pppd (Debian 2.4.9) on SIGTERM sends an LCP Terminate-Request, which the splice carries
    # to the LNS; its pppd ends, xl2tpd sends a CDN and the broker closes the PPPoE side.
    client.kill("TERM")
    assert poll(lambda: not client.alive(), CLEANUP_TIMEOUT, interval=0.5), client.output()
    assert poll(lambda: gone(vm, user), CLEANUP_TIMEOUT, interval=0.5), sessions(vm)
    assert poll(lambda: lns.pid not in vm.guest_pids(LNS_X.netns), CLEANUP_TIMEOUT, 0.5)
    assert poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=0.5), vm.accounting()


def test_padt_from_the_subscriber_cleans_up_broker_lns_and_accounting(vm: InteropLab) -> None:
    user, client = CLIENTS["pd1"][0], vm.clients["pd1"]
    s = vm.client_session("pd1", IPCP_TIMEOUT)
    lns = poll(lambda: vm.lns_session(s.local), 30)
    assert lns is not None
    sid = int(sessions(vm)[user]["pppoe_session_id"])  # type: ignore[call-overload]
    # The subscriber's link drops without an LCP Terminate (pppd killed), then its PADT.
    client.kill("KILL")
    assert poll(lambda: not client.alive(), CLEANUP_TIMEOUT, interval=0.5)
    assert user in sessions(vm)
    vm.send_padt("pd1", sid)
    assert poll(lambda: vm.padts("pd1")[0] >= 1, 10), "the PADT is not on the wire"
    assert poll(lambda: gone(vm, user), CLEANUP_TIMEOUT, interval=0.5), sessions(vm)
    assert poll(lambda: lns.pid not in vm.guest_pids(LNS_X.netns), CLEANUP_TIMEOUT, 0.5)
    assert poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=0.5), vm.accounting()


def test_lns_side_disconnect_cleans_up_the_subscriber(vm: InteropLab) -> None:
    user, client = CLIENTS["ld1"][0], vm.clients["ld1"]
    s = vm.client_session("ld1", IPCP_TIMEOUT)
    lns = poll(lambda: vm.lns_session(s.local), 30)
    assert lns is not None
    g = vm.guest
    assert g is not None
    # SIGKILL: no LCP Terminate from the LNS's pppd; xl2tpd sees it die and sends a CDN, the
    # broker must end the PPPoE session (PADT) on its own.
    g.run(f"kill -KILL {lns.pid}", timeout=30).check()
    assert poll(lambda: gone(vm, user), CLEANUP_TIMEOUT, interval=0.5), sessions(vm)
    assert poll(lambda: not client.alive(), CLEANUP_TIMEOUT, interval=0.5), client.output()
    assert vm.padts("ld1")[1] >= 1, "no PADT from the broker to the client"
    assert poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=0.5), vm.accounting()


def test_broker_sigterm_cleans_up_both_sides(vm: InteropLab) -> None:
    """Last: it stops the broker (and so ends every client still up)."""
    names = ("st1", "st2")
    got = {name: vm.client_session(name, IPCP_TIMEOUT) for name in names}
    lns = poll(lambda: vm.lns_session(got["st1"].local), 30)
    assert lns is not None

    def l2tpns_shutdowns() -> int:
        return vm.lns["lns-a"].log().count("Shutting down tunnel")

    shutdowns = l2tpns_shutdowns()
    assert vm.stop_broker(0, timeout=60) == 0, vm.broker_log()[-3000:]
    clients = {name: vm.clients[name] for name in names}
    exited = poll(lambda: not any(p.alive() for p in clients.values()), CLEANUP_TIMEOUT, 0.5)
    assert exited, {name: p.output()[-1500:] for name, p in clients.items()}
    for name in names:
        assert vm.padts(name)[1] >= 1, f"no PADT from the broker to {name}"
    assert poll(lambda: lns.pid not in vm.guest_pids(LNS_X.netns), CLEANUP_TIMEOUT, 0.5)
    users = [CLIENTS[n][0] for n in names]
    assert poll(lambda: all(stops(vm, u) for u in users), CLEANUP_TIMEOUT, 0.5), vm.accounting()
    # l2tpns A shut its tunnel (and the sessions in it) down on the broker's StopCCN.
    assert poll(lambda: l2tpns_shutdowns() > shutdowns, 30), vm.lns["lns-a"].log()[-2000:]
