"""Packet-socket helpers for the fast splice: a TPACKET_V2 transmit ring and classic BPF filters.

- :class:`TxRing` (PACKET_TX_RING, linux/if_packet.h): frames are written in place into mapped
  slots, marked TP_STATUS_SEND_REQUEST, and the kernel sends every marked slot on ONE ``send``
  call (:meth:`TxRing.flush`), instead of one system call per frame. A slot comes back
  (TP_STATUS_AVAILABLE) when the kernel has freed the frame's buffer.
- :func:`l2tp_ring_filter` and :func:`l2tp_socket_filter`: a pair of classic BPF programs that
  split one L2TP port between an AF_PACKET receive ring (data messages, no system call per
  datagram) and the UDP socket (control messages and whatever the ring cannot take). The two
  programs are complementary for unfragmented datagrams: the ring filter accepts exactly what
  the socket filter drops.
- :func:`attach_filter` / :func:`detach_filter`: SO_ATTACH_FILTER with a ``struct sock_fprog``
  built with :mod:`struct` and :mod:`ctypes` (no C extension).
- :func:`vnet_linear`: the virtio_net_hdr (PACKET_VNET_HDR) that has the kernel copy a
  transmit-ring frame whole instead of attaching the ring's pages to the socket buffer.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import socket
import struct
from typing import Any

__all__ = [
    "VNET_HDR_LEN",
    "Reassembler",
    "TxRing",
    "attach_filter",
    "detach_filter",
    "l2tp_ring_filter",
    "l2tp_socket_filter",
    "open_packet_socket",
    "vnet_linear",
]

SOL_PACKET = 263
PACKET_VERSION = 10
PACKET_TX_RING = 13
PACKET_LOSS = 14
PACKET_VNET_HDR = 15
PACKET_QDISC_BYPASS = 20
TPACKET_V2 = 1
#: tpacket2_hdr.tp_status values on a transmit ring.
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_SENDING = 2
TP_STATUS_WRONG_FORMAT = 4
#: Frame data offset in a TPACKET_V2 TX slot: TPACKET2_HDRLEN - sizeof(struct sockaddr_ll).
TX_DATA = 32
_TPACKET_REQ = struct.Struct("=IIII")


def ring_geometry(frame_size: int, frame_nr: int) -> tuple[int, int, int]:
    """(block size, block count, frame count) of a TPACKET_V2 ring of ``frame_size`` slots:
    blocks of at least a page, whole frames per block, at least ``frame_nr`` rounded down."""
    block_size = max(mmap.PAGESIZE, frame_size)
    if block_size % frame_size or frame_size % 16:
        raise ValueError("frame_size must divide the block size and be 16-aligned")
    per_block = block_size // frame_size
    block_nr = max(1, frame_nr // per_block)
    return block_size, block_nr, block_nr * per_block


def map_ring(sock: Any, option: int, frame_size: int, geometry: tuple[int, int, int]) -> mmap.mmap:
    """Ask for the ring (``option``: PACKET_RX_RING or PACKET_TX_RING) and map it (the caller
    gives the ring back with an empty request if mapping fails)."""
    block_size, block_nr, frame_nr = geometry
    sock.setsockopt(
        SOL_PACKET, option, _TPACKET_REQ.pack(block_size, block_nr, frame_size, frame_nr)
    )
    return mmap.mmap(
        sock.fileno(), block_size * block_nr, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
    )


_U32 = struct.Struct("=I")
_SEND_REQUEST = _U32.pack(TP_STATUS_SEND_REQUEST)
#: struct virtio_net_hdr (linux/virtio_net.h, native order on a packet socket): no checksum
#: offload, no GSO, ``hdr_len`` = the whole frame, so the kernel copies the frame into the
#: socket buffer's linear area instead of attaching the ring's pages as fragments (pages a
#: forwarding device such as veth must then copy again, one page allocation per frame).
VNET_HDR_LEN = 10
_VNET_LINEAR = struct.Struct("=2xH6x")


def vnet_linear(frame_len: int) -> bytes:
    """The virtio_net_hdr for a frame of ``frame_len`` octets sent whole (see above)."""
    return _VNET_LINEAR.pack(frame_len)


# classic BPF (linux/filter.h, linux/bpf_common.h)
_LD, _LDX, _RET, _JMP = 0x00, 0x01, 0x06, 0x05
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _MSH, _LEN = 0x20, 0x40, 0xA0, 0x80
_K = 0x00
_JEQ, _JGT, _JGE, _JSET = 0x10, 0x20, 0x30, 0x40
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
_INSN = struct.Struct("=HBBI")
_ACCEPT = 0xFFFFFFFF


Insn = tuple[int, "int | str", "int | str", int]


def _stmt(code: int, k: int) -> Insn:
    return (code, 0, 0, k & 0xFFFFFFFF)


def _jump(code: int, k: int, jt: int | str, jf: int | str) -> Insn:
    return (code, jt, jf, k & 0xFFFFFFFF)


def assemble(prog: list[Insn | str]) -> bytes:
    """Pack a cBPF program; strings in the list are labels, string jump targets name them
    (an int target is the usual offset from the next instruction)."""
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = []
    for i, (code, jt, jf, k) in enumerate(insns):
        t = labels[jt] - i - 1 if isinstance(jt, str) else jt
        f = labels[jf] - i - 1 if isinstance(jf, str) else jf
        if not (0 <= t < 256 and 0 <= f < 256):
            raise ValueError("cBPF jump out of range")
        out.append(_INSN.pack(code, t, f, k))
    return b"".join(out)


def l2tp_ring_filter(addr: str, port: int) -> bytes:
    """cBPF for an AF_PACKET socket (Ethernet header at offset 0): L2TP data to us.

    Accepts an IPv4 packet for this host (PACKET_HOST) to ``addr`` that is either a UDP
    datagram to ``port`` with at least one payload octet whose T bit is clear (RFC 2661
    section 3.1: a data message), or a fragment of a UDP datagram (a first fragment only when
    it is for ``port``): the UDP socket filter drops every data message after reassembly, so
    the ring reader reassembles fragments itself. Everything else is not queued on the ring.
    """
    dst = struct.unpack("!I", socket.inet_aton(addr))[0]
    return assemble(
        [
            _stmt(_LD | _H | _ABS, 12),  # ethertype
            _jump(_JMP | _JEQ | _K, 0x0800, 0, "drop"),
            _stmt(_LD | _B | _ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
            _jump(_JMP | _JEQ | _K, 0, 0, "drop"),  # PACKET_HOST
            _stmt(_LD | _B | _ABS, 23),  # IP protocol
            _jump(_JMP | _JEQ | _K, 17, 0, "drop"),
            _stmt(_LD | _W | _ABS, 30),  # destination address
            _jump(_JMP | _JEQ | _K, dst, 0, "drop"),
            _stmt(_LD | _H | _ABS, 20),  # flags + fragment offset
            _jump(_JMP | _JSET | _K, 0x1FFF, "accept", 0),  # a later fragment: no UDP header
            _stmt(_LDX | _B | _MSH, 14),  # X = IP header length
            _stmt(_LD | _H | _IND, 16),  # UDP destination port
            _jump(_JMP | _JEQ | _K, port, 0, "drop"),
            _stmt(_LD | _H | _ABS, 20),
            _jump(_JMP | _JSET | _K, 0x2000, "accept", 0),  # MF: the first fragment
            _stmt(_LD | _H | _IND, 18),  # UDP length
            _jump(_JMP | _JGE | _K, 9, 0, "drop"),  # at least the L2TP flags octet
            _stmt(_LD | _B | _IND, 22),  # L2TP flags
            _jump(_JMP | _JSET | _K, 0x80, "drop", 0),  # T bit: a control message
            "accept",
            _stmt(_RET | _K, _ACCEPT),
            "drop",
            _stmt(_RET | _K, 0),
        ]
    )


def l2tp_socket_filter() -> bytes:
    """cBPF for the L2TP UDP socket (UDP header at offset 0): drop what the ring takes.

    Keeps control messages (T bit) and empty datagrams; drops data messages, which the ring
    reader gets (whole, or as fragments it reassembles).
    """
    return assemble(
        [
            _stmt(_LD | _H | _ABS, 4),  # UDP length
            _jump(_JMP | _JGE | _K, 9, 0, "accept"),  # empty
            _stmt(_LD | _B | _ABS, 8),  # L2TP flags
            _jump(_JMP | _JSET | _K, 0x80, "accept", 0),
            _stmt(_RET | _K, 0),
            "accept",
            _stmt(_RET | _K, _ACCEPT),
        ]
    )


class Reassembler:
    """IPv4 reassembly (RFC 791 section 3.2) for the few fragmented datagrams the L2TP ring
    sees: pieces kept per (source, destination, identification), at most ``limit`` datagrams
    in progress (the oldest dropped first), no timer. Overlaps are not merged: a datagram whose
    pieces do not tile exactly never completes and ages out."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self.pending: dict[bytes, dict[int, bytes]] = {}
        self.total: dict[bytes, int] = {}

    def add(self, packet: bytes) -> bytes | None:
        """Add one fragment (an IPv4 packet); the whole IP payload once complete."""
        if len(packet) < 20:
            return None
        ihl = (packet[0] & 15) * 4
        total_len = int.from_bytes(packet[2:4], "big")
        frag = int.from_bytes(packet[6:8], "big")
        if ihl < 20 or total_len > len(packet) or total_len < ihl:
            return None
        key = packet[12:20] + packet[4:6]
        offset = (frag & 0x1FFF) * 8
        piece = packet[ihl:total_len]
        pieces = self.pending.get(key)
        if pieces is None:
            while len(self.pending) >= self.limit:
                old = next(iter(self.pending))
                del self.pending[old]
                self.total.pop(old, None)
            pieces = self.pending[key] = {}
        pieces[offset] = piece
        if not frag & 0x2000:
            self.total[key] = offset + len(piece)
        size = self.total.get(key)
        if size is None:
            return None
        out = bytearray()
        at = 0
        while at < size:
            nxt = pieces.get(at)
            if nxt is None or not nxt:
                return None
            out += nxt
            at += len(nxt)
        del self.pending[key]
        del self.total[key]
        return bytes(out) if at == size else None


def attach_filter(sock: Any, program: bytes) -> None:
    """SO_ATTACH_FILTER ``program`` (packed ``struct sock_filter`` array) to ``sock``."""
    count = len(program) // _INSN.size
    code = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HL", count, ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def detach_filter(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)


class TxRing:
    """A TPACKET_V2 transmit ring (PACKET_TX_RING) on a send-only AF_PACKET socket.

    Writers take the slot at ``index`` when its status is TP_STATUS_AVAILABLE, write the frame
    at ``offset + TX_DATA``, the length at ``offset + 4`` and TP_STATUS_SEND_REQUEST at
    ``offset``, then advance ``index`` and count ``pending``; :meth:`flush` has the kernel send
    every requested slot with one system call. PACKET_LOSS makes the kernel skip (not stall on)
    a malformed frame. ``qdisc_bypass`` (PACKET_QDISC_BYPASS) skips the interface's queueing
    discipline: off by default, so traffic control (shaping subscribers with ``tc``) still
    applies to what the splice sends; on a ``noqueue`` device (veth) it changes nothing.

    With ``vnet_hdr`` (PACKET_VNET_HDR) every slot's data starts with a virtio_net_hdr
    (``vnet`` = :data:`VNET_HDR_LEN` octets, then the frame): :meth:`put` writes one that has
    the kernel copy the frame whole (:func:`vnet_linear`); other writers write their own.
    """

    __slots__ = (
        "data_max", "frame_nr", "frame_size", "index", "map", "pending", "sock", "vnet",
    )  # fmt: skip

    def __init__(
        self,
        sock: Any,
        frame_size: int = 2048,
        frame_nr: int = 1024,
        *,
        qdisc_bypass: bool = False,
        vnet_hdr: bool = False,
    ) -> None:
        geometry = ring_geometry(frame_size, frame_nr)
        self.sock = sock
        self.frame_size = frame_size
        self.frame_nr = geometry[2]
        self.data_max = frame_size - TX_DATA
        self.index = 0
        self.pending = 0
        self.vnet = VNET_HDR_LEN if vnet_hdr else 0
        if vnet_hdr:  # before the ring exists (EBUSY after)
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_LOSS, 1)
        if qdisc_bypass:
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        try:
            self.map = map_ring(sock, PACKET_TX_RING, frame_size, geometry)
        except OSError:
            self._release()
            raise

    def put(self, frame: Any) -> bool:
        """Queue one frame (bytes-like); False if the ring is full or the frame too long."""
        n = len(frame)
        m = self.map
        off = self.index * self.frame_size
        vnet = self.vnet
        if n + vnet > self.data_max or m[off] & 7:
            return False
        if vnet:
            _VNET_LINEAR.pack_into(m, off + TX_DATA, n)
        m[off + TX_DATA + vnet : off + TX_DATA + vnet + n] = frame
        _U32.pack_into(m, off + 4, n + vnet)
        m[off : off + 4] = _SEND_REQUEST
        self.index = (self.index + 1) % self.frame_nr
        self.pending += 1
        return True

    def flush(self) -> None:
        """Have the kernel send the requested slots (one ``send``, not waiting)."""
        self.pending = 0
        self.sock.send(b"", socket.MSG_DONTWAIT)

    def close(self) -> None:
        self.map.close()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_PACKET, PACKET_TX_RING, _TPACKET_REQ.pack(0, 0, 0, 0))


def open_packet_socket(interface: str, *, vnet_hdr: bool = False) -> socket.socket:
    """A send-only AF_PACKET socket (protocol 0: receives nothing) bound to ``interface``."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((interface, 0))
        if vnet_hdr:
            sock.setsockopt(SOL_PACKET, 15, 1)  # PACKET_VNET_HDR
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
