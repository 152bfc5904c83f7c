from __future__ import annotations

import itertools
import json
import mmap
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.dataplane.rings import (
    TP_STATUS_AVAILABLE,
    TP_STATUS_SEND_REQUEST,
    TX_DATA,
    VNET_HDR_LEN,
    Reassembler,
    TxRing,
    assemble,
    l2tp_ring_filter,
    l2tp_socket_filter,
    vnet_linear,
)
from ops.lab.netns import Netns, venv_python
from tests.support import require_root

ADDR, PORT = "192.0.2.1", 1701


# -- a classic BPF interpreter for the instructions the filters use ---------------------------
def run_bpf(program: bytes, packet: bytes, pkttype: int = 0) -> int:
    insns = list(struct.iter_unpack("=HBBI", program))
    a = x = 0
    pc = 0

    def load(off: int, size: int) -> int | None:
        if off == (-0x1000 + 4) & 0xFFFFFFFF or off == -0x1000 + 4:
            return pkttype
        if off < 0 or off + size > len(packet):
            return None
        return int.from_bytes(packet[off : off + size], "big")

    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x06:  # RET K
            return k
        if cls in (0x00, 0x01):  # LD / LDX
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            mode = code & 0xE0
            koff = k - (1 << 32) if k & 0x80000000 else k
            if cls == 0x01:  # LDX B MSH: 4 * (P[k] & 0xf)
                v = load(koff, 1)
                if v is None:
                    return 0
                x = (v & 0x0F) * 4
                continue
            v = load(koff if mode == 0x20 else x + koff, size)
            if v is None:
                return 0
            a = v
            continue
        assert cls == 0x05
        op = code & 0xF0
        taken = {
            0x10: a == k,
            0x20: a > k,
            0x30: a >= k,
            0x40: bool(a & k),
        }[op]
        pc += jt if taken else jf


def eth_ip_udp(
    payload: bytes,
    *,
    dst: str = ADDR,
    dport: int = PORT,
    proto: int = 17,
    frag: int = 0x4000,
    ihl: int = 5,
    ethertype: int = 0x0800,
) -> bytes:
    options = b"\x01" * (4 * (ihl - 5))
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl, 0, 20 + len(options) + len(udp), 0, frag, 64, proto, 0,
        socket.inet_aton("198.51.100.2"), socket.inet_aton(dst),
    ) + options  # fmt: skip
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", ethertype) + ip + udp


def test_assembler_resolves_labels_and_refuses_long_jumps() -> None:
    prog = assemble([(0x15, "yes", 0, 7), (0x06, 0, 0, 0), "yes", (0x06, 0, 0, 9)])
    assert run_bpf(prog, b"") == 0  # A = 0, not 7
    assert next(struct.iter_unpack("=HBBI", prog)) == (0x15, 1, 0, 7)
    with pytest.raises(ValueError):
        assemble([(0x15, "far", 0, 0), *[(0x06, 0, 0, 0)] * 300, "far", (0x06, 0, 0, 0)])


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=0, max_size=1500),
    st.booleans(),
    st.sampled_from([ADDR, "192.0.2.9"]),
    st.sampled_from([PORT, 1702]),
    st.sampled_from([0x4000, 0x0000, 0x2000, 0x0010, 0x2010]),
    st.sampled_from([5, 6]),
    st.sampled_from([0, 1, 3]),
)
def test_ring_and_socket_filters_split_the_port(
    payload: bytes, t_bit: bool, dst: str, dport: int, frag: int, ihl: int, pkttype: int
) -> None:
    if payload:
        payload = bytes([payload[0] | 0x80 if t_bit else payload[0] & 0x7F]) + payload[1:]
    frame = eth_ip_udp(payload, dst=dst, dport=dport, frag=frag, ihl=ihl)
    ring = run_bpf(l2tp_ring_filter(ADDR, PORT), frame, pkttype) != 0
    udp = 14 + 4 * ihl
    sock = run_bpf(l2tp_socket_filter(), frame[udp:]) != 0  # the UDP socket sees UDP at 0
    data = bool(payload) and not payload[0] & 0x80
    ours = dst == ADDR and pkttype == 0
    if frag & 0x1FFF:  # a later fragment: no UDP header to look at
        expected_ring = ours
    elif frag & 0x2000:  # a first fragment: for our port
        expected_ring = ours and dport == PORT
    else:
        expected_ring = ours and dport == PORT and data
    assert ring == expected_ring
    # the socket filter sees whole (or reassembled) datagrams: it keeps exactly the rest
    assert sock is not data
    if ours and dport == PORT and not frag & 0x3FFF:
        assert ring != sock


def test_ring_filter_refuses_other_ethertypes_and_protocols() -> None:
    prog = l2tp_ring_filter(ADDR, PORT)
    assert run_bpf(prog, eth_ip_udp(b"\x00\x02")) != 0
    assert run_bpf(prog, eth_ip_udp(b"\x00\x02", ethertype=0x86DD)) == 0
    assert run_bpf(prog, eth_ip_udp(b"\x00\x02", proto=6)) == 0
    assert run_bpf(prog, eth_ip_udp(b"\x00\x02")[:40]) == 0  # truncated: loads fail


# -- TxRing on an anonymous mapping ---------------------------------------------------------
class FlushSocket:
    def __init__(self) -> None:
        self.flushes = 0
        self.fail = False

    def send(self, data: Any, flags: int = 0, /) -> int:
        if self.fail:
            raise OSError(105, "No buffer space available")
        self.flushes += 1
        return 0


def fake_tx(nr: int = 4, frame_size: int = 256, vnet: bool = False) -> TxRing:
    tx = TxRing.__new__(TxRing)
    tx.vnet = VNET_HDR_LEN if vnet else 0
    tx.sock = FlushSocket()
    tx.frame_size = frame_size
    tx.frame_nr = nr
    tx.data_max = frame_size - TX_DATA
    tx.index = 0
    tx.pending = 0
    tx.map = mmap.mmap(-1, frame_size * nr)
    return tx


def kernel_send(tx: TxRing) -> list[bytes]:
    """What the kernel does on ``send``: every SEND_REQUEST slot, in ring order from the oldest,
    goes out and comes back AVAILABLE."""
    out = []
    for i in range(tx.frame_nr):
        off = ((tx.index + i) % tx.frame_nr) * tx.frame_size
        status, length = struct.unpack_from("=II", tx.map, off)
        if status == TP_STATUS_SEND_REQUEST:
            out.append(bytes(tx.map[off + TX_DATA : off + TX_DATA + length]))
            struct.pack_into("=I", tx.map, off, TP_STATUS_AVAILABLE)
    return out


@pytest.mark.parametrize("vnet", [False, True])
def test_tx_ring_put_full_flush_and_wrap(vnet: bool) -> None:
    tx = fake_tx(nr=3, vnet=vnet)
    assert tx.put(b"a" * 10) and tx.put(b"b") and tx.put(b"c")
    assert not tx.put(b"d")  # every slot requested: full
    assert not tx.put(b"x" * (tx.data_max - tx.vnet + 1))
    assert tx.pending == 3
    tx.flush()
    assert tx.pending == 0 and tx.sock.flushes == 1
    sent = [b"a" * 10, b"b", b"c"]
    # with PACKET_VNET_HDR each frame follows a virtio_net_hdr naming it whole (hdr_len)
    head = [vnet_linear(len(f)) if vnet else b"" for f in sent]
    assert kernel_send(tx) == [h + f for h, f in zip(head, sent, strict=True)]
    assert tx.put(b"e") and tx.index == 1  # wrapped to slot 0, now at 1
    assert kernel_send(tx) == [(vnet_linear(1) if vnet else b"") + b"e"]
    assert vnet_linear(300) == b"\x00\x00" + (300).to_bytes(2, "little") + bytes(6)


@pytest.mark.integration
def test_filters_and_tx_ring_in_a_namespace() -> None:
    """The kernel agrees with the interpreter: the UDP socket filter sees the UDP header at 0,
    the ring filter the Ethernet header, and a TxRing sends what is put in it (loopback)."""
    require_root()
    with Netns("rgt") as ns:
        script = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + KERNEL_CHECK
        out = ns.run([venv_python(), "-c", script], timeout=30).stdout.splitlines()
    udp_seen, ring_seen = json.loads(out[-2]), json.loads(out[-1])
    assert sorted(map(str, udp_seen)) == sorted(map(str, ["", "80", "c80263"]))
    # ring: "00", data "00 02 64", 1472 octets (1500 with IP + UDP), 1473 and 3000 octets in
    # fragments (lo's MTU is 1500 here; reassembled), and the frames the TxRings sent
    # ("007478" plain, "007476" after a virtio_net_hdr)
    assert sorted(map(str, ring_seen)) == sorted(
        map(
            str,
            ["00", "000264", 1472, "reassembled 1473", "reassembled 3000", "007478", "007476"],
        )
    )


ROOT = Path(__file__).resolve().parents[2]
KERNEL_CHECK = r"""
import json, socket, struct, subprocess, time
from broker.dataplane.rings import (
    Reassembler, TxRing, attach_filter, l2tp_ring_filter, l2tp_socket_filter, open_packet_socket
)
subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1500"], check=True)
subprocess.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"], check=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("192.0.2.1", 1701))
u.setblocking(False)
attach_filter(u, l2tp_socket_filter())
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
r.setblocking(False)
attach_filter(r, l2tp_ring_filter("192.0.2.1", 1701))
while True:
    try:
        r.recv(70000)
    except BlockingIOError:
        break
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for m in [b"", b"\x00", b"\x80", b"\xc8\x02c", b"\x00\x02d", b"\x00" * 1472, b"\x00" * 1473,
          b"\x00" * 3000]:
    s.sendto(m, ("192.0.2.1", 1701))
s.sendto(b"\x00\x02other", ("192.0.2.1", 1702))
tx = TxRing(open_packet_socket("lo"))
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 31, 0, 0x4000, 64, 17, 0,
                 socket.inet_aton("192.0.2.1"), socket.inet_aton("192.0.2.1"))
csum = sum(struct.unpack("!10H", ip))
csum = (csum & 0xFFFF) + (csum >> 16)
ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
assert tx.put(b"\0" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", 40000, 1701, 11, 0) + b"\x00tx")
tx.flush()
# with virtio_net_hdr (hdr_len = the whole frame: copied, not attached as ring pages)
tv = TxRing(open_packet_socket("lo"), vnet_hdr=True)
assert tv.vnet == 10
assert tv.put(b"\0" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", 40000, 1701, 11, 0) + b"\x00tv")
tv.flush()

def collect(read, want):
    out, deadline = [], time.monotonic() + 10
    while len(out) < want and time.monotonic() < deadline:
        try:
            out.append(read())
        except BlockingIOError:
            time.sleep(0.01)
    time.sleep(0.05)
    while True:
        try:
            out.append(read())
        except BlockingIOError:
            return out

udp = collect(lambda: u.recvfrom(70000)[0], 3)
ring = collect(lambda: r.recv(70000), 9)
reasm = Reassembler()
out = []
for d in ring:
    if d[20] & 0x3F or d[21]:
        whole = reasm.add(d[14:])
        if whole is not None:
            out.append(f"reassembled {len(whole) - 8}")
    else:
        out.append(d[42:].hex() if len(d) < 60 else len(d) - 42)
print(json.dumps([d.hex() if len(d) < 9 else len(d) for d in udp]))
print(json.dumps(out))
"""


def fragments(payload: bytes, cuts: list[int], ident: int = 7) -> list[bytes]:
    """IPv4 fragments of ``payload`` cut at multiples of 8 (``cuts`` in 8-octet units)."""
    bounds = sorted({0, *(8 * c for c in cuts if 0 < 8 * c < len(payload)), len(payload)})
    out = []
    for lo, hi in itertools.pairwise(bounds):
        more = 0x2000 if hi < len(payload) else 0
        out.append(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + hi - lo,
                ident,
                more | lo // 8,
                64,
                17,
                0,
                socket.inet_aton("198.51.100.2"),
                socket.inet_aton(ADDR),
            )
            + payload[lo:hi]
        )
    return out


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.lists(st.integers(1, 50), max_size=6), st.randoms())
def test_reassembler_any_order(payload: bytes, cuts: list[int], rnd: Any) -> None:
    pieces = fragments(payload, cuts)
    rnd.shuffle(pieces)
    r = Reassembler()
    results = [r.add(p) for p in pieces]
    assert results[-1] == payload and all(x is None for x in results[:-1])
    assert r.pending == {} and r.total == {}


def test_reassembler_limit_gaps_and_junk() -> None:
    r = Reassembler(limit=2)
    a, b, c = (fragments(bytes(40), [2], ident=i) for i in (1, 2, 3))
    assert r.add(a[0]) is None and r.add(b[0]) is None and r.add(c[0]) is None
    assert len(r.pending) == 2  # a was evicted (the oldest) when c came
    assert r.add(c[1]) == bytes(40) and r.add(b[1]) == bytes(40)
    assert r.add(a[1]) is None and len(r.pending) == 1  # a starts over, never completes
    assert r.add(b"\x45" * 10) is None  # shorter than a header
    bad = bytearray(a[0])
    bad[2:4] = (999).to_bytes(2, "big")  # total length beyond the packet
    assert r.add(bytes(bad)) is None
