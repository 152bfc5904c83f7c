"""FastSplice on the broker's real adapters between three network namespaces (root).

cpe (AF_PACKET) -- veth -- broker (RawEthernetPort + L2tpUdpAdapter + FastSplice.install)
-- veth -- lns (UDP 198.51.100.2:1701). Frames must pass both ways with the right content
and counters; not a timed test (every wait is a poll with a deadline).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops.lab.netns import Netns, stop_process, venv_python, veth
from tests.support import require_root

NODE = str(Path(__file__).with_name("splice_node.py"))
sys.path.insert(0, str(Path(__file__).parent))
from splice_node import (  # noqa: E402
    BRK_IP,
    LNS_IP,
    SESSIONS,
    UNSPLICED_SID,
    down_messages,
    up_payload,
)

N_UP = 6


def mac_of(ns: Netns, ifname: str) -> str:
    out = ns.run(["ip", "-j", "link", "show", "dev", ifname]).stdout
    return str(json.loads(out)[0]["address"])


def start(ns: Netns, *args: str, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    proc = ns.popen(
        [venv_python(), NODE, *args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    assert proc.stdout is not None
    # Read "ready" a byte at a time from the unbuffered pipe: a buffered readline could swallow
    # the report line too (when the node is quick and the test slow), which communicate()
    # would then never see.
    fd, line = proc.stdout.fileno(), b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:  # the node died
            break
        line += chunk
    assert line.strip() == b"ready", f"{args[0]} did not start: {line!r}"
    return proc


def result(proc: subprocess.Popen[bytes], stdin: str | None = None) -> dict[str, Any]:
    out, err = proc.communicate(None if stdin is None else stdin.encode(), timeout=30)
    lines = out.decode().strip().splitlines()
    assert lines, f"no report (exit {proc.returncode}): {err.decode()[-2000:]}"
    return dict(json.loads(lines[-1]))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("direct", "rings"),
    [(False, False), (False, True), (True, True)],
    ids=["udp-socket", "rings", "rings-direct-egress"],
)
def test_frames_pass_both_ways_with_counters(direct: bool, rings: bool) -> None:
    require_root()
    with Netns("fpc") as cpe, Netns("fpb") as brk, Netns("fpl") as lns:
        cpe_if, brk_cpe_if = veth(cpe, brk, prefix="fc")
        brk_lns_if, lns_if = veth(brk, lns, f"{BRK_IP}/24", f"{LNS_IP}/24", prefix="fl")
        # the resolved neighbour that direct egress (linux_egress) looks up
        brk.run(["ip", "neigh", "replace", LNS_IP, "lladdr", mac_of(lns, lns_if),
                 "dev", brk_lns_if, "nud", "permanent"])  # fmt: skip
        cpe_mac, brk_mac = mac_of(cpe, cpe_if), mac_of(brk, brk_cpe_if)
        opts = (["direct"] if direct else []) + ([] if rings else ["norings"])
        fwd = start(brk, "fwd", brk_cpe_if, cpe_mac, *opts, stdin=subprocess.PIPE)
        procs = [fwd]
        try:
            down = down_messages()
            n_down = len(down) - 1  # the last one names an unknown session
            peer = start(lns, "lns", str(N_UP))
            procs.append(peer)
            sub = start(cpe, "cpe", cpe_if, brk_mac, str(N_UP), str(n_down))
            procs.append(sub)
            seen_up, seen_down = result(peer)["up"], result(sub)["down"]
            report = result(fwd, "")  # EOF on stdin: the broker node stops and reports
        finally:
            for proc in procs:
                stop_process(proc)

    # upstream: L2TP header + FF 03 added; Ns counts on the sequenced session
    expected_up = []
    ns_next = 0
    for i in range(N_UP):
        _, _, _, ptid, psid, seq = SESSIONS[i % len(SESSIONS)]
        if seq:
            head = struct.pack("!HHHHH", 0x0802, ptid, psid, ns_next, 0)
            ns_next += 1
        else:
            head = struct.pack("!HHH", 0x0002, ptid, psid)
        expected_up.append((head + b"\xff\x03" + up_payload(i)).hex())
    assert seen_up == expected_up
    # downstream: PPPoE session frames to the subscriber, FF 03 stripped, header bits parsed
    expected_down = []
    for n, (psid, *_rest) in enumerate(SESSIONS):
        ppp = b"\xc0\x21" + f"down-{n}".encode()
        frame = (
            bytes.fromhex(cpe_mac.replace(":", ""))
            + bytes.fromhex(brk_mac.replace(":", ""))
            + b"\x88\x64\x11\x00"
            + struct.pack("!HH", psid, len(ppp))
            + ppp
        )
        expected_down += [frame.hex()] * 3
    assert sorted(seen_down) == sorted(expected_down)
    # counters: per call, and the unknown / control / unspliced traffic went where it belongs
    for i in range(len(SESSIONS)):
        ups = [up_payload(k) for k in range(N_UP) if k % len(SESSIONS) == i]
        c = report["calls"][str(i)]
        assert c["input_packets"] == len(ups)
        assert c["input_octets"] == sum(map(len, ups))
        assert c["output_packets"] == 3
        assert c["output_octets"] == 3 * len(f"\xc0\x21down-{i}")
    assert report["splice"]["unknown_downstream"] == 1
    # the rings were really in place (transmit rings both ways, L2TP data receive ring)
    assert report["features"]["pppoe_tx_ring"] is rings
    assert report["features"]["pppoe_tx_linear"] is rings  # virtio_net_hdr accepted
    assert report["features"]["l2tp_rx_ring"] is rings
    assert report["features"]["direct_tx_ring"] is (rings and direct)
    assert report["features"]["direct_egress"] is direct
    assert report["splice"]["tx_ring_full"] == report["splice"]["tx_flush_errors"] == 0
    assert report["control"] == ["c802000c0000000000000000"]
    assert report["unspliced"] == [f"{UNSPLICED_SID:04x}:" + b"\xc0\x21unspliced".hex()]


EGRESS_CHECK = """
import json, sys
sys.path.insert(0, {root!r})
from broker.dataplane.fastpath import linux_egress
e = linux_egress(({lns!r}, 1701), ({brk!r}, 1701))
print(json.dumps(None if e is None else [e.interface, e.dst_mac.hex(), list(e.src)]))
"""


@pytest.mark.integration
def test_linux_egress_refuses_when_an_ipsec_policy_exists() -> None:
    require_root()
    root = str(Path(__file__).resolve().parents[2])
    script = EGRESS_CHECK.format(root=root, lns=LNS_IP, brk=BRK_IP)
    with Netns("egb") as brk, Netns("egl") as lns:
        brk_if, lns_if = veth(brk, lns, f"{BRK_IP}/24", f"{LNS_IP}/24", prefix="eg")
        lns_mac = mac_of(lns, lns_if)
        brk.run(["ip", "neigh", "replace", LNS_IP, "lladdr", lns_mac, "dev", brk_if,
                 "nud", "permanent"])  # fmt: skip
        found = json.loads(brk.run([venv_python(), "-c", script]).stdout)
        assert found == [brk_if, lns_mac.replace(":", ""), [BRK_IP, 1701]]
        brk.run(["ip", "xfrm", "policy", "add", "src", f"{BRK_IP}/32", "dst", f"{LNS_IP}/32",
                 "dir", "out", "action", "block"])  # fmt: skip
        assert json.loads(brk.run([venv_python(), "-c", script]).stdout) is None
