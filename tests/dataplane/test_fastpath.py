from __future__ import annotations

import mmap
import socket
import struct
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.dataplane.fastpath import (
    _TP2_HDR,
    TP_STATUS_COPY,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    DirectPath,
    Egress,
    FastSplice,
    PacketRing,
)
from broker.dataplane.rings import TX_DATA, VNET_HDR_LEN, TxRing, vnet_linear
from broker.dataplane.userspace import ETH_P_PPP_SES, UserspaceSplice
from broker.wire import MacAddress

MAC = MacAddress(bytes.fromhex("020000000001"))
LOCAL = bytes.fromhex("02000000aaaa")
LNS = ("198.51.100.2", 1701)
SID = 0x1234


class FakePacketSocket:
    """AF_PACKET stand-in: ``recv_into`` from a queue, ``send`` recorded."""

    def __init__(self, frames: list[bytes] | None = None) -> None:
        self.rx: deque[bytes] = deque(frames or [])
        self.sent: list[bytes] = []
        self.fail_send = False

    def recv_into(self, buffer: Any, nbytes: int = 0, /) -> int:
        if not self.rx:
            raise BlockingIOError
        data = self.rx.popleft()
        buffer[: len(data)] = data
        return len(data)

    def recv(self, size: int, /) -> bytes:
        if not self.rx:
            raise BlockingIOError
        return self.rx.popleft()

    def setsockopt(self, *args: Any) -> None:
        raise OSError(22, "Invalid argument")  # a kernel without PACKET_RX_RING, say

    def close(self) -> None:
        self.closed = True

    def send(self, data: Any, flags: int = 0, /) -> int:
        if self.fail_send:
            raise OSError(105, "No buffer space available")
        self.sent.append(bytes(data))
        return len(data)


class FakeUdpSocket:
    def __init__(self, datagrams: list[tuple[bytes, tuple[str, int]]] | None = None) -> None:
        self.rx: deque[tuple[bytes, tuple[str, int]]] = deque(datagrams or [])
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.fail_send = False

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, /) -> tuple[int, Any]:
        if not self.rx:
            raise BlockingIOError
        data, addr = self.rx.popleft()
        buffer[: len(data)] = data
        return len(data), addr

    def sendto(self, data: Any, address: Any, /) -> int:
        if self.fail_send:
            raise BlockingIOError
        self.sent.append((bytes(data), address))
        return len(data)


def attach(sp: Any, sequencing: bool = False, call_id: int = 7, sid: int = SID) -> None:
    sp.attach(
        call_id=call_id, interface="eth1", mac=MAC, pppoe_session_id=sid, tunnel_id=11,
        session_id=22 + call_id - 7, peer_tunnel_id=0xAAAA, peer_session_id=0xBBBB, peer=LNS,
        sequencing=sequencing,
    )  # fmt: skip


def make(sequencing: bool = False) -> tuple[FastSplice, list[Any], list[Any]]:
    to_lns: list[tuple[bytes, tuple[str, int]]] = []
    to_cpe: list[tuple[str, bytes, int, bytes]] = []
    sp = FastSplice(
        lambda d, p: to_lns.append((d, p)), lambda i, m, e, f: to_cpe.append((i, m, e, f))
    )
    attach(sp, sequencing)
    return sp, to_lns, to_cpe


def session_frame(ppp: bytes, dst: bytes = LOCAL, src: bytes = MAC, sid: int = SID) -> bytes:
    return dst + src + b"\x88\x64\x11\x00" + struct.pack("!HH", sid, len(ppp)) + ppp


def data_msg(ppp: bytes, tunnel: int = 11, session: int = 22, ac: bool = True) -> bytes:
    return struct.pack("!HHH", 0x0002, tunnel, session) + (b"\xff\x03" if ac else b"") + ppp


# -- the UserspaceSplice API, checked against UserspaceSplice itself ---------------------------
frames = st.lists(
    st.tuples(
        st.sampled_from(["up", "down", "down-noac", "down-lso", "junk"]),
        st.binary(min_size=0, max_size=80),
        st.sampled_from([SID, SID + 1]),
    ),
    max_size=20,
)


@settings(max_examples=150, deadline=None)
@given(frames, st.booleans())
def test_same_output_and_counters_as_userspace_splice(ops: list[Any], sequencing: bool) -> None:
    outs: list[tuple[list[Any], list[Any], list[bool]]] = []
    splices: list[Any] = []
    for kind in (UserspaceSplice, FastSplice):
        to_lns: list[Any] = []
        to_cpe: list[Any] = []
        sp: Any = kind(
            lambda d, p, o=to_lns: o.append((bytes(d), p)),
            lambda i, m, e, f, o=to_cpe: o.append((i, bytes(m), e, bytes(f))),
        )
        attach(sp, sequencing)
        results = []
        for op, payload, sid in ops:
            if op == "up":
                results.append(sp.upstream("eth1", MAC, sid, payload))
            elif op == "down":
                results.append(sp.downstream(data_msg(payload, session=22 + sid - SID)))
            elif op == "down-noac":
                results.append(sp.downstream(data_msg(payload, ac=False)))
            elif op == "down-lso":
                body = b"\x00\x0b\x00\x16" + b"\x00\x01\x00\x00" + b"\x00\x01z" + payload
                results.append(sp.downstream(struct.pack("!HH", 0x4A02, 4 + len(body)) + body))
            else:
                results.append(sp.downstream(payload))
        outs.append((to_lns, to_cpe, results))
        splices.append(sp)
    assert outs[0] == outs[1]
    assert splices[0].counters_for(7) == splices[1].counters_for(7)
    for name in ("unknown_downstream", "malformed_downstream"):
        assert splices[0].counters[name] == splices[1].counters[name]


def test_detach_owns_len_and_reattach() -> None:
    sp, _, _ = make()
    assert sp.owns("eth1", MAC, SID) and len(sp) == 1
    sp.upstream("eth1", MAC, SID, b"\x00\x21abc")
    assert sp.detach(7) == {
        "input_octets": 5,
        "input_packets": 1,
        "output_octets": 0,
        "output_packets": 0,
    }
    assert sp.detach(7) == {} and len(sp) == 0
    assert not sp.owns("eth1", MAC, SID) and not sp.owns("eth9", MAC, SID)
    assert not sp.upstream("eth1", MAC, SID, b"\x00\x21")
    assert sp.counters_for(7) is None
    attach(sp)
    attach(sp)  # attaching the same call again replaces it
    assert len(sp) == 1 and sp.counters_for(7) == dict.fromkeys(
        ("input_octets", "input_packets", "output_octets", "output_packets"), 0
    )


# -- read_ethernet (recv_into loop) -----------------------------------------------------------
def bound(sequencing: bool = False) -> tuple[FastSplice, FakePacketSocket, FakeUdpSocket]:
    sp, _, _ = make(sequencing)
    eth, udp = FakePacketSocket(), FakeUdpSocket()
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_l2tp(udp)
    return sp, eth, udp


def test_read_ethernet_splices_in_place_and_falls_back() -> None:
    sp, eth, udp = bound()
    ppp = b"\xc0\x21\x09\x01\x00\x08abcd"
    eth.rx.extend(
        [
            session_frame(ppp) + b"\x00" * 20,  # Ethernet padding after the PPPoE payload
            session_frame(ppp, dst=b"\x02" * 6),  # not for us
            session_frame(ppp, sid=0x9999),  # not spliced (yet): the call flow's
            session_frame(ppp)[:-3],  # PPPoE LENGTH beyond the frame
            b"\x00" * 10,  # runt
        ]
    )
    fallback: list[bytes] = []
    assert sp.read_ethernet("eth1", eth, fallback.append) == 5
    assert udp.sent == [(bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + ppp, LNS)]
    assert fallback == [session_frame(ppp, dst=b"\x02" * 6), session_frame(ppp, sid=0x9999),
                        session_frame(ppp)[:-3], b"\x00" * 10]  # fmt: skip
    assert sp.counters_for(7)["input_packets"] == 1  # type: ignore[index]
    assert sp.counters["upstream_fallback"] == 4


def test_read_ethernet_budget_sequencing_and_send_errors() -> None:
    sp, eth, udp = bound(sequencing=True)
    eth.rx.extend(session_frame(b"\x00\x21" + bytes([i])) for i in range(5))
    assert sp.read_ethernet("eth1", eth, None, budget=3) == 3
    assert sp.read_ethernet("eth1", eth, None) == 2
    assert [struct.unpack_from("!HHHHH", d) for d, _ in udp.sent] == [
        (0x0802, 0xAAAA, 0xBBBB, ns, 0) for ns in range(5)
    ]
    assert all(d[10:12] == b"\xff\x03" and d[12:14] == b"\x00\x21" for d, _ in udp.sent)
    udp.fail_send = True
    eth.rx.append(session_frame(b"\x00\x21x"))
    assert sp.read_ethernet("eth1", eth) == 1
    assert sp.counters["l2tp_tx_errors"] == 1


def test_read_ethernet_without_l2tp_socket_uses_injected_writer() -> None:
    sp, to_lns, _ = make()
    eth = FakePacketSocket([session_frame(b"\x00\x21hi")])
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.read_ethernet("eth1", eth)
    assert to_lns == [(bytes.fromhex("0002aaaabbbb") + b"\xff\x03\x00\x21hi", LNS)]


def test_read_ethernet_callback_errors_are_counted() -> None:
    sp, eth, _ = bound()
    eth.rx.append(session_frame(b"x", sid=1))

    def boom(frame: bytes) -> None:
        raise ValueError(frame)

    assert sp.read_ethernet("eth1", eth, boom) == 1
    assert sp.counters["callback_errors"] == 1


# -- read_l2tp (recvfrom_into loop) -----------------------------------------------------------
def test_read_l2tp_data_control_unknown_and_header_bits() -> None:
    sp, eth, _ = bound()
    ppp = b"\x00\x21PAYLOAD"
    body = b"\x00\x0b\x00\x16" + b"\x00\x01\x00\x00" + b"\x00\x02zz" + b"\xff\x03" + ppp
    control = bytes.fromhex("c80200140000000000000000") + b"\x00" * 8
    udp = FakeUdpSocket(
        [
            (data_msg(ppp), LNS),
            (data_msg(ppp, ac=False), LNS),
            (struct.pack("!HH", 0x4A02, 4 + len(body)) + body, LNS),
            (control, LNS),
            (b"", LNS),
            (data_msg(ppp, session=99), LNS),
            (bytes.fromhex("0003000b0016"), LNS),
        ]
    )
    controls: list[tuple[bytes, Any]] = []
    assert sp.read_l2tp(udp, lambda d, a: controls.append((d, a))) == 7
    expected = MAC + LOCAL + b"\x88\x64\x11\x00" + struct.pack("!HH", SID, len(ppp)) + ppp
    assert eth.sent == [expected] * 3
    assert controls == [(control, LNS), (b"", LNS)]
    assert sp.counters["unknown_downstream"] == 1
    assert sp.counters["malformed_downstream"] == 1
    assert sp.counters["control_forwarded"] == 2
    assert sp.counters_for(7)["output_octets"] == 3 * len(ppp)  # type: ignore[index]


def test_read_l2tp_before_mac_known_uses_injected_writer_and_errors_counted() -> None:
    sp, _, to_cpe = make()
    udp = FakeUdpSocket([(data_msg(b"\x00\x21x"), LNS)])
    sp.read_l2tp(udp)
    assert to_cpe == [("eth1", MAC, ETH_P_PPP_SES, bytes.fromhex("110012340003") + b"\x00\x21x")]
    eth = FakePacketSocket()
    eth.fail_send = True
    sp.bind_ethernet("eth1", eth, LOCAL)  # fills in the prefix of existing entries
    udp.rx.append((data_msg(b"\x00\x21x"), LNS))
    sp.read_l2tp(udp)
    assert sp.counters["eth_tx_errors"] == 1


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=1500), st.booleans())
def test_round_trip_through_socket_loops(ppp: bytes, with_ac: bool) -> None:
    sp, eth, udp = bound()
    eth.rx.append(session_frame(ppp))
    sp.read_ethernet("eth1", eth)
    up = udp.sent[-1][0]
    assert up == bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + ppp
    if not with_ac and ppp[:2] == b"\xff\x03":
        return  # indistinguishable from a frame that carries FF 03: stripped, as intended
    sp.read_l2tp(FakeUdpSocket([(data_msg(ppp, ac=with_ac), LNS)]))
    assert eth.sent[-1] == session_frame(ppp, dst=MAC, src=LOCAL)


# -- read_ring (TPACKET_V2 slots in an anonymous mapping) -------------------------------------
def fake_ring(frames: list[tuple[bytes, int]], frame_size: int = 2048, nr: int = 4) -> PacketRing:
    ring = PacketRing.__new__(PacketRing)
    ring.sock = FakePacketSocket()
    ring.frame_size = frame_size
    ring.frame_nr = nr
    ring.index = 0
    ring.map = mmap.mmap(-1, frame_size * nr)
    ring.view = memoryview(ring.map)
    for i, (frame, status) in enumerate(frames):
        off = i * frame_size
        mac = 130  # where the kernel puts it with TPACKET_V2 and RING_RESERVE
        _TP2_HDR.pack_into(ring.map, off, status, len(frame), len(frame), mac)
        ring.map[off + mac : off + mac + len(frame)] = frame
    return ring


def test_read_ring_walks_slots_and_hands_them_back() -> None:
    sp, _, udp = bound()
    ppp = b"\x00\x21ring"
    big = session_frame(b"\x00\x21" + b"B" * 50)
    ring = fake_ring(
        [
            (session_frame(ppp), TP_STATUS_USER),
            (session_frame(ppp, sid=0x4444), TP_STATUS_USER),
            (big[:40], TP_STATUS_USER | TP_STATUS_COPY),  # truncated: full copy on the queue
        ]
    )
    ring.sock.rx.append(big)
    fallback: list[bytes] = []
    assert sp.read_ring("eth1", ring, fallback.append) == 3
    assert udp.sent == [(bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + ppp, LNS)]
    assert fallback == [session_frame(ppp, sid=0x4444), big]
    assert sp.counters["truncated_frames"] == 1
    assert ring.index == 3
    for i in range(3):
        assert struct.unpack_from("=I", ring.map, i * ring.frame_size)[0] == TP_STATUS_KERNEL
    # the ring wraps: slot 3, then slot 0 again
    for slot, payload in ((3, b"\x00\x21c"), (0, b"\x00\x21d")):
        off = slot * ring.frame_size
        frame = session_frame(payload)
        _TP2_HDR.pack_into(ring.map, off, TP_STATUS_USER, len(frame), len(frame), 130)
        ring.map[off + 130 : off + 130 + len(frame)] = frame
    assert sp.read_ring("eth1", ring) == 2
    assert ring.index == 1
    assert [d[8:] for d, _ in udp.sent[1:]] == [b"\x00\x21c", b"\x00\x21d"]


def test_read_ring_sequencing_budget_and_malformed_length() -> None:
    sp, _, udp = bound(sequencing=True)
    ring = fake_ring(
        [
            (session_frame(b"\x00\x21a"), TP_STATUS_USER),
            (session_frame(b"\x00\x21b")[:-1], TP_STATUS_USER),  # LENGTH says one more
            (session_frame(b"\x00\x21c"), TP_STATUS_USER),
        ]
    )
    fallback: list[bytes] = []
    assert sp.read_ring("eth1", ring, fallback.append, budget=2) == 2
    assert sp.read_ring("eth1", ring, fallback.append) == 1
    assert [struct.unpack_from("!HHHHH", d)[3] for d, _ in udp.sent] == [0, 1]
    assert [d[10:] for d, _ in udp.sent] == [b"\xff\x03\x00\x21a", b"\xff\x03\x00\x21c"]
    assert fallback == [session_frame(b"\x00\x21b")[:-1]]


# -- install / uninstall on adapter look-alikes -----------------------------------------------
class FakeReader:
    def __init__(self, interface: str, sock: FakePacketSocket) -> None:
        self.interface = interface
        self.sock = sock

    def doRead(self) -> str:  # Twisted's name
        return "original"


class FakeRawPort:
    def __init__(self) -> None:
        self.ses = FakeReader("eth1", FakePacketSocket())
        self.disc = FakeReader("eth1", FakePacketSocket())
        self._readers = {("eth1", 0x8864): self.ses, ("eth1", 0x8863): self.disc}
        self.local_mac = {"eth1": MacAddress(LOCAL)}
        self.frames: list[bytes] = []
        self.flushed = 0
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _frame(self, reader: FakeReader, frame: bytes) -> None:
        self.frames.append(frame)

    def flush(self) -> None:
        self.flushed += 1


class FakePort:
    def __init__(self) -> None:
        self.socket = FakeUdpSocket()
        self.socket.getsockname = lambda: ("198.51.100.1", 1701)  # type: ignore[attr-defined]

    def doRead(self) -> str:  # Twisted's name
        return "original"


class FakeAdapter:
    def __init__(self) -> None:
        self.listening = FakePort()
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.noted: list[tuple[int, float]] = []
        self.reactor = SimpleNamespace(seconds=lambda: 42.0)

    def _note_data(self, tunnel_id: int, now: float) -> None:
        self.noted.append((tunnel_id, now))

    def datagramReceived(self, data: bytes, addr: tuple[str, int]) -> None:  # Twisted's name
        self.received.append((data, addr))


def test_install_hooks_session_socket_and_udp_port_then_uninstall() -> None:
    sp, _, _ = make()
    raw, adapter = FakeRawPort(), FakeAdapter()
    sp.install(raw, adapter, ring=False)
    ppp = b"\x00\x21up"
    raw.ses.sock.rx.extend([session_frame(ppp), session_frame(ppp, sid=0x7777)])
    raw.ses.doRead()
    assert adapter.listening.socket.sent == [
        (bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + ppp, LNS)
    ]
    assert raw.frames == [session_frame(ppp, sid=0x7777)] and raw.flushed == 1
    assert raw.counts == {"rx_frames": 1}
    assert raw.disc.doRead() == "original"  # discovery stays with the port
    control = bytes.fromhex("c802000c0000000000000000")
    adapter.listening.socket.rx.extend([(control, LNS), (data_msg(b"\x00\x21dn"), LNS)])
    adapter.listening.doRead()
    assert adapter.received == [(control, LNS)]
    assert adapter.noted == [(11, 42.0)]  # data postpones the tunnel's HELLO (RFC 2661 5.5)
    assert raw.ses.sock.sent == [session_frame(b"\x00\x21dn", dst=MAC, src=LOCAL)]
    sp.uninstall()
    assert raw.ses.doRead() == "original" and adapter.listening.doRead() == "original"


def test_install_falls_back_to_recv_when_the_ring_is_refused() -> None:
    sp, _, _ = make()
    raw = FakeRawPort()
    sp.install(raw, None)  # the fake socket refuses the ring: recv_into instead
    raw.ses.sock.rx.append(session_frame(b"\x00\x21x", sid=0x7777))
    raw.ses.doRead()
    assert raw.frames == [session_frame(b"\x00\x21x", sid=0x7777)]
    sp.uninstall()


# -- direct egress (DirectPath) ---------------------------------------------------------------
def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


@settings(max_examples=100, deadline=None)
@given(
    st.binary(min_size=6, max_size=1400),
    st.tuples(st.integers(1, 223), st.integers(0, 255), st.integers(0, 255), st.integers(1, 254)),
    st.integers(1, 65535),
)
def test_direct_path_headers_and_offloaded_udp_checksum(
    datagram: bytes, dst_ip: tuple[int, ...], dst_port: int
) -> None:
    dst = ".".join(map(str, dst_ip))
    egress = Egress("eth2", b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x03",
                    ("198.51.100.1", 1701), (dst, dst_port))  # fmt: skip
    sock = FakePacketSocket()
    path = DirectPath(egress, sock)
    m = bytearray(64) + bytearray(datagram)
    path.send(m, memoryview(m), 64, len(m))
    (out,) = sock.sent
    flags, gso, hdr_len, gso_size, csum_start, csum_offset = struct.unpack_from("<BBHHHH", out)
    # hdr_len: the whole frame (the kernel copies it into the linear area, no page fragments)
    assert (flags, gso, hdr_len, gso_size, csum_start, csum_offset) == (
        1, 0, len(out) - 10, 0, 34, 6,
    )  # fmt: skip
    frame = out[10:]
    assert frame[:14] == egress.dst_mac + egress.src_mac + b"\x08\x00"
    ip, udp = frame[14:34], frame[34:]
    assert ones_sum(ip) == 0xFFFF  # header checksum valid
    ver, tos, total, ident, frag, ttl, proto, _, src_b, dst_b = struct.unpack("!BBHHHBBH4s4s", ip)
    assert (ver, tos, total, ident, frag, ttl, proto) == (
        0x45, 0, 28 + len(datagram), 0, 0x4000, 64, 17,
    )  # fmt: skip
    assert (socket.inet_ntoa(src_b), socket.inet_ntoa(dst_b)) == ("198.51.100.1", dst)
    sport, dport, ulen, field = struct.unpack_from("!HHHH", udp)
    assert (sport, dport, ulen, udp[8:]) == (1701, dst_port, 8 + len(datagram), datagram)
    # What the device (or skb_checksum_help) does with NEEDS_CSUM: sum from csum_start with the
    # pseudo-header sum in the field, fold, complement. It must equal the RFC 768 checksum.
    pseudo = src_b + dst_b + struct.pack("!BBH", 0, 17, ulen)
    expected = 0xFFFF - ones_sum(pseudo + udp[:6] + b"\x00\x00" + udp[8:])
    assert 0xFFFF - ones_sum(udp) == expected
    assert field == ones_sum(pseudo)


def test_direct_path_used_by_the_ring_reader_within_mtu_only() -> None:
    sp, _, udp = bound()
    sock = FakePacketSocket()
    egress = Egress("eth2", b"\x02" * 6, b"\x04" * 6, ("198.51.100.1", 1701), LNS, mtu=100)
    sp.set_egress(egress, sock)
    attach(sp, call_id=8, sid=0x2222)  # attached after set_egress: picks the path up too
    small, big = b"\x00\x21" + b"s" * 10, b"\x00\x21" + b"b" * 80
    ring = fake_ring(
        [
            (session_frame(small), TP_STATUS_USER),
            (session_frame(big), TP_STATUS_USER),
            (session_frame(small, sid=0x2222), TP_STATUS_USER),
        ],
        nr=4,
    )
    assert sp.read_ring("eth1", ring) == 3
    assert [s[10 + 42 :] for s in sock.sent] == [
        bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + small,
        bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + small,
    ]
    assert udp.sent == [(bytes.fromhex("0002aaaabbbb") + b"\xff\x03" + big, LNS)]  # > MTU
    sp.set_egress(None, peer=LNS)
    frame = session_frame(small)  # slot 0 comes round again (the old one was rewritten)
    _TP2_HDR.pack_into(ring.map, 0, TP_STATUS_USER, len(frame), len(frame), 130)
    ring.map[130 : 130 + len(frame)] = frame
    sock.fail_send = True
    sp.set_egress(egress, sock)
    ring.index = 0
    assert sp.read_ring("eth1", ring) == 1
    assert sp.counters["direct_tx_errors"] == 1


# -- transmit rings and the L2TP data receive ring (fake mappings) -----------------------------
class TxKernel(FakePacketSocket):
    """The kernel's side of a transmit ring: on ``send``, every requested slot goes out (when
    ``complete``; else the frames stay in flight, as with a full send buffer)."""

    def __init__(self, complete: bool) -> None:
        super().__init__()
        self.complete = complete
        self.out: list[bytes] = []
        self.tx: TxRing | None = None

    def send(self, data: Any, flags: int = 0, /) -> int:
        n = super().send(data, flags)
        if self.complete and self.tx is not None:
            self.out += take_requested(self.tx)
        return n


def fake_tx(
    nr: int = 64, frame_size: int = 2048, complete: bool = True, vnet: bool = False
) -> TxRing:
    """A transmit ring on anonymous memory; with ``vnet`` its frames carry a virtio_net_hdr
    (``kernel_send`` checks and strips it)."""
    tx = TxRing.__new__(TxRing)
    tx.vnet = VNET_HDR_LEN if vnet else 0
    tx.sock = TxKernel(complete)
    tx.sock.tx = tx
    tx.frame_size = frame_size
    tx.frame_nr = nr
    tx.data_max = frame_size - TX_DATA
    tx.index = 0
    tx.pending = 0
    tx.map = mmap.mmap(-1, frame_size * nr)
    return tx


def kernel_send(tx: TxRing) -> list[bytes]:
    """Every frame the ring sent (at flushes) or still has requested, in order."""
    sock = tx.sock
    assert isinstance(sock, TxKernel)
    out, sock.out = sock.out + take_requested(tx), []
    if tx.vnet:
        for i, frame in enumerate(out):
            assert frame[: tx.vnet] == vnet_linear(len(frame) - tx.vnet)
            out[i] = frame[tx.vnet :]
    return out


def take_requested(tx: TxRing) -> list[bytes]:
    """Every requested slot, oldest first, sent and released."""
    out = []
    for i in range(tx.frame_nr):
        off = ((tx.index + i) % tx.frame_nr) * tx.frame_size
        status, length = struct.unpack_from("=II", tx.map, off)
        if status == 1:  # TP_STATUS_SEND_REQUEST
            out.append(bytes(tx.map[off + TX_DATA : off + TX_DATA + length]))
            struct.pack_into("=I", tx.map, off, 0)
    return out


def as_send_eth(frame: bytes) -> tuple[str, bytes, int, bytes]:
    """An Ethernet frame from a ring in the shape of the injected ``send_ethernet`` call."""
    assert frame[6:12] == LOCAL
    return ("eth1", frame[:6], struct.unpack_from("!H", frame, 12)[0], frame[14:])


def ip_frame(
    datagram: bytes, pad_to: int = 60, src: tuple[str, int] = LNS, options: bytes = b""
) -> bytes:
    """Ethernet + IPv4 (+ ``options``, a multiple of 4 octets) + UDP around an L2TP
    datagram, padded like a short Ethernet frame."""
    udp = struct.pack("!HHHH", src[1], 1701, 8 + len(datagram), 0) + datagram
    ip = struct.pack("!BBHHHBBH4s4s", 0x45 + len(options) // 4, 0, 20 + len(options) + len(udp),
                     0, 0x4000, 64, 17, 0, socket.inet_aton(src[0]),
                     socket.inet_aton("198.51.100.1"))  # fmt: skip
    frame = LOCAL + b"\x04" * 6 + b"\x08\x00" + ip + options + udp
    return frame + b"\x00" * max(0, pad_to - len(frame))


def downstream_op(op: str, payload: bytes, sid: int) -> bytes:
    if op == "down":
        return data_msg(payload, session=22 + sid - SID)
    if op == "down-noac":
        return data_msg(payload, ac=False)
    if op == "down-lso":
        body = b"\x00\x0b\x00\x16" + b"\x00\x01\x00\x00" + b"\x00\x01z" + payload
        return struct.pack("!HH", 0x4A02, 4 + len(body)) + body
    return bytes([payload[0] & 0x7F]) + payload[1:] if payload else b"\x00"  # T clear


down_ops = st.lists(
    st.tuples(
        st.sampled_from(["down", "down-noac", "down-lso", "junk"]),
        st.binary(min_size=0, max_size=80),
        st.sampled_from([SID, SID + 1]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    down_ops,
    st.sampled_from(["downstream", "read_l2tp", "l2tp_ring", "l2tp_ring_addr"]),
    st.sampled_from([b"", b"\x01\x01\x01\x00"]),
    st.booleans(),
)
def test_tx_ring_and_l2tp_ring_match_userspace_splice(
    ops: list[Any], path: str, options: bytes, vnet: bool
) -> None:
    """Every path, the L2TP ring with and without our address known (the inline path needs
    it) and with IP options (never inline), into a transmit ring with or without
    virtio_net_hdr, sends and counts what UserspaceSplice does."""
    if path == "read_l2tp":  # shorter datagrams go to the control path there (by design)
        ops = [op for op in ops if len(downstream_op(*op)) >= 6]
    ref_out: list[Any] = []
    ref = UserspaceSplice(lambda d, p: None, lambda i, m, e, f: ref_out.append((i, m, e, f)))
    attach(ref)
    ref_results = [ref.downstream(downstream_op(*op)) for op in ops]

    sp, _, _ = make()
    eth, udp, tx = FakePacketSocket(), FakeUdpSocket(), fake_tx(vnet=vnet)
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    assert sp.features["pppoe_tx_ring"]
    noted: list[set[int]] = []
    if path == "downstream":
        for op in ops:
            sp.downstream(downstream_op(*op))
    elif path == "read_l2tp":
        udp.rx.extend((downstream_op(*op), LNS) for op in ops)
        assert sp.read_l2tp(udp, None, None, lambda t: noted.append(set(t))) == len(ops)
    else:
        if path == "l2tp_ring_addr":
            sp.set_l2tp_address("198.51.100.1")
        frames = [ip_frame(downstream_op(*op), options=options) for op in ops]
        ring = fake_ring([(f, TP_STATUS_USER) for f in frames], nr=16)
        assert sp.read_l2tp_ring(ring, lambda t: noted.append(set(t))) == len(ops)
        assert ring.index == len(ops) % 16
    assert [as_send_eth(f) for f in kernel_send(tx)] == ref_out
    assert eth.sent == [] and tx.pending == 0
    assert sp.counters_for(7) == ref.counters_for(7)
    for name in ("unknown_downstream", "malformed_downstream"):
        assert sp.counters[name] == ref.counters[name]
    if path != "downstream":
        common = data_msg(b"")  # 00 02 tunnel session FF 03: the one-lookup header
        fast = any(
            r and downstream_op(*op)[:8] == common for r, op in zip(ref_results, ops, strict=True)
        )
        assert noted == ([{11}] if fast else [])


def test_full_tx_ring_falls_back_to_send_in_order() -> None:
    sp, _, _ = make()
    eth, tx = FakePacketSocket(), fake_tx(nr=2, complete=False)
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    assert sp.downstream(data_msg(b"\x00\x21a")) and sp.downstream(data_msg(b"\x00\x21b"))
    assert tx.sock.sent == [b"", b""]  # one flush per call (the one-frame API)
    assert tx.pending == 1  # the kernel kept them: flushed again next time
    assert sp.downstream(data_msg(b"\x00\x21c"))  # both slots still in flight: full
    assert sp.counters["tx_ring_full"] == 1
    assert [f[20:] for f in kernel_send(tx)] == [b"\x00\x21a", b"\x00\x21b"]
    assert eth.sent == [session_frame(b"\x00\x21c", dst=MAC, src=LOCAL)]
    tx.sock.fail_send = True
    assert sp.downstream(data_msg(b"\x00\x21d"))
    assert sp.counters["tx_flush_errors"] == 1
    sp.bind_ethernet_tx("eth1", None)
    assert not sp.features["pppoe_tx_ring"]
    assert sp.downstream(data_msg(b"\x00\x21e"))
    assert eth.sent[-1] == session_frame(b"\x00\x21e", dst=MAC, src=LOCAL)


def test_l2tp_ring_truncated_and_missing_copied_frames_are_counted() -> None:
    sp, _, _ = make()
    eth, tx = FakePacketSocket(), fake_tx()
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    good = ip_frame(data_msg(b"\x00\x21ok"))
    ring = fake_ring(
        [
            (good[:-1] if len(good) > 60 else ip_frame(data_msg(b"\x00\x21" + b"x" * 40))[:60],
             TP_STATUS_USER),  # UDP length beyond the slot's snap length
            (good, TP_STATUS_USER | TP_STATUS_COPY),
            (good, TP_STATUS_USER),
        ]
    )  # fmt: skip
    assert sp.read_l2tp_ring(ring) == 3
    assert sp.counters["truncated_frames"] == 1
    assert sp.counters["read_errors"] == 1  # COPY, but nothing on the socket queue
    assert [f[20:] for f in kernel_send(tx)] == [b"\x00\x21ok"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=2, max_size=90), min_size=1, max_size=6), st.booleans())
def test_direct_tx_ring_writes_what_direct_send_writes(payloads: list[bytes], seq: bool) -> None:
    egress = Egress("eth2", b"\x02" * 6, b"\x04" * 6, ("198.51.100.1", 1701), LNS, mtu=120)
    outs = []
    for use_ring in (False, True):
        sp, _, udp = bound(sequencing=seq)
        sock = FakePacketSocket()
        tx = fake_tx() if use_ring else None
        sp.set_egress(egress, sock)
        if tx is not None:
            sp._direct[LNS].set_tx(tx)
            sp._tx_rings.append(tx)
            assert sp.features["direct_tx_ring"]
        ring = fake_ring([(session_frame(p), TP_STATUS_USER) for p in payloads], nr=8)
        assert sp.read_ring("eth1", ring) == len(payloads)
        sent = sock.sent if tx is None else kernel_send(tx)
        outs.append((sent, udp.sent, sp.counters_for(7)))
    assert outs[0] == outs[1]


def ip_fragments(datagram: bytes, at: int, dport: int = 1701) -> list[bytes]:
    """Two Ethernet frames carrying the UDP datagram around ``datagram`` in IPv4 fragments,
    cut ``at`` octets (a multiple of 8) into the UDP datagram."""
    udp = struct.pack("!HHHH", 1701, dport, 8 + len(datagram), 0) + datagram
    out = []
    for lo, hi, more in ((0, at, 0x2000), (at, len(udp), 0)):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + hi - lo, 99, more | lo // 8, 64, 17, 0,
                         socket.inet_aton(LNS[0]), socket.inet_aton("198.51.100.1"))  # fmt: skip
        out.append(LOCAL + b"\x04" * 6 + b"\x08\x00" + ip + udp[lo:hi])
    return out


def test_l2tp_ring_reassembles_fragments_and_reads_long_frames_from_the_queue() -> None:
    sp, _, _ = make()
    eth, tx = FakePacketSocket(), fake_tx()
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    sp._l2tp_port = 1701
    big = b"\x00\x21" + bytes(range(256)) * 5
    long_msg = data_msg(b"\x00\x21long")
    frames = [
        *ip_fragments(data_msg(big), 504),
        *ip_fragments(bytes.fromhex("c802") + bytes(40), 16),  # control: the socket has it
        *ip_fragments(data_msg(b"\x00\x21other port"), 16, dport=1812),
    ]
    ring = fake_ring(
        [(f, TP_STATUS_USER) for f in frames] + [(ip_frame(long_msg)[:50], TP_STATUS_COPY | 1)],
        nr=8,
    )
    ring.sock.rx.append(ip_frame(long_msg))  # the whole frame, queued by the kernel
    assert sp.read_l2tp_ring(ring) == 7
    assert [f[20:] for f in kernel_send(tx)] == [big, b"\x00\x21long"]
    assert sp.counters["fragments"] == 6 and sp.counters["reassembled"] == 3
    assert sp.counters_for(7)["output_packets"] == 2


def test_install_direct_finds_a_path_per_lns_and_retries_later(monkeypatch: Any) -> None:
    import broker.dataplane.fastpath as fp

    socks: list[FakePacketSocket] = []

    def open_sock(interface: str) -> FakePacketSocket:
        socks.append(FakePacketSocket())
        return socks[-1]

    monkeypatch.setattr(fp, "open_egress_socket", open_sock)
    clock = [1000.0]
    monkeypatch.setattr(fp.time, "monotonic", lambda: clock[0])
    asked: list[tuple[Any, Any]] = []
    other = ("198.51.100.3", 1701)

    def lookup(peer: tuple[str, int], local: tuple[str, int]) -> Egress | None:
        asked.append((peer, local))
        if peer == other and clock[0] < 2000:
            return None  # no resolved neighbour yet
        return Egress("eth2", b"\x02" * 6, b"\x04" * 6, local, peer)

    sp, _, _ = make()
    sp.egress_lookup = lookup
    sp.install(FakeRawPort(), FakeAdapter(), ring=False, tx_ring=False, direct=True)
    assert asked == [(LNS, ("198.51.100.1", 1701))]  # the call attached before install
    assert sp.features["direct_egress"] and len(socks) == 1
    attach(sp, call_id=8, sid=0x2222)  # same LNS: no new look-up
    assert len(asked) == 1 and sp._by_call[8].direct is sp._by_call[7].direct
    sp.attach(
        call_id=9, interface="eth1", mac=MAC, pppoe_session_id=0x3333, tunnel_id=12,
        session_id=30, peer_tunnel_id=1, peer_session_id=2, peer=other, sequencing=False,
    )  # fmt: skip
    assert len(asked) == 2 and sp._by_call[9].direct is None
    sp.detach(9)
    sp.attach(
        call_id=9, interface="eth1", mac=MAC, pppoe_session_id=0x3333, tunnel_id=12,
        session_id=30, peer_tunnel_id=1, peer_session_id=2, peer=other, sequencing=False,
    )  # fmt: skip
    assert len(asked) == 2  # asked again only a minute later
    clock[0] = 2100.0
    sp.detach(9)
    sp.attach(
        call_id=9, interface="eth1", mac=MAC, pppoe_session_id=0x3333, tunnel_id=12,
        session_id=30, peer_tunnel_id=1, peer_session_id=2, peer=other, sequencing=False,
    )  # fmt: skip
    assert len(asked) == 3 and sp._by_call[9].direct is not None
    sp.uninstall()
    assert not sp.auto_direct and not sp.features["direct_egress"]


def test_install_direct_lookup_errors_are_counted() -> None:
    sp, _, _ = make()

    def broken(peer: Any, local: Any) -> Egress | None:
        raise RuntimeError("bug")

    sp.egress_lookup = broken
    sp.install(None, FakeAdapter(), direct=True, l2tp_ring=False)
    assert sp.counters["callback_errors"] == 1 and not sp.features["direct_egress"]


@pytest.mark.parametrize("address", [None, "198.51.100.1"])
@pytest.mark.parametrize("vnet", [False, True])
def test_l2tp_ring_switches_between_transmit_rings_and_falls_back_when_full(
    address: str | None, vnet: bool
) -> None:
    sp, _, _ = make()
    sp.set_l2tp_address(address)
    sp.attach(
        call_id=8, interface="eth2", mac=MAC, pppoe_session_id=0x2222, tunnel_id=11,
        session_id=23, peer_tunnel_id=1, peer_session_id=2, peer=LNS, sequencing=False,
    )  # fmt: skip
    eth1, eth2 = FakePacketSocket(), FakePacketSocket()
    # eth1's kernel keeps its frames; one ring with virtio_net_hdr, one without
    tx1, tx2 = fake_tx(nr=3, complete=False, vnet=vnet), fake_tx(nr=8, vnet=not vnet)
    sp.bind_ethernet("eth1", eth1, LOCAL)
    sp.bind_ethernet("eth2", eth2, LOCAL)
    sp.bind_ethernet_tx("eth1", tx1)
    sp.bind_ethernet_tx("eth2", tx2)
    msgs = [data_msg(b"\x00\x21" + bytes([i]), session=22 + i % 2) for i in range(8)]
    msgs.insert(3, data_msg(b"\x00\x21ls", session=22, ac=False))  # general parser in between
    ring = fake_ring([(ip_frame(msg), TP_STATUS_USER) for msg in msgs], nr=16)
    assert sp.read_l2tp_ring(ring) == 9
    # eth1 (3 slots): frames 0, 2, then the general-path one; 4 and 6 find the ring full
    assert [f[20:] for f in kernel_send(tx1)] == [b"\x00\x21\x00", b"\x00\x21\x02", b"\x00\x21ls"]
    assert [f[20:] for f in eth1.sent] == [b"\x00\x21\x04", b"\x00\x21\x06"]
    assert [f[20:] for f in kernel_send(tx2)] == [b"\x00\x21" + bytes([i]) for i in (1, 3, 5, 7)]
    assert sp.counters["tx_ring_full"] == 2 and tx1.index == 0 and tx2.index == 4
    assert tx2.pending == 0 and tx1.pending == 1  # eth1's will be flushed again
    assert sp.counters_for(7)["output_packets"] == 5 and sp.counters_for(8)["output_packets"] == 4


class FakeCall:
    def __init__(self, delay: float, fn: Any) -> None:
        self.delay, self.fn, self.cancelled = delay, fn, False

    def cancel(self) -> None:
        self.cancelled = True


def test_frames_left_in_a_transmit_ring_are_flushed_again_soon() -> None:
    calls: list[FakeCall] = []

    def call_later(delay: float, fn: Any) -> FakeCall:
        calls.append(FakeCall(delay, fn))
        return calls[-1]

    sp, _, _ = make()
    eth, tx = FakePacketSocket(), fake_tx(nr=8, complete=False)
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    sp._reactor = SimpleNamespace(callLater=call_later)
    assert sp.downstream(data_msg(b"\x00\x21a")) and sp.downstream(data_msg(b"\x00\x21b"))
    assert len(calls) == 1 and calls[0].delay == 0.001  # one retry pending, not two
    assert sp.counters["tx_flush_retries"] == 1
    tx.sock.complete = True  # the send buffer drained
    calls[0].fn()
    assert [f[20:] for f in kernel_send(tx)] == [b"\x00\x21a", b"\x00\x21b"]
    assert tx.pending == 0 and sp._flush_call is None and len(calls) == 1
    tx.sock.complete = False
    sp.downstream(data_msg(b"\x00\x21c"))
    assert len(calls) == 2
    sp.uninstall()
    assert calls[1].cancelled and sp._flush_call is None


STRANGERS = [("198.51.100.9", 1701), (LNS[0], 1702)]


def test_data_from_anyone_but_the_sessions_lns_is_dropped_on_every_path() -> None:
    """Right tunnel and session ids from the wrong address or port (spoofed data messages):
    never delivered, counted; the LNS's own messages still pass on each path."""
    ppp = b"\x00\x21spoof"
    seq = struct.pack("!HHHHH", 0x0802, 11, 22, 0, 0) + b"\xff\x03" + ppp  # S bit: parser
    # downstream() with the source given (the runtime's adapter path)
    sp, eth, _ = make()
    for who in STRANGERS:
        assert sp.downstream(data_msg(ppp), who) is False
    assert sp.downstream(data_msg(ppp), LNS) is True
    assert sp.counters["spoofed_downstream"] == 2
    # the UDP socket loop, fast lookup and general parser
    sp, eth, _ = bound()
    datagrams = [(data_msg(ppp), who) for who in STRANGERS] + [(seq, STRANGERS[0])]
    assert sp.read_l2tp(FakeUdpSocket([*datagrams, (data_msg(ppp), LNS)])) == 4
    assert len(eth.sent) == 1 and sp.counters["spoofed_downstream"] == 3
    # the L2TP receive ring, inline path (our address known), fast lookup, general parser
    for address in (None, "198.51.100.1"):
        sp, _, _ = make()
        sp.set_l2tp_address(address)
        eth, tx = FakePacketSocket(), fake_tx()
        sp.bind_ethernet("eth1", eth, LOCAL)
        sp.bind_ethernet_tx("eth1", tx)
        frames = [ip_frame(data_msg(ppp), src=who) for who in STRANGERS]
        frames += [ip_frame(seq, src=STRANGERS[1]), ip_frame(data_msg(ppp))]
        ring = fake_ring([(f, TP_STATUS_USER) for f in frames], nr=8)
        assert sp.read_l2tp_ring(ring) == 4
        assert [f[20:] for f in kernel_send(tx)] == [ppp]
        assert sp.counters["spoofed_downstream"] == 3
        assert sp.counters_for(7)["output_packets"] == 1


def test_l2tp_ring_takes_common_datagrams_inline_once_our_address_is_known(
    monkeypatch: Any,
) -> None:
    """With the address known (open_l2tp_ring sets it), plain data messages from the
    session's LNS never reach the per-slot path; the address applies to calls attached before
    and after it is set, and uninstall forgets it."""
    sp, _, _ = make()
    sp.set_l2tp_address("198.51.100.1")
    sp.attach(
        call_id=8, interface="eth1", mac=MAC, pppoe_session_id=0x2222, tunnel_id=12,
        session_id=23, peer_tunnel_id=1, peer_session_id=2, peer=LNS, sequencing=False,
    )  # fmt: skip
    src = socket.inet_aton(LNS[0]) + socket.inet_aton("198.51.100.1") + b"\x06\xa5"
    assert sp._by_call[7].ring_src == sp._by_call[8].ring_src == src
    eth, tx = FakePacketSocket(), fake_tx(nr=8)
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)

    def no_slot(*args: Any) -> None:
        raise AssertionError("per-slot path taken")

    monkeypatch.setattr(sp, "_l2tp_ring_slot", no_slot)
    msgs = [data_msg(b"\x00\x21" + bytes([i]) * i, tunnel=11 + i % 2, session=22 + i % 2)
            for i in range(6)]  # fmt: skip
    ring = fake_ring([(ip_frame(m), TP_STATUS_USER) for m in msgs], nr=8)
    noted: list[set[int]] = []
    assert sp.read_l2tp_ring(ring, lambda t: noted.append(set(t))) == 6
    assert [f[20:] for f in kernel_send(tx)] == [m[8:] for m in msgs]
    assert noted == [{11, 12}] and ring.index == 6
    assert sp.counters_for(7) == {
        "input_octets": 0, "input_packets": 0, "output_octets": 2 + 4 + 6, "output_packets": 3
    }  # fmt: skip
    sp.uninstall()
    assert sp._by_call[7].ring_src == b""


up_ring_ops = st.lists(
    st.tuples(
        st.sampled_from(["up", "up", "other", "long-length", "copy"]),
        st.binary(min_size=0, max_size=90),
        st.sampled_from([SID, SID + 1]),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    up_ring_ops,
    st.sampled_from(["udp", "injected", "direct", "direct-ring", "direct-ring-full"]),
    st.booleans(),
)
def test_ring_reader_upstream_matches_userspace_splice(
    ops: list[Any], path: str, sequencing: bool
) -> None:
    """The session ring reader (inline direct-ring and socket paths, and the per-slot ones)
    sends, to whichever writer applies, the datagrams UserspaceSplice sends, counts the same,
    and hands every frame it does not splice to the fallback whole."""
    ref_out: list[Any] = []
    ref = UserspaceSplice(lambda d, p: ref_out.append(bytes(d)), lambda *a: None)
    attach(ref, sequencing)
    attach(ref, sequencing, call_id=8, sid=SID + 1)
    sp, to_lns, _ = make(sequencing)
    attach(sp, sequencing, call_id=8, sid=SID + 1)
    eth, udp = FakePacketSocket(), FakeUdpSocket()
    sp.bind_ethernet("eth1", eth, LOCAL)
    if path != "injected":
        sp.bind_l2tp(udp)
    direct_sock, tx = FakePacketSocket(), None
    if path.startswith("direct"):
        egress = Egress("eth2", b"\x02" * 6, b"\x04" * 6, ("198.51.100.1", 1701), LNS)
        sp.set_egress(egress, direct_sock)
        if path != "direct":
            # (the direct writer writes its own virtio_net_hdr: a plain fake ring)
            tx = fake_tx(nr=3 if path == "direct-ring-full" else 16, complete=False)
            sp._direct[LNS].set_tx(tx)
            sp._tx_rings.append(tx)
    slots: list[tuple[bytes, int]] = []
    expected_fallback: list[bytes] = []
    queued: list[bytes] = []
    for op, payload, sid in ops:
        frame = session_frame(payload, sid=sid)
        if op == "up":
            ref.upstream("eth1", MAC, sid, payload)
            slots.append((frame, TP_STATUS_USER))
        elif op == "other":
            frame = session_frame(payload, sid=0x4444)
            expected_fallback.append(frame)
            slots.append((frame, TP_STATUS_USER))
        elif op == "long-length":
            frame = frame[:-1] if payload else frame[:18] + b"\x00\x05"
            expected_fallback.append(frame)
            slots.append((frame, TP_STATUS_USER))
        else:  # longer than a slot: the kernel queued the whole frame
            expected_fallback.append(frame)
            queued.append(frame)
            slots.append((frame[:20], TP_STATUS_USER | TP_STATUS_COPY))
    ring = fake_ring(slots, nr=16)
    ring.sock.rx.extend(queued)
    fallback: list[bytes] = []
    assert sp.read_ring("eth1", ring, fallback.append) == len(ops)
    assert ring.index == len(ops) % 16
    assert fallback == expected_fallback
    # every datagram, whichever way it left: the ring's and the direct socket's frames carry
    # virtio_net_hdr + Ethernet + IPv4 + UDP (52 octets) in front
    sent = [d for d, _ in udp.sent] + [d for d, _ in to_lns]
    sent += [f[52:] for f in kernel_send(tx)] if tx is not None else []
    sent += [f[52:] for f in direct_sock.sent]
    assert sorted(sent) == sorted(ref_out)
    if path == "direct-ring":  # a ring with room for all: every datagram in it, in order
        assert sent == ref_out
    for call_id in (7, 8):
        assert sp.counters_for(call_id) == ref.counters_for(call_id)
    assert sp.counters["upstream_fallback"] == len(expected_fallback)


def test_subscriber_transmit_ring_without_virtio_net_hdr_when_the_kernel_refuses_it(
    monkeypatch: Any,
) -> None:
    import broker.dataplane.fastpath as fp

    asked: list[bool] = []

    class Sock(FakePacketSocket):
        def setsockopt(self, *args: Any) -> None:
            pass

    def ring(sock: Any, *args: Any, vnet_hdr: bool = False, **kw: Any) -> TxRing:
        asked.append(vnet_hdr)
        if vnet_hdr:
            raise OSError(22, "Invalid argument")  # PACKET_VNET_HDR refused, say
        return fake_tx()

    monkeypatch.setattr(fp, "open_packet_socket", lambda interface, vnet_hdr=False: Sock())
    monkeypatch.setattr(fp, "TxRing", ring)
    sp, _, _ = make()
    sp.install(FakeRawPort(), None, ring=False)
    assert asked == [True, False]
    assert sp.features["pppoe_tx_ring"] and not sp.features["pppoe_tx_linear"]
    assert sp._by_call[7].eth_tx is not None
    sp.uninstall()


def test_l2tp_ring_runs_wrap_stop_at_budget_and_unready_slots_and_give_slots_back() -> None:
    """Slots are taken in runs (statuses read at once, given back at once): a run stops at the
    ring's end (the next starts at slot 0), at the budget and at a slot still the kernel's;
    every slot read goes back as a whole zero tp_status, flags beyond the low octet included."""
    sp, _, _ = make()
    sp.set_l2tp_address("198.51.100.1")
    eth, tx = FakePacketSocket(), fake_tx(nr=16)
    sp.bind_ethernet("eth1", eth, LOCAL)
    sp.bind_ethernet_tx("eth1", tx)
    ring = fake_ring([], nr=8)
    ring.index = 6
    ts_software = 1 << 29  # TP_STATUS_TS_SOFTWARE: a flag beyond the low octet
    for n, slot in enumerate((6, 7, 0, 1, 3)):  # slot 2 not ready: 3 waits for the next call
        frame = ip_frame(data_msg(b"\x00\x21" + bytes([n])))
        status = TP_STATUS_USER | (ts_software if slot in (7, 0) else 0)
        _TP2_HDR.pack_into(ring.map, slot * 2048, status, len(frame), len(frame), 130)
        ring.map[slot * 2048 + 130 : slot * 2048 + 130 + len(frame)] = frame
    assert sp.read_l2tp_ring(ring, budget=3) == 3  # 6, 7, then 0 after the wrap
    assert ring.index == 1
    assert sp.read_l2tp_ring(ring) == 1  # 1; slot 2 is the kernel's
    assert ring.index == 2
    assert [f[20:] for f in kernel_send(tx)] == [b"\x00\x21" + bytes([n]) for n in range(4)]
    for slot in (6, 7, 0, 1, 2):
        assert struct.unpack_from("=I", ring.map, slot * 2048)[0] == TP_STATUS_KERNEL
    assert struct.unpack_from("=I", ring.map, 3 * 2048)[0] == TP_STATUS_USER  # not read
    assert sp.counters_for(7)["output_packets"] == 4  # type: ignore[index]


def test_session_ring_runs_wrap_stop_at_budget_and_unready_slots_and_give_slots_back() -> None:
    sp, _, udp = bound()
    ring = fake_ring([], nr=8)
    ring.index = 6
    for n, slot in enumerate((6, 7, 0, 1, 3)):  # slot 2 not ready: 3 waits for the next call
        frame = session_frame(b"\x00\x21" + bytes([n]))
        status = TP_STATUS_USER | (1 << 29 if slot in (7, 0) else 0)  # TP_STATUS_TS_SOFTWARE
        _TP2_HDR.pack_into(ring.map, slot * 2048, status, len(frame), len(frame), 130)
        ring.map[slot * 2048 + 130 : slot * 2048 + 130 + len(frame)] = frame
    assert sp.read_ring("eth1", ring, budget=3) == 3  # 6, 7, then 0 after the wrap
    assert ring.index == 1
    assert sp.read_ring("eth1", ring) == 1  # 1; slot 2 is the kernel's
    assert ring.index == 2
    assert [d[8:] for d, _ in udp.sent] == [b"\x00\x21" + bytes([n]) for n in range(4)]
    for slot in (6, 7, 0, 1, 2):
        assert struct.unpack_from("=I", ring.map, slot * 2048)[0] == TP_STATUS_KERNEL
    assert struct.unpack_from("=I", ring.map, 3 * 2048)[0] == TP_STATUS_USER  # not read
