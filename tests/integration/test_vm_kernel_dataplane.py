"""The kernel data plane for real: the broker runs with ``dataplane: kernel`` INSIDE a qemu guest
(Debian 6.1 kernel: ppp_generic, pppoe, l2tp_ppp, l2tp_netlink), real pppd PPPoE clients (CHAP
and PAP) and an xl2tpd + pppd LNS in guest namespaces, FreeRADIUS on the host.

Shows: the clients get IPv4 from the LNS, ping and a bulk transfer pass through sessions the
kernel bridges (PPPIOCBRIDGECHAN; Python sees almost none of the data frames), PADT from pppd,
an LNS-side disconnect and broker shutdown clean up both sides and the kernel's L2TP objects,
and the kernel's counters reach RADIUS accounting. Topology: :mod:`ops.bench.vm_dataplane`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ops.bench.vm_dataplane import REALM, KernelDataplaneLab
from ops.lab.netns import poll
from tests.support import require_binary, require_root

pytestmark = pytest.mark.integration

IPCP_TIMEOUT = 150.0
CLEANUP_TIMEOUT = 60.0
BULK = 2_000_000


def _require() -> None:
    require_root()
    for binary in ("qemu-system-x86_64", "busybox", "pppd", "xl2tpd", "iperf3", "freeradius",
                   "curl", "apt-get", "dpkg-deb"):  # fmt: skip
        require_binary(binary)


@pytest.fixture(scope="module")
def lab() -> Iterator[KernelDataplaneLab]:
    _require()
    lab = KernelDataplaneLab()
    try:
        lab.start()
        lab.start_broker("kernel")
        yield lab
    finally:
        lab.close()


@pytest.fixture
def vm(lab: KernelDataplaneLab) -> Iterator[KernelDataplaneLab]:
    """The module's lab; guest, broker and LNS logs are printed at teardown (pytest shows them
    in the report of a failed test)."""
    try:
        yield lab
    finally:
        print(lab.logs())


def sessions(lab: KernelDataplaneLab) -> dict[str, dict[str, Any]]:
    return {str(r["username"]): r for r in lab.control("/sessions") or []}


def stops(lab: KernelDataplaneLab, user: str) -> list[dict[str, str]]:
    return [
        r
        for r in lab.accounting()
        if r.get("Acct-Status-Type") == "Stop" and r.get("User-Name", "").strip('"') == user
    ]


def kernel_ids(lab: KernelDataplaneLab) -> tuple[set[int], set[int]]:
    """(session ids, tunnel ids) the guest kernel's L2TP holds."""
    out = lab.kernel_sessions()
    return (
        {int(x) for x in re.findall(r"^Session (\d+) in tunnel", out, re.M)},
        {int(x) for x in re.findall(r"^Tunnel (\d+), encap", out, re.M)},
    )


def link_stats(lab: KernelDataplaneLab, name: str) -> dict[str, int]:
    """The counters of client ``name``'s ppp interface."""
    keys = ("tx_bytes", "tx_packets", "rx_bytes", "rx_packets")
    cmd = "; ".join(f"cat /sys/class/net/ppp{name}/statistics/{k}" for k in keys)
    out = lab.g.run(f"ip netns exec {name} sh -c '{cmd}'", timeout=30).check().out.split()
    return dict(zip(keys, (int(x) for x in out), strict=True))


def close(kernel: int, interface: int, slack: int = 4000) -> bool:
    """Equal within 2 % + ``slack`` (a few control frames the interface does not count)."""
    return abs(kernel - interface) <= interface // 50 + slack


USERS = {
    "k1": (f"user1@{REALM}", "chap"),
    "k2": (f"user2@{REALM}", "pap"),
}


def test_kernel_bridges_pppd_sessions_ping_and_bulk_transfer(vm: KernelDataplaneLab) -> None:
    assert vm.broker is not None
    assert "dataplane kernel (AF_PPPOX" in vm.broker.output()
    for name, (user, auth) in USERS.items():
        vm.start_client(name, user, auth=auth)
    rows = {name: vm.client_up(name, IPCP_TIMEOUT) for name in USERS}
    for row in rows.values():
        assert row[3].startswith("203.0.113.") and row[4] == "203.0.113.129"
    live = sessions(vm)
    assert {live[u]["state"] for u, _ in USERS.values()} == {"spliced"}
    sids, tids = kernel_ids(vm)
    assert {int(live[u]["session_id"]) for u, _ in USERS.values()} <= sids
    assert len(tids) == 1  # both sessions share the tunnel to the LNS
    assert vm.metric("splice", "kernel_sessions") == 2
    assert vm.metric("splice", "attach_errors") == 0
    for name in USERS:
        r = vm.g.run(f"ip netns exec {name} ping -c 3 -W 5 203.0.113.129", timeout=60)
        assert r.ok, r.out
    # bulk: k1 upstream, k2 downstream (iperf3 -R), BULK octets each
    for name, reverse in (("k1", ""), ("k2", "-R")):
        srv = vm.g.popen_bg("exec ip netns exec lns iperf3 -s -1 -B 203.0.113.129")
        assert vm.g.wait_for("ip netns exec lns ss -Hltn 'sport = :5201' | grep -q .", 30).ok
        r = vm.g.run(
            f"ip netns exec {name} iperf3 -c 203.0.113.129 -n {BULK} {reverse}", timeout=240
        )
        assert r.ok and "iperf Done" in r.out, r.out
        poll(lambda srv=srv: not srv.alive(), 30, interval=0.5)
    live = sessions(vm)
    k1, k2 = live[USERS["k1"][0]], live[USERS["k2"][0]]
    # The kernel's counters (PPPIOCGL2TPSTATS, L2TP overhead removed) reach the control API
    # and match what the subscriber's ppp interface counted (IP octets + 2 for the PPP
    # protocol field), within the few control frames the interface does not count. iperf3 may
    # drop its last unsent octets at the end of a run: compare with the interface, not BULK.
    up, down = link_stats(vm, "k1"), link_stats(vm, "k2")
    assert up["tx_bytes"] > BULK // 2 and down["rx_bytes"] > BULK // 2
    assert close(k1["input_octets"], up["tx_bytes"] + 2 * up["tx_packets"])
    assert close(k2["output_octets"], down["rx_bytes"] + 2 * down["rx_packets"])
    assert close(k1["input_packets"], up["tx_packets"], slack=50)
    assert close(k2["output_packets"], down["rx_packets"], slack=50)
    # the data did not go through Python: only a few frames before the filter was in place
    seen = vm.metric("splice", "bridged_frames_seen")
    assert seen is not None and seen < 200


def test_padt_from_pppd_cleans_up_both_sides_and_the_kernel(vm: KernelDataplaneLab) -> None:
    user = USERS["k1"][0]
    before = sessions(vm)[user]
    remote_ip = vm.client_up("k1")[3]
    assert vm.lns_row(remote_ip) is not None
    vm.clients["k1"].kill("TERM")  # pppd sends PADT
    assert vm.client_down("k1", CLEANUP_TIMEOUT)
    assert poll(lambda: user not in sessions(vm), CLEANUP_TIMEOUT, interval=1.0)
    assert poll(lambda: vm.lns_row(remote_ip, "ipdown.log"), CLEANUP_TIMEOUT, interval=1.0)
    sids, tids = kernel_ids(vm)
    assert int(before["session_id"]) not in sids
    assert len(tids) == 1  # k2 still holds the tunnel
    stop = poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=1.0)
    assert stop, "no Accounting-Stop"
    assert int(stop[-1]["Acct-Input-Octets"]) >= before["input_octets"] > BULK // 2  # kernel's
    assert int(stop[-1]["Acct-Input-Packets"]) >= before["input_packets"]


def test_lns_disconnect_ends_the_subscriber_and_deletes_the_tunnel(
    vm: KernelDataplaneLab,
) -> None:
    user = USERS["k2"][0]
    remote_ip = vm.client_up("k2")[3]
    row = vm.lns_row(remote_ip)
    assert row is not None
    vm.g.run(f"kill -TERM {row[1]}", timeout=30).check()  # the LNS's pppd for k2
    assert vm.client_down("k2", CLEANUP_TIMEOUT), vm.clients["k2"].output()[-2000:]
    assert poll(lambda: user not in sessions(vm), CLEANUP_TIMEOUT, interval=1.0)
    # the last session is gone: so is the kernel's tunnel
    assert poll(lambda: kernel_ids(vm) == (set(), set()), CLEANUP_TIMEOUT, interval=1.0)
    stop = poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=1.0)
    assert stop, "no Accounting-Stop"
    assert int(stop[-1]["Acct-Output-Octets"]) > BULK // 2


def test_broker_shutdown_ends_every_call_and_leaves_no_kernel_objects(
    vm: KernelDataplaneLab,
) -> None:
    user = f"user3@{REALM}"
    vm.start_client("k3", user)
    remote_ip = vm.client_up("k3", IPCP_TIMEOUT)[3]
    assert kernel_ids(vm)[0]
    assert vm.g.run("ip netns exec k3 ping -c 2 -W 5 203.0.113.129", timeout=60).ok
    broker = vm.broker
    assert broker is not None
    vm.stop_broker(CLEANUP_TIMEOUT)
    assert not broker.alive()
    assert "shutting down" in broker.output()
    assert vm.client_down("k3", CLEANUP_TIMEOUT)  # PADT
    assert poll(lambda: vm.lns_row(remote_ip, "ipdown.log"), CLEANUP_TIMEOUT, interval=1.0)
    assert kernel_ids(vm) == (set(), set())
    assert poll(lambda: stops(vm, user), CLEANUP_TIMEOUT, interval=1.0)
