"""Fast userspace splice: PPPoE session frames (RFC 2516 section 4) <-> L2TP data messages
(RFC 2661 section 3.1, sequencing section 5.4), moved by tight socket loops with no per-packet
allocation beyond what the socket calls need.

:class:`FastSplice` has the API of :class:`~broker.dataplane.userspace.UserspaceSplice`
(``attach``/``detach``/``upstream``/``downstream``/``counters_for``/``owns``/``counters``), so a
runtime can swap one for the other. On top of that it can own the hot sockets:

- :meth:`FastSplice.read_ring` walks a TPACKET_V2 receive ring (:class:`PacketRing`,
  PACKET_RX_RING) on the AF_PACKET socket bound to ETH_P_PPP_SES (0x8864): no system call per
  received frame. The splice key is the frame's first 18 octets (our MAC, source MAC,
  ethertype, PPPoE VER/TYPE, CODE, SESSION_ID), so one slice and one dict lookup both validate
  the header and find the call. The L2TP header (+ FF 03, DESIGN.md section 3) is written
  over the Ethernet/PPPoE header in the ring slot and sent from there.
  :meth:`FastSplice.read_ethernet` does the same with ``recv_into`` a fixed buffer, for
  kernels that refuse the ring.
- :meth:`FastSplice.read_l2tp` drains the L2TP UDP socket with ``recvfrom_into`` (20 octets of
  headroom); the common data header ``00 02 tunnel session FF 03`` is one dict lookup, other
  data headers (L, S, O bits, no FF 03) go through the general parser; the PPPoE + Ethernet
  header is written in place in front of the PPP frame and sent on the interface's AF_PACKET
  socket; control messages (T bit) go to a callback (the L2TP adapter).
- :meth:`FastSplice.read_l2tp_ring` walks an AF_PACKET receive ring on which a classic BPF
  filter puts the L2TP data messages for our address and port (:mod:`broker.dataplane.rings`);
  a complementary filter on the UDP socket drops them there, so control messages alone reach
  the socket (the L2TP adapter) and data messages cost no system call. Fragments are
  reassembled on the slow path.
- Transmit rings (:class:`~broker.dataplane.rings.TxRing`, PACKET_TX_RING): frames for the
  subscribers, and direct-egress datagrams, are written into mapped slots and sent with one
  ``send`` per batch (each reader flushes at the end of its batch). Every slot carries a
  virtio_net_hdr whose ``hdr_len`` covers the whole frame, so the kernel copies the frame into
  the socket buffer instead of attaching the ring's pages (which a veth or any forwarding
  device would copy again into a freshly allocated page).
- Both ring readers take the common frame inline (one unpack of the headers, one write of the
  transmit slot's header with the new packet headers, one copy of the PPP frame, ring state
  in locals) and hand everything else to a per-slot method with the general logic.
- Optional direct egress (:meth:`FastSplice.set_egress`, :class:`DirectPath`, or
  ``install(direct=True)``): upstream datagrams written as whole Ethernet frames to the LNS's
  next hop, skipping the kernel's UDP/IP output path (and netfilter): opt-in.
- :meth:`FastSplice.install` hooks the loops into a running ``RawEthernetPort`` and
  ``L2tpUdpAdapter`` (it replaces their readers' ``doRead`` for the session sockets and the
  UDP port), so the runtime switches with one constructor change plus one call;
  :meth:`FastSplice.uninstall` undoes it.

Frames the splice does not own go to the fallback callbacks unchanged. Socket errors are
counted and the frame dropped (PPP and L2TP recover); nothing raises into the reactor.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import mmap
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from broker.dataplane.rings import (
    _TPACKET_REQ,
    _VNET_LINEAR,
    TX_DATA,
    Reassembler,
    TxRing,
    attach_filter,
    detach_filter,
    l2tp_ring_filter,
    l2tp_socket_filter,
    map_ring,
    open_packet_socket,
    ring_geometry,
)
from broker.dataplane.userspace import ETH_P_PPP_SES, SendEthernet, SendL2tp
from broker.wire import MacAddress

__all__ = ["FastEntry", "FastSplice"]

#: RFC 2516 section 4 (ethertype 0x8864), VER=1 TYPE=1, CODE=0x00: session data.
_SES_TAG = b"\x88\x64\x11\x00"
_ADDR_CTRL = b"\xff\x03"
_L2TP_SEQ = struct.Struct("!HHHHH")  # flags (S bit), tunnel, session, Ns, Nr
_L2TP_PLAIN = struct.Struct("!HHH")
_PPPOE_HDR = struct.Struct("!BBHH")
#: Room kept in front of a received L2TP datagram for the Ethernet + PPPoE header (14 + 6).
_HEADROOM = 20
_BUF_SIZE = 65536 + _HEADROOM
#: Frames / datagrams read per reactor wakeup before yielding to other descriptors.
DEFAULT_BUDGET = 512
_COUNTER_NAMES = ("input_octets", "input_packets", "output_octets", "output_packets")

#: linux/if_packet.h socket options and TPACKET_V2 ring constants.
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
PACKET_RESERVE = 12
PACKET_VNET_HDR = 15
TPACKET_V2 = 1
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_COPY = 2
#: struct tpacket2_hdr: tp_status, tp_len, tp_snaplen, tp_mac (little-endian host, x86/arm).
_TP2_HDR = struct.Struct("=IIIH")
#: tp_status, tp_snaplen, tp_mac of struct tpacket2_hdr
_TP2_STATUS_SNAP_MAC = struct.Struct("=I4xIH")
#: bytes.translate table: a tp_status low octet -> 1 with TP_STATUS_USER set, else 0
_USER_BIT = bytes(b & 1 for b in range(256))
#: A whole TPACKET_V2 transmit slot header (tp_status = SEND_REQUEST, tp_len, the rest zero)
#: followed by the Ethernet + PPPoE header up to LENGTH (18 octets) and LENGTH (two octets,
#: network order): one write per subscriber-bound frame before its PPP payload.
_TX_SLOT_PFX = struct.Struct(f"=II{TX_DATA - 8}x18sBB")
#: The same with the virtio_net_hdr of :func:`~broker.dataplane.rings.vnet_linear` (its
#: ``hdr_len``) between the slot header and the Ethernet header.
_TX_SLOT_VNET_PFX = struct.Struct(f"=II{TX_DATA - 8}x2xH6x18sBB")
#: A transmit slot header, then a direct path's 52 header octets (virtio_net_hdr, Ethernet,
#: IPv4, UDP) and the 8-octet L2TP data header + FF 03 of an upstream datagram.
_TX_SLOT_DIRECT = struct.Struct(f"=II{TX_DATA - 8}x52s8s")
#: From the IPv4 header of an L2TP ring frame with a 20-octet IP header: version/IHL, flags +
#: fragment offset, source address + destination address + UDP source port (10 octets), UDP
#: length, and the first 8 octets of the L2TP header.
_RING_IPUDP = struct.Struct("!B5xH4x10s2xH2x8s")
#: Headroom asked in every ring slot (PACKET_RESERVE) so a direct-egress header fits in front.
RING_RESERVE = 64
#: struct tpacket2_hdr (32) + struct sockaddr_ll (20): never written over.
_SLOT_META = 52
#: virtio_net_hdr (10) + Ethernet (14) + IPv4 (20) + UDP (8) in front of the L2TP header.
_DIRECT_HDR = 52
_VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start/offset
_U16 = struct.Struct("!H")
_U16LE = struct.Struct("<H")
_U16X2 = struct.Struct("!HH")
_PFX_LEN = struct.Struct("!18sH")  # Ethernet + PPPoE header up to LENGTH, then LENGTH
#: tpacket2_hdr tp_status + tp_len in one write: the kernel reads a TX slot only during our
#: own ``send`` (:meth:`TxRing.flush`), so the status need not be written last.
_TX_REQ = struct.Struct("=II")
#: Send buffer forced on the transmit-ring sockets: frames in flight are charged to it.
TX_SNDBUF = 8 * 1024 * 1024
ETH_P_IP = 0x0800
#: Seconds between two direct-path look-ups for an LNS that has none (``install(direct=True)``).
EGRESS_RETRY = 60.0
#: Seconds before flushing a transmit ring again when the kernel left frames in it.
FLUSH_RETRY = 0.001
SO_SNDBUFFORCE = 32  # asm-generic/socket.h (not in the socket module)


class PacketRing:
    """A TPACKET_V2 receive ring (PACKET_RX_RING) mapped from an AF_PACKET socket.

    The kernel fills frame slots and flips their status to TP_STATUS_USER; the reader walks
    the slots in order and hands each back by writing TP_STATUS_KERNEL. No system call per
    frame: the socket only serves ``epoll`` readiness.
    """

    def __init__(
        self,
        sock: Any,
        frame_size: int = 2048,
        frame_nr: int = 2048,
        reserve: int = RING_RESERVE,
    ) -> None:
        geometry = ring_geometry(frame_size, frame_nr)
        self.sock = sock
        self.frame_size = frame_size
        self.frame_nr = geometry[2]
        self.index = 0
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        if reserve:
            sock.setsockopt(SOL_PACKET, PACKET_RESERVE, reserve)
        try:
            self.map = map_ring(sock, PACKET_RX_RING, frame_size, geometry)
        except OSError:
            self._release_ring()
            raise
        self.view = memoryview(self.map)

    def close(self) -> None:
        """Unmap and give the ring back (the socket then works with ``recv`` again)."""
        self.view.release()
        self.map.close()
        self._release_ring()

    def _release_ring(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _TPACKET_REQ.pack(0, 0, 0, 0))


class DatagramSocket(Protocol):
    def recvfrom_into(self, buffer: Any, nbytes: int = ..., /) -> tuple[int, Any]: ...

    def sendto(self, data: Any, address: Any, /) -> int: ...


class PacketSocket(Protocol):
    def recv_into(self, buffer: Any, nbytes: int = ..., /) -> int: ...

    def send(self, data: Any, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Egress:
    """A layer-2 path to one LNS: where and how to write its L2TP datagrams directly."""

    interface: str
    src_mac: bytes
    dst_mac: bytes  # the next hop (the LNS or the gateway towards it)
    src: tuple[str, int]
    dst: tuple[str, int]
    mtu: int = 1500


class DirectPath:
    """Writes L2TP datagrams to one LNS as whole Ethernet frames on an AF_PACKET socket.

    Skips the kernel's UDP/IP output path (routing, netfilter, neighbour lookup): opt-in via
    :meth:`FastSplice.set_egress`. The IPv4 header checksum is computed here (only the total
    length varies); the UDP checksum (RFC 2661 section 8.1: on by default) is left to the
    device or the kernel through a virtio_net_hdr with NEEDS_CSUM (PACKET_VNET_HDR), with the
    pseudo-header sum in the checksum field. DF is set and the IP ID is 0 (RFC 6864 section
    4.1: atomic datagrams); datagrams longer than ``mtu`` go the socket way.
    """

    __slots__ = ("egress", "hdrs", "ip_sum", "mtu", "ph_sum", "sock", "template", "tx")

    def __init__(self, egress: Egress, sock: Any, tx: TxRing | None = None) -> None:
        self.egress = egress
        self.sock = sock
        #: a transmit ring on ``sock``: the ring reader writes frames into it (one send/batch)
        self.tx = tx
        self.mtu = egress.mtu
        src = ipaddress.IPv4Address(egress.src[0]).packed
        dst = ipaddress.IPv4Address(egress.dst[0]).packed
        words = sum(_U16X2.unpack(src)) + sum(_U16X2.unpack(dst))
        self.ip_sum = 0x4500 + 0x4000 + (64 << 8 | 17) + words
        self.ph_sum = words + 17
        self.template = (
            _VNET_HDR.pack(1, 0, 42, 0, 34, 6)  # VIRTIO_NET_HDR_F_NEEDS_CSUM at 14 + 20, +6
            + egress.dst_mac
            + egress.src_mac
            + b"\x08\x00"
            + struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, 17, 0, src, dst)
            + struct.pack("!HHHH", egress.src[1], egress.dst[1], 0, 0)
        )
        #: ``hdrs[udp_len]``: the headers for a datagram of that length (direct TX ring)
        self.hdrs = self._header_table() if tx is not None else []

    def set_tx(self, tx: TxRing | None) -> None:
        """Use (or stop using) the transmit ring ``tx`` on this path's socket."""
        self.tx = tx
        self.hdrs = self._header_table() if tx is not None else []

    def _header_table(self) -> list[bytes]:
        """The 52 header octets for every UDP length that fits the MTU (and a ring slot):
        only the lengths and checksums vary, so the ring writer copies one of these."""
        limit = self.mtu - 20
        if self.tx is not None:
            limit = min(limit, self.tx.data_max - 44)
        scratch = bytearray(_DIRECT_HDR)
        table = [b""] * 8
        for udp_len in range(8, limit + 1):
            self.headers(scratch, 0, udp_len)
            table.append(bytes(scratch))
        return table

    def headers(self, m: Any, hs: int, udp_len: int) -> None:
        """Write the virtio_net_hdr + Ethernet + IPv4 + UDP headers (52 octets) at ``m[hs:]``
        for a UDP datagram of ``udp_len`` octets (header included)."""
        m[hs : hs + _DIRECT_HDR] = self.template
        x = self.ip_sum + udp_len + 20
        x = (x & 0xFFFF) + (x >> 16)
        x = (x & 0xFFFF) + (x >> 16)
        y = self.ph_sum + udp_len
        y = (y & 0xFFFF) + (y >> 16)
        y = (y & 0xFFFF) + (y >> 16)
        # virtio_net_hdr.hdr_len: the whole frame, copied into the socket buffer's linear area
        # (see broker.dataplane.rings.vnet_linear)
        _U16LE.pack_into(m, hs + 2, 34 + udp_len)
        _U16.pack_into(m, hs + 26, udp_len + 20)
        _U16.pack_into(m, hs + 34, ~x & 0xFFFF)
        _U16X2.pack_into(m, hs + 48, udp_len, y)

    def send(self, m: Any, view: memoryview, start: int, end: int) -> None:
        """Send the L2TP datagram at ``m[start:end]``; ``m[start - 52:start]`` is scratch."""
        hs = start - _DIRECT_HDR
        self.headers(m, hs, end - start + 8)
        self.sock.send(view[hs:end])


def _drain(sock: Any) -> None:
    """Read and drop what is queued on a non-blocking socket."""
    for _ in range(100000):
        try:
            sock.recv(65535)
        except OSError:  # BlockingIOError: empty
            return


class _RingReader:
    """A reactor read descriptor (duck-typed IReadDescriptor) for a ring socket."""

    def __init__(self, sock: Any, read: Callable[[], None]) -> None:
        self.sock = sock
        self.doRead = read

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def connectionLost(self, reason: Any) -> None:  # Twisted's name
        pass

    def logPrefix(self) -> str:  # Twisted's name
        return "l2tp-ring"


def open_egress_socket(interface: str) -> socket.socket:
    """A send-only AF_PACKET socket on ``interface`` with PACKET_VNET_HDR (root)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((interface, 0))
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def linux_egress(peer: tuple[str, int], local: tuple[str, int]) -> Egress | None:
    """Ask the kernel (``ip route get``, the neighbour table) how it reaches ``peer``.

    None when the route has no resolved neighbour yet, or is not Ethernet-like, or when the
    host has any IPsec (xfrm) policy: a direct path would skip it. Blocking (a few ``ip``
    runs): call it once per LNS, after the tunnel is up.
    """
    try:
        policies = subprocess.run(
            ["ip", "xfrm", "policy", "list"],
            check=True, capture_output=True, text=True, timeout=2,
        ).stdout  # fmt: skip
        if policies.strip():
            return None
        route = json.loads(
            subprocess.run(
                ["ip", "-j", "route", "get", peer[0], "from", local[0]],
                check=True, capture_output=True, text=True, timeout=2,
            ).stdout
        )[0]  # fmt: skip
        dev = str(route["dev"])
        hop = str(route.get("gateway", peer[0]))
        neigh = json.loads(
            subprocess.run(
                ["ip", "-j", "neigh", "show", "to", hop, "dev", dev],
                check=True, capture_output=True, text=True, timeout=2,
            ).stdout
        )  # fmt: skip
        link = json.loads(
            subprocess.run(
                ["ip", "-j", "link", "show", "dev", dev],
                check=True, capture_output=True, text=True, timeout=2,
            ).stdout
        )[0]  # fmt: skip
    except (OSError, subprocess.SubprocessError, ValueError, LookupError):
        return None
    states = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}
    for n in neigh:
        if n.get("lladdr") and states & set(n.get("state", [])):
            if link.get("link_type") != "ether":
                return None
            return Egress(
                interface=dev,
                src_mac=bytes.fromhex(str(link["address"]).replace(":", "")),
                dst_mac=bytes.fromhex(str(n["lladdr"]).replace(":", "")),
                src=(str(route.get("prefsrc", local[0])), local[1]),
                dst=peer,
                mtu=int(link.get("mtu", 1500)),
            )
    return None


def _packed_source(address: str, port: int) -> bytes:
    """IPv4 address + UDP port as in the headers of a datagram from that LNS (b"" for IPv6)."""
    try:
        return socket.inet_aton(address) + port.to_bytes(2, "big")
    except OSError:
        return b""


@dataclass(slots=True)
class FastEntry:
    call_id: int
    interface: str
    mac: MacAddress
    pppoe_session_id: int
    tunnel_id: int
    session_id: int
    peer_tunnel_id: int
    peer_session_id: int
    peer: tuple[str, int]
    sequencing: bool
    #: L2TP data header (no sequencing) + FF 03: 8 octets, written over frame[12:20].
    up_header: bytes
    #: Ethernet dst + src + 0x8864 + PPPoE VER/TYPE, CODE, SESSION_ID (18 octets), or None
    #: until the interface's MAC is known (then the injected ``send_ethernet`` is used).
    eth_prefix: bytes | None
    #: input_octets, input_packets, output_octets, output_packets
    c: list[int]
    ns: int = 0
    #: the LNS's direct layer-2 path, when one was set (:meth:`FastSplice.set_egress`)
    direct: DirectPath | None = None
    #: the AF_PACKET socket of ``interface`` once bound (:meth:`FastSplice.bind_ethernet`)
    eth_sock: Any = None
    #: a transmit ring on ``interface`` (:meth:`FastSplice.bind_ethernet_tx`), if any
    eth_tx: TxRing | None = None
    #: ``peer`` as it appears in an IPv4/UDP header (address + port, 6 octets), or b"" when
    #: it is not an IPv4 address: data messages from any other source are dropped
    src: bytes = b""
    #: source address, our L2TP address, source port (10 octets of an IPv4/UDP header): what
    #: :meth:`FastSplice.read_l2tp_ring` compares in one go (b"" until the address is known)
    ring_src: bytes = b""


class FastSplice:
    """A splice table plus socket loops; see the module docstring."""

    name = "fastpath"

    def __init__(
        self,
        send_l2tp: SendL2tp,
        send_ethernet: SendEthernet,
        *,
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        self._send_l2tp = send_l2tp
        self._send_eth = send_ethernet
        self.budget = budget
        #: interface -> {frame[6:18] key -> entry}
        self._up: dict[str, dict[bytes, FastEntry]] = {}
        #: tunnel id + session id (4 octets, network order) -> entry
        self._down: dict[bytes, FastEntry] = {}
        #: 00 02 + tunnel id + session id + FF 03: the common data message header, one lookup
        self._down8: dict[bytes, FastEntry] = {}
        self._by_call: dict[int, FastEntry] = {}
        self._local_mac: dict[str, bytes] = {}
        self._eth_socks: dict[str, PacketSocket] = {}
        self._l2tp_sock: DatagramSocket | None = None
        # an anonymous mapping, not a bytearray: its slices are bytes (hashable keys, one copy)
        self._buf = mmap.mmap(-1, _BUF_SIZE)
        self._mv = memoryview(self._buf)
        self._hooks: list[tuple[Any, Any]] = []
        self._rings: list[PacketRing] = []
        self._direct: dict[tuple[str, int], DirectPath] = {}
        #: interface -> {our MAC + frame[6:18] key -> entry}: what the ring reader looks up
        self._ring_keys: dict[str, dict[bytes, FastEntry]] = {}
        self._own_socks: list[Any] = []
        #: interface -> transmit ring for subscriber-bound frames
        self._eth_tx: dict[str, TxRing] = {}
        self._tx_rings: list[TxRing] = []
        #: whether :meth:`set_egress` puts a transmit ring on the sockets it opens
        self.tx_ring = False
        #: the L2TP data receive ring, its reader (registered with the reactor) and filters
        self._l2tp_ring: PacketRing | None = None
        self._l2tp_reader: Any = None
        self._filtered: list[Any] = []
        self._l2tp_reactor: Any = None
        self._l2tp_port = 0
        #: look up and use a direct layer-2 path to every new LNS (:meth:`install` ``direct``)
        self.auto_direct = False
        #: how a path is found: ``(peer, local) -> Egress | None`` (:func:`linux_egress`)
        self.egress_lookup: Callable[[tuple[str, int], tuple[str, int]], Egress | None] = (
            linux_egress
        )
        self._egress_tried: dict[tuple[str, int], float] = {}
        self._egress_tx: dict[str, TxRing] = {}
        #: the reactor (from :meth:`install`) for a delayed flush, and the pending call
        self._reactor: Any = None
        self._flush_call: Any = None
        self._egress_socks: dict[str, Any] = {}
        self._local: tuple[str, int] | None = None
        #: our L2TP address (4 octets) as the L2TP ring's datagrams carry it, once known
        self._ring_addr = b""
        self._reasm = Reassembler()
        self.counters: dict[str, int] = {
            "unknown_downstream": 0,
            "spoofed_downstream": 0,
            "malformed_downstream": 0,
            "upstream_fallback": 0,
            "control_forwarded": 0,
            "l2tp_tx_errors": 0,
            "eth_tx_errors": 0,
            "read_errors": 0,
            "callback_errors": 0,
            "truncated_frames": 0,
            "direct_tx_errors": 0,
            "tx_ring_full": 0,
            "tx_flush_errors": 0,
            "tx_flush_retries": 0,
            "fragments": 0,
            "reassembled": 0,
        }

    @property
    def features(self) -> dict[str, bool]:
        """What :meth:`install` / :meth:`set_egress` put in place (for logs and tests)."""
        return {
            "pppoe_rx_ring": bool(self._rings),
            "pppoe_tx_ring": bool(self._eth_tx),
            #: subscriber transmit rings with virtio_net_hdr (frames copied whole)
            "pppoe_tx_linear": any(tx.vnet for tx in self._eth_tx.values()),
            "l2tp_rx_ring": self._l2tp_ring is not None,
            "direct_egress": bool(self._direct),
            "direct_tx_ring": any(p.tx is not None for p in self._direct.values()),
        }

    # -- table (UserspaceSplice API) -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_call)

    def attach(
        self,
        *,
        call_id: int,
        interface: str,
        mac: MacAddress,
        pppoe_session_id: int,
        tunnel_id: int,
        session_id: int,
        peer_tunnel_id: int,
        peer_session_id: int,
        peer: tuple[str, int],
        sequencing: bool,
    ) -> None:
        self.detach(call_id)
        entry = FastEntry(
            call_id=call_id,
            interface=interface,
            mac=mac,
            pppoe_session_id=pppoe_session_id,
            tunnel_id=tunnel_id,
            session_id=session_id,
            peer_tunnel_id=peer_tunnel_id,
            peer_session_id=peer_session_id,
            peer=(str(peer[0]), int(peer[1])),
            sequencing=sequencing,
            up_header=_L2TP_PLAIN.pack(0x0002, peer_tunnel_id, peer_session_id) + _ADDR_CTRL,
            eth_prefix=self._eth_prefix(interface, mac, pppoe_session_id),
            c=[0, 0, 0, 0],
            direct=self._direct.get((str(peer[0]), int(peer[1]))),
            eth_sock=self._eth_socks.get(interface),
            eth_tx=self._eth_tx.get(interface),
            src=_packed_source(str(peer[0]), int(peer[1])),
        )
        entry.ring_src = self._ring_src(entry.src)
        key = self._up_key(mac, pppoe_session_id)
        self._up.setdefault(interface, {})[key] = entry
        local = self._local_mac.get(interface)
        if local is not None:
            self._ring_keys.setdefault(interface, {})[local + key] = entry
        self._down[self._down_key(tunnel_id, session_id)] = entry
        self._down8[b"\x00\x02" + self._down_key(tunnel_id, session_id) + _ADDR_CTRL] = entry
        self._by_call[call_id] = entry
        if self.auto_direct and entry.direct is None:
            self._find_egress(entry.peer)

    def detach(self, call_id: int) -> dict[str, int]:
        entry = self._by_call.pop(call_id, None)
        if entry is None:
            return {}
        table = self._up.get(entry.interface)
        key = self._up_key(entry.mac, entry.pppoe_session_id)
        if table is not None:
            table.pop(key, None)
        local = self._local_mac.get(entry.interface)
        if local is not None:
            self._ring_keys.get(entry.interface, {}).pop(local + key, None)
        self._down.pop(self._down_key(entry.tunnel_id, entry.session_id), None)
        self._down8.pop(
            b"\x00\x02" + self._down_key(entry.tunnel_id, entry.session_id) + _ADDR_CTRL, None
        )
        return dict(zip(_COUNTER_NAMES, entry.c, strict=True))

    def counters_for(self, call_id: int) -> dict[str, int] | None:
        entry = self._by_call.get(call_id)
        return None if entry is None else dict(zip(_COUNTER_NAMES, entry.c, strict=True))

    def owns(self, interface: str, mac: bytes, pppoe_session_id: int) -> bool:
        table = self._up.get(interface)
        return table is not None and self._up_key(mac, pppoe_session_id) in table

    def set_l2tp_address(self, address: str | None) -> None:
        """The IPv4 address the L2TP ring's datagrams are sent to (:meth:`open_l2tp_ring`
        sets it): with it known, :meth:`read_l2tp_ring` checks a datagram's source and
        destination with one comparison."""
        self._ring_addr = b"" if address is None else socket.inet_aton(address)
        for entry in self._by_call.values():
            entry.ring_src = self._ring_src(entry.src)

    def _ring_src(self, src: bytes) -> bytes:
        if not src or not self._ring_addr:
            return b""
        return src[:4] + self._ring_addr + src[4:6]

    @staticmethod
    def _up_key(mac: bytes, pppoe_session_id: int) -> bytes:
        return bytes(mac) + _SES_TAG + pppoe_session_id.to_bytes(2, "big")

    @staticmethod
    def _down_key(tunnel_id: int, session_id: int) -> bytes:
        return tunnel_id.to_bytes(2, "big") + session_id.to_bytes(2, "big")

    def _eth_prefix(self, interface: str, mac: bytes, pppoe_session_id: int) -> bytes | None:
        local = self._local_mac.get(interface)
        if local is None:
            return None
        return bytes(mac) + local + _SES_TAG + pppoe_session_id.to_bytes(2, "big")

    # -- sockets ----------------------------------------------------------------------------
    def bind_ethernet(self, interface: str, sock: PacketSocket, local_mac: bytes) -> None:
        """Send (and, via :meth:`read_ethernet`, receive) session frames on ``sock``."""
        self._eth_socks[interface] = sock
        local = self._local_mac[interface] = bytes(local_mac)
        keys = self._ring_keys[interface] = {}
        for key, entry in self._up.get(interface, {}).items():
            entry.eth_prefix = self._eth_prefix(interface, entry.mac, entry.pppoe_session_id)
            entry.eth_sock = sock
            keys[local + key] = entry

    def bind_ethernet_tx(self, interface: str, tx: TxRing | None) -> None:
        """Write subscriber-bound frames on ``interface`` into the transmit ring ``tx`` (one
        ``send`` per batch); None goes back to one ``send`` per frame."""
        if tx is None:
            self._eth_tx.pop(interface, None)
        else:
            self._eth_tx[interface] = tx
            if tx not in self._tx_rings:
                self._tx_rings.append(tx)
        for entry in self._up.get(interface, {}).values():
            entry.eth_tx = tx

    def _open_tx(self, interface: str, *, vnet_hdr: bool = False) -> TxRing:
        """A send-only AF_PACKET socket on ``interface`` with a :class:`TxRing` (root)."""
        sock = open_packet_socket(interface, vnet_hdr=vnet_hdr)
        try:
            try:  # room for a whole ring in flight (else frames wait for the next flush)
                sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, TX_SNDBUF)
            except OSError:  # no CAP_NET_ADMIN: as much as net.core.wmem_max allows
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TX_SNDBUF)
            tx = TxRing(sock, vnet_hdr=vnet_hdr)
        except (OSError, ValueError):
            sock.close()
            raise
        self._own_socks.append(sock)
        self._tx_rings.append(tx)
        return tx

    def _open_eth_tx(self, interface: str) -> None:
        """A transmit ring for subscriber-bound frames on ``interface``: with virtio_net_hdr
        (frames copied whole into the socket buffer, see :func:`~broker.dataplane.rings.
        vnet_linear`) where the kernel allows it, else without; none if it refuses both."""
        for vnet_hdr in (True, False):
            try:
                tx = self._open_tx(interface, vnet_hdr=vnet_hdr)
            except (OSError, ValueError):
                continue
            self.bind_ethernet_tx(interface, tx)
            return

    def _find_egress(self, peer: tuple[str, int]) -> None:
        """Ask ``egress_lookup`` for a direct path to ``peer`` (at most once a minute per LNS
        while none is found) and use it; failures leave the UDP socket path in place."""
        local = self._local
        if local is None:
            return
        now = time.monotonic()
        last = self._egress_tried.get(peer)
        if last is not None and now - last < EGRESS_RETRY:
            return
        self._egress_tried[peer] = now
        try:
            egress = self.egress_lookup(peer, local)
        except Exception:  # a lookup bug must not stop the call
            self.counters["callback_errors"] += 1
            return
        if egress is None or egress.dst != peer:
            return
        try:
            self.set_egress(egress)
        except OSError:
            self.counters["direct_tx_errors"] += 1

    def _flush_tx(self) -> None:
        for tx in self._tx_rings:
            if tx.pending:
                try:
                    tx.flush()
                except OSError:
                    self.counters["tx_flush_errors"] += 1
                last = (tx.index - 1) % tx.frame_nr * tx.frame_size
                if tx.map[last] == 1:  # still SEND_REQUEST: the send buffer was full
                    tx.pending = 1
                    self._retry_flush()

    def _retry_flush(self) -> None:
        """Flush again shortly: frames the kernel could not take yet must not wait for the
        next packet (there may be none for a while)."""
        reactor = self._reactor
        if reactor is None or self._flush_call is not None:
            return
        self.counters["tx_flush_retries"] += 1

        def again() -> None:
            self._flush_call = None
            self._flush_tx()

        self._flush_call = reactor.callLater(FLUSH_RETRY, again)

    def set_egress(self, egress: Egress | None, sock: Any = None, *, peer: Any = None) -> None:
        """Write datagrams to ``egress.dst`` directly on ``sock`` (see :class:`DirectPath`).

        ``sock`` defaults to :func:`open_egress_socket` on ``egress.interface``. None as
        ``egress`` (with ``peer``) goes back to the UDP socket for that LNS. Only the ring
        reader uses the direct path.
        """
        if egress is None:
            if peer is not None:
                key = (str(peer[0]), int(peer[1]))
                self._direct.pop(key, None)
                for entry in self._by_call.values():
                    if entry.peer == key:
                        entry.direct = None
            return
        tx: TxRing | None = None
        if sock is None:  # one socket (and ring) per interface, shared by its LNSs
            tx = self._egress_tx.get(egress.interface)
            if tx is None and self.tx_ring:
                with contextlib.suppress(OSError, ValueError):
                    tx = self._egress_tx[egress.interface] = self._open_tx(
                        egress.interface, vnet_hdr=True
                    )
            sock = tx.sock if tx is not None else self._egress_socks.get(egress.interface)
        if sock is None:
            sock = self._egress_socks[egress.interface] = open_egress_socket(egress.interface)
            self._own_socks.append(sock)
        path = DirectPath(egress, sock, tx)
        self._direct[egress.dst] = path
        for entry in self._by_call.values():
            if entry.peer == egress.dst:
                entry.direct = path

    def bind_l2tp(self, sock: DatagramSocket | None) -> None:
        """Send L2TP data messages with ``sock.sendto`` instead of the injected writer."""
        self._l2tp_sock = sock

    # -- one frame at a time (UserspaceSplice API) ------------------------------------------
    def upstream(self, interface: str, mac: bytes, pppoe_session_id: int, ppp: bytes) -> bool:
        """A PPP frame from the subscriber (PPPoE payload); False if no such splice."""
        table = self._up.get(interface)
        entry = None if table is None else table.get(self._up_key(mac, pppoe_session_id))
        if entry is None:
            return False
        c = entry.c
        c[0] += len(ppp)
        c[1] += 1
        if entry.sequencing:
            header = _L2TP_SEQ.pack(
                0x0802, entry.peer_tunnel_id, entry.peer_session_id, entry.ns, 0
            )
            entry.ns = (entry.ns + 1) & 0xFFFF
            self._out_l2tp(header + _ADDR_CTRL + ppp, entry.peer)
        else:
            self._out_l2tp(entry.up_header + ppp, entry.peer)
        return True

    def downstream(self, data: bytes, peer: tuple[str, int] | None = None) -> bool:
        """An L2TP data message from an LNS (``peer``: where it came from; a message for a
        session whose LNS is elsewhere is dropped and counted); False if unknown, spoofed or
        malformed."""
        n = len(data)
        buf = self._buf
        if n > len(buf) - _HEADROOM:
            self.counters["malformed_downstream"] += 1
            return False
        buf[_HEADROOM : _HEADROOM + n] = data
        done = self._downstream_at(n, peer)
        if self._tx_rings:
            self._flush_tx()
        return done

    def _out_l2tp(self, data: Any, peer: tuple[str, int]) -> None:
        sock = self._l2tp_sock
        if sock is None:
            self._send_l2tp(bytes(data), peer)
            return
        try:
            sock.sendto(data, peer)
        except OSError:  # ENOBUFS / EAGAIN with a full send queue: drop, PPP recovers
            self.counters["l2tp_tx_errors"] += 1

    def _downstream_at(self, n: int, peer: tuple[str, int] | bytes | None = None) -> bool:
        """Splice the L2TP data message in ``buf[_HEADROOM:_HEADROOM + n]`` that came from
        ``peer`` (an (address, port) pair, the packed form of :attr:`FastEntry.src`, or None
        when the caller has checked it)."""
        buf = self._buf
        end = _HEADROOM + n
        if n < 6:
            self.counters["malformed_downstream"] += 1
            return False
        flags = (buf[_HEADROOM] << 8) | buf[_HEADROOM + 1]
        if flags & 0x8000 or flags & 0x000F != 2:
            self.counters["malformed_downstream"] += 1
            return False
        pos = _HEADROOM + 2
        if flags & 0x4000:  # L: length field present
            pos += 2
        if pos + 4 > end:
            self.counters["malformed_downstream"] += 1
            return False
        entry = self._down.get(bytes(buf[pos : pos + 4]))
        pos += 4
        if flags & 0x0800:  # S: Ns, Nr
            pos += 4
        if flags & 0x0200:  # O: offset size + padding
            if pos + 2 > end:
                self.counters["malformed_downstream"] += 1
                return False
            pos += 2 + ((buf[pos] << 8) | buf[pos + 1])
        if pos > end:
            self.counters["malformed_downstream"] += 1
            return False
        if entry is None:
            self.counters["unknown_downstream"] += 1
            return False
        if peer is not None and peer != (entry.src if isinstance(peer, bytes) else entry.peer):
            self.counters["spoofed_downstream"] += 1
            return False
        if pos + 2 <= end and buf[pos] == 0xFF and buf[pos + 1] == 0x03:
            pos += 2
        self._deliver(entry, pos, end)
        return True

    def _deliver(self, entry: FastEntry, pos: int, end: int) -> None:
        """Send the PPP frame at ``buf[pos:end]`` to the subscriber of ``entry``."""
        length = end - pos
        c = entry.c
        c[2] += length
        c[3] += 1
        self._send_down(entry, pos, end)

    def _send_down(self, entry: FastEntry, pos: int, end: int) -> None:
        """:meth:`_deliver` without the counters (``buf[pos - 20:pos]`` is scratch)."""
        length = end - pos
        prefix = entry.eth_prefix
        sock = self._eth_socks.get(entry.interface)
        tx = entry.eth_tx
        if prefix is not None and tx is not None and length + 20 + tx.vnet <= tx.data_max:
            tm = tx.map
            toff = tx.index * tx.frame_size
            if not tm[toff] & 7:
                d = toff + TX_DATA
                if tx.vnet:
                    _VNET_LINEAR.pack_into(tm, d, length + 20)
                    d += tx.vnet
                _PFX_LEN.pack_into(tm, d, prefix, length)
                tm[d + 20 : d + 20 + length] = self._buf[pos:end]
                _TX_REQ.pack_into(tm, toff, 1, d + 20 + length - toff - TX_DATA)
                tx.index = (tx.index + 1) % tx.frame_nr
                tx.pending += 1
                return
            self.counters["tx_ring_full"] += 1
            self._flush_tx()  # keep the order: what is queued goes first
        if prefix is None or sock is None:
            frame = _PPPOE_HDR.pack(0x11, 0, entry.pppoe_session_id, length) + bytes(
                self._buf[pos:end]
            )
            self._send_eth(entry.interface, entry.mac, ETH_P_PPP_SES, frame)
            return
        buf = self._buf
        start = pos - _HEADROOM  # >= 0: an L2TP header is at least 6 octets
        buf[start : pos - 2] = prefix
        buf[pos - 2] = length >> 8
        buf[pos - 1] = length & 0xFF
        try:
            sock.send(self._mv[start:end])
        except OSError:
            self.counters["eth_tx_errors"] += 1

    # -- socket loops -------------------------------------------------------------------------
    def read_ethernet(
        self,
        interface: str,
        sock: PacketSocket,
        fallback: Callable[[bytes], None] | None = None,
        budget: int | None = None,
    ) -> int:
        """Drain up to ``budget`` frames from ``sock`` (ETH_P_PPP_SES on ``interface``).

        Frames addressed to the interface's MAC that belong to a splice go to the LNS; every
        other frame goes to ``fallback(frame)`` untouched. Returns the number of frames read.
        """
        buf = self._buf
        mv = self._mv
        recv_into = sock.recv_into
        table = self._ring_keys.get(interface, {})  # first 18 octets, our MAC first
        l2tp = self._l2tp_sock
        counters = self.counters
        read = 0
        limit = self.budget if budget is None else budget
        while read < limit:
            try:
                n = recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                counters["read_errors"] += 1
                break
            read += 1
            entry = table.get(buf[0:18]) if n >= 20 else None
            if entry is None:
                self._fallback_frame(fallback, n)
                continue
            length = (buf[18] << 8) | buf[19]
            end = 20 + length
            if end > n:  # PPPoE LENGTH beyond the frame: malformed, the call flow counts it
                self._fallback_frame(fallback, n)
                continue
            c = entry.c
            c[0] += length
            c[1] += 1
            if entry.sequencing:
                _L2TP_SEQ.pack_into(
                    buf, 8, 0x0802, entry.peer_tunnel_id, entry.peer_session_id, entry.ns, 0
                )
                buf[18] = 0xFF
                buf[19] = 0x03
                entry.ns = (entry.ns + 1) & 0xFFFF
                data = mv[8:end]
            else:
                buf[12:20] = entry.up_header
                data = mv[12:end]
            if l2tp is None:
                self._send_l2tp(bytes(data), entry.peer)
                continue
            try:
                l2tp.sendto(data, entry.peer)
            except OSError:
                counters["l2tp_tx_errors"] += 1
        return read

    def read_ring(
        self,
        interface: str,
        ring: PacketRing,
        fallback: Callable[[bytes], None] | None = None,
        budget: int | None = None,
    ) -> int:
        """:meth:`read_ethernet` for a socket with a :class:`PacketRing` (no recv calls).

        The common case (a spliced session without sequencing whose LNS has a direct path
        with a transmit ring, a free slot in it) is handled inline: the slot header, the
        direct path's headers and the L2TP header in one write, then the PPP frame; every
        other frame goes through :meth:`_ring_slot`.
        """
        m = ring.map
        fs = ring.frame_size
        nr = ring.frame_nr
        idx = ring.index
        # keyed by the first 18 octets (dst = our MAC, src, 0x8864, VER/TYPE, CODE, SESSION_ID)
        table = self._ring_keys.get(interface, {})
        view = ring.view
        l2tp = self._l2tp_sock
        unpack_meta = _TP2_STATUS_SNAP_MAC.unpack_from
        pack_slot = _TX_SLOT_DIRECT.pack_into
        slot = self._ring_slot
        # the transmit ring in use, its state kept in locals (written back before any other
        # path may use the ring, and at the end)
        cur: TxRing | None = None
        tm: Any = None
        tidx = tfs = tnr = tpend = 0
        read = 0
        limit = self.budget if budget is None else budget
        while read < limit:
            # a run of slots handed over (as in read_l2tp_ring): statuses read at once before
            # the contents, given back at once after
            o0 = idx * fs
            k = min(limit - read, nr - idx)
            ready = m[o0 : o0 + k * fs : fs].translate(_USER_BIT).find(0)
            if ready < 0:
                ready = k
            if not ready:
                break
            for off in range(o0, o0 + ready * fs, fs):
                status, n, mac = unpack_meta(m, off)
                if status > 255:  # flags beyond the low octet (given back below)
                    m[off + 1 : off + 4] = b"\0\0\0"
                base = off + mac
                entry = table.get(m[base : base + 18])
                if entry is not None and not status & 2 and n >= 20:  # not TP_STATUS_COPY
                    length = (m[base + 18] << 8) | m[base + 19]
                    direct = entry.direct
                    fits = length + 20 <= n
                    if fits and direct is None and not entry.sequencing and l2tp is not None:
                        # no direct path: the L2TP header over the PPPoE one, one sendto
                        c = entry.c
                        c[0] += length
                        c[1] += 1
                        m[base + 12 : base + 20] = entry.up_header
                        data = view[base + 12 : base + 20 + length]
                        try:
                            l2tp.sendto(data, entry.peer)
                        except OSError:
                            self.counters["l2tp_tx_errors"] += 1
                        data.release()
                        continue
                    if fits and direct is not None and not entry.sequencing:
                        tx = direct.tx
                        if tx is not cur:
                            if cur is not None:
                                cur.index = tidx
                                cur.pending += tpend
                                tpend = 0
                            cur = tx
                            if tx is not None:
                                tm, tidx, tfs, tnr = tx.map, tx.index, tx.frame_size, tx.frame_nr
                        udp_len = length + 16
                        hdrs = direct.hdrs
                        toff = tidx * tfs
                        if tx is not None and udp_len < len(hdrs) and not tm[toff] & 7:
                            c = entry.c
                            c[0] += length
                            c[1] += 1
                            # slot header, virtio_net_hdr + Ethernet + IPv4 + UDP, L2TP + FF 03
                            pack_slot(tm, toff, 1, 44 + udp_len, hdrs[udp_len], entry.up_header)
                            tm[toff + 92 : toff + 92 + length] = m[base + 20 : base + 20 + length]
                            tidx += 1
                            if tidx == tnr:
                                tidx = 0
                            tpend += 1
                            continue
                    if fits:  # spliced: sequencing, a full ring, no ring, no socket
                        if cur is not None:
                            cur.index = tidx
                            cur.pending += tpend
                            tpend = 0
                            cur = None
                        self._ring_send(entry, ring, off, base, length)
                        continue
                if cur is not None:
                    cur.index = tidx
                    cur.pending += tpend
                    tpend = 0
                    cur = None
                slot(ring, off, fallback)
            m[o0 : o0 + ready * fs : fs] = bytes(ready)  # TP_STATUS_KERNEL: back to the kernel
            read += ready
            idx += ready
            if idx == nr:
                idx = 0
            if ready < k:
                break
        if cur is not None:
            cur.index = tidx
            cur.pending += tpend
        ring.index = idx
        if self._tx_rings:
            self._flush_tx()
        return read

    def _ring_slot(
        self, ring: PacketRing, off: int, fallback: Callable[[bytes], None] | None
    ) -> None:
        """One slot of a PPPoE session ring that :meth:`read_ring` does not splice: not ours,
        longer than a slot, or with a PPPoE LENGTH beyond the frame: to ``fallback``."""
        m = ring.map
        status, _, n, mac = _TP2_HDR.unpack_from(m, off)
        base = off + mac
        if status & TP_STATUS_COPY:  # longer than a slot: the whole frame is queued
            self.counters["truncated_frames"] += 1
            with contextlib.suppress(OSError):
                self._fallback_bytes(fallback, ring.sock.recv(65535))
        else:
            self._fallback_bytes(fallback, m[base : base + n])

    def _ring_send(
        self, entry: FastEntry, ring: PacketRing, off: int, base: int, length: int
    ) -> None:
        """Send the spliced frame (PPP frame of ``length`` octets) at ``base`` in ``ring``'s
        slot at ``off`` the way :meth:`read_ring` does not inline: with sequencing, without
        a direct transmit ring (or with a full one), without an L2TP socket."""
        m = ring.map
        counters = self.counters
        end = base + 20 + length
        c = entry.c
        c[0] += length
        c[1] += 1
        if entry.sequencing:
            start = base + 8
            _L2TP_SEQ.pack_into(
                m, start, 0x0802, entry.peer_tunnel_id, entry.peer_session_id, entry.ns, 0
            )
            m[base + 18 : base + 20] = _ADDR_CTRL
            entry.ns = (entry.ns + 1) & 0xFFFF
        else:
            start = base + 12
            m[start : base + 20] = entry.up_header
        direct = entry.direct
        tx = None if direct is None else direct.tx
        udp_len = end - start + 8
        if (
            tx is not None
            and udp_len < len(direct.hdrs)  # type: ignore[union-attr]
            and not tx.map[tx.index * tx.frame_size] & 7
        ):
            tm = tx.map
            toff = tx.index * tx.frame_size
            d = toff + TX_DATA
            tm[d : d + _DIRECT_HDR] = direct.hdrs[udp_len]  # type: ignore[union-attr]
            tm[d + _DIRECT_HDR : d + 44 + udp_len] = m[start:end]
            _TX_REQ.pack_into(tm, toff, 1, 44 + udp_len)  # SEND_REQUEST, tp_len
            tx.index = (tx.index + 1) % tx.frame_nr
            tx.pending += 1
        elif (
            direct is not None
            and start - _DIRECT_HDR >= off + _SLOT_META
            and end - start + 28 <= direct.mtu
        ):
            try:
                direct.send(m, ring.view, start, end)
            except OSError:
                counters["direct_tx_errors"] += 1
        elif self._l2tp_sock is None:
            self._send_l2tp(m[start:end], entry.peer)
        else:
            data = ring.view[start:end]
            try:
                self._l2tp_sock.sendto(data, entry.peer)
            except OSError:
                counters["l2tp_tx_errors"] += 1
            data.release()

    def _fallback_bytes(self, fallback: Callable[[bytes], None] | None, frame: bytes) -> None:
        self.counters["upstream_fallback"] += 1
        if fallback is None:
            return
        try:
            fallback(frame)
        except Exception:  # a callback bug must not stop the data plane
            self.counters["callback_errors"] += 1

    def _fallback_frame(self, fallback: Callable[[bytes], None] | None, n: int) -> None:
        self.counters["upstream_fallback"] += 1
        if fallback is None:
            return
        try:
            fallback(bytes(self._buf[:n]))
        except Exception:  # a callback bug must not stop the data plane
            self.counters["callback_errors"] += 1

    def read_l2tp(
        self,
        sock: DatagramSocket,
        on_control: Callable[[bytes, Any], None] | None = None,
        budget: int | None = None,
        on_tunnels: Callable[[set[int]], None] | None = None,
    ) -> int:
        """Drain up to ``budget`` datagrams from the L2TP UDP socket ``sock``.

        Data messages are spliced (unknown and malformed ones counted and dropped); control
        messages (T bit) and empty datagrams go to ``on_control(datagram, addr)``. After the
        batch, ``on_tunnels`` gets the (local) tunnel ids that carried data (RFC 2661 5.5:
        data traffic postpones HELLO).
        """
        buf = self._buf
        mv = self._mv
        target = mv[_HEADROOM:]
        recvfrom_into = sock.recvfrom_into
        down8 = self._down8
        counters = self.counters
        seen: set[int] = set()
        seen_add = seen.add
        read = 0
        limit = self.budget if budget is None else budget
        while read < limit:
            try:
                n, addr = recvfrom_into(target)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ECONNREFUSED from an earlier ICMP: keep reading
                counters["read_errors"] += 1
                continue
            read += 1
            entry = down8.get(buf[20:28]) if n >= 8 else None
            if entry is None:
                if n < 6 or buf[_HEADROOM] & 0x80:
                    counters["control_forwarded"] += 1
                    if on_control is not None:
                        try:
                            on_control(buf[_HEADROOM : _HEADROOM + n], addr)
                        except Exception:
                            counters["callback_errors"] += 1
                else:  # header bits (L, S, O, P), no FF 03, unknown: the general parser
                    self._downstream_at(n, addr)
                continue
            if addr != entry.peer:
                counters["spoofed_downstream"] += 1
                continue
            seen_add(entry.tunnel_id)
            end = _HEADROOM + n
            prefix = entry.eth_prefix
            eth = entry.eth_sock
            if prefix is None or eth is None:
                self._deliver(entry, 28, end)
                continue
            length = n - 8
            c = entry.c
            c[2] += length
            c[3] += 1
            if entry.eth_tx is not None:
                self._send_down(entry, 28, end)
                continue
            buf[8:26] = prefix
            buf[26] = length >> 8
            buf[27] = length & 0xFF
            try:
                eth.send(mv[8:end])
            except OSError:
                counters["eth_tx_errors"] += 1
        if self._tx_rings:
            self._flush_tx()
        if seen and on_tunnels is not None:
            try:
                on_tunnels(seen)
            except Exception:
                counters["callback_errors"] += 1
        return read

    def read_l2tp_ring(
        self,
        ring: PacketRing,
        on_tunnels: Callable[[set[int]], None] | None = None,
        budget: int | None = None,
    ) -> int:
        """Splice the L2TP data messages queued on ``ring`` (see :meth:`open_l2tp_ring`).

        Each slot holds an Ethernet frame with an IPv4/UDP datagram the ring filter accepted
        (data message to our address and port, unfragmented); the UDP length, not the slot
        length, bounds the message (short frames are padded). Same splicing, counters and
        ``on_tunnels`` as :meth:`read_l2tp`.

        The common case (20-octet IPv4 header, not a fragment, the one-lookup data header,
        the session's own source and our address, a free transmit-ring slot) is handled
        inline with one unpack of the slot's headers; every other slot goes through
        :meth:`_l2tp_ring_slot`.
        """
        m = ring.map
        fs = ring.frame_size
        nr = ring.frame_nr
        idx = ring.index
        down8 = self._down8
        unpack_meta = _TP2_STATUS_SNAP_MAC.unpack_from
        unpack_ip = _RING_IPUDP.unpack_from
        pack_slot = _TX_SLOT_PFX.pack_into
        pack_vslot = _TX_SLOT_VNET_PFX.pack_into
        slot = self._l2tp_ring_slot
        seen: set[int] = set()
        seen_add = seen.add
        last_tunnel = -1
        # the transmit ring in use, its state kept in locals (written back before any other
        # path may use the ring, and at the end)
        cur: TxRing | None = None
        tm: Any = None
        tidx = tfs = tnr = tmax = tpend = tvnet = 0
        read = 0
        limit = self.budget if budget is None else budget
        while read < limit:
            # the run of slots the kernel has handed over, up to the budget and the ring's end:
            # their statuses read at once (before their contents), given back at once after
            o0 = idx * fs
            k = min(limit - read, nr - idx)
            ready = m[o0 : o0 + k * fs : fs].translate(_USER_BIT).find(0)
            if ready < 0:
                ready = k
            if not ready:
                break
            o1 = o0 + ready * fs
            for off in range(o0, o1, fs):
                status, snap, mac = unpack_meta(m, off)
                if status > 255:  # flags beyond the low octet (given back below)
                    m[off + 1 : off + 4] = b"\0\0\0"
                base = off + mac
                vihl, frag, src, ulen, key = unpack_ip(m, base + 14)
                entry = down8.get(key)
                if (
                    entry is not None
                    and vihl == 0x45
                    and not status & 2  # TP_STATUS_COPY
                    and not frag & 0x3FFF
                    and 16 <= ulen <= snap - 34
                    and src == entry.ring_src
                ):
                    tx = entry.eth_tx
                    if tx is not cur:
                        if cur is not None:
                            cur.index = tidx
                            cur.pending += tpend
                            tpend = 0
                        cur = tx
                        if tx is not None:
                            tm, tidx, tfs, tnr = tx.map, tx.index, tx.frame_size, tx.frame_nr
                            tvnet = tx.vnet
                            tmax = tx.data_max - 20 - tvnet
                    length = ulen - 16
                    toff = tidx * tfs
                    prefix = entry.eth_prefix
                    if (
                        tx is not None
                        and prefix is not None
                        and length <= tmax
                        and not tm[toff] & 7
                    ):
                        tunnel = entry.tunnel_id
                        if tunnel != last_tunnel:
                            seen_add(tunnel)
                            last_tunnel = tunnel
                        c = entry.c
                        c[2] += length
                        c[3] += 1
                        # the kernel reads a TX slot only during our own send: order is free;
                        # the PPP frame goes after the slot header (TX_DATA), the
                        # virtio_net_hdr if the ring has one, and the PPPoE header (20)
                        if tvnet:
                            pack_vslot(
                                tm, toff, 1, length + 30, length + 20, prefix, length >> 8,
                                length & 255,
                            )  # fmt: skip
                            tm[toff + 62 : toff + 62 + length] = m[base + 50 : base + 50 + length]
                        else:
                            pack_slot(tm, toff, 1, length + 20, prefix, length >> 8, length & 255)
                            tm[toff + 52 : toff + 52 + length] = m[base + 50 : base + 50 + length]
                        tidx += 1
                        if tidx == tnr:
                            tidx = 0
                        tpend += 1
                        continue
                if cur is not None:
                    cur.index = tidx
                    cur.pending += tpend
                    tpend = 0
                    cur = None
                slot(ring, off, seen)
                last_tunnel = -1
            m[o0:o1:fs] = bytes(ready)  # TP_STATUS_KERNEL: the slots go back to the kernel
            read += ready
            idx += ready
            if idx == nr:
                idx = 0
            if ready < k:
                break
        if cur is not None:
            cur.index = tidx
            cur.pending += tpend
        ring.index = idx
        if self._tx_rings:
            self._flush_tx()
        if seen and on_tunnels is not None:
            try:
                on_tunnels(seen)
            except Exception:
                self.counters["callback_errors"] += 1
        return read

    def _l2tp_ring_slot(self, ring: PacketRing, off: int, seen: set[int]) -> None:
        """One slot of the L2TP ring the inline path of :meth:`read_l2tp_ring` did not take:
        an IPv4 header with options, a fragment, a frame longer than the slot, a truncated or
        spoofed datagram, other data header bits, a full transmit ring."""
        m = ring.map
        counters = self.counters
        status, _, snap, mac = _TP2_HDR.unpack_from(m, off)
        base = off + mac
        u = base + 14 + ((m[base + 14] & 15) << 2)  # the UDP header
        a = u + 8  # the L2TP header
        n = ((m[u + 4] << 8) | m[u + 5]) - 8
        fragment = status & TP_STATUS_COPY or m[base + 20] & 0x3F or m[base + 21]
        if not fragment and (n < 1 or a + n > base + snap):
            counters["truncated_frames"] += 1
            return
        if fragment:  # longer than a slot (the whole frame is queued), or a fragment
            self._l2tp_slow(ring, status, m[base : base + snap])
            return
        entry = self._down8.get(m[a : a + 8]) if n >= 8 else None
        if entry is None:  # header bits, no FF 03, unknown: the general parser
            self._buf[_HEADROOM : _HEADROOM + n] = m[a : a + n]
            self._downstream_at(n, m[base + 26 : base + 30] + m[u : u + 2])
            return
        if m[base + 26 : base + 30] + m[u : u + 2] != entry.src:
            counters["spoofed_downstream"] += 1
            return
        seen.add(entry.tunnel_id)
        length = n - 8
        self._buf[28 : 28 + length] = m[a + 8 : a + n]
        self._deliver(entry, 28, 28 + length)

    def _l2tp_slow(self, ring: PacketRing, status: int, frame: bytes) -> None:
        """A ring frame the fast loop does not take: a fragment (reassembled here; the UDP
        socket drops data messages even when the kernel reassembled them) or a frame longer
        than a slot (read whole from the socket queue)."""
        counters = self.counters
        if status & TP_STATUS_COPY:
            try:
                frame = ring.sock.recv(65535)
            except OSError:
                counters["read_errors"] += 1
                return
        ip = frame[14:]
        if len(ip) < 20:
            counters["malformed_downstream"] += 1
            return
        ip = ip[: int.from_bytes(ip[2:4], "big")]
        if ip[6] & 0x3F or ip[7]:
            counters["fragments"] += 1
            udp = self._reasm.add(ip)
            if udp is None:
                return
            counters["reassembled"] += 1
        else:
            udp = ip[(ip[0] & 15) * 4 :]
        if len(udp) < 8 or int.from_bytes(udp[2:4], "big") != self._l2tp_port:
            return  # another port's fragments
        datagram = udp[8 : int.from_bytes(udp[4:6], "big")]
        n = len(datagram)
        if not n or datagram[0] & 0x80:
            return  # a control message: the UDP socket has it
        if n > len(self._buf) - _HEADROOM:
            counters["malformed_downstream"] += 1
            return
        self._buf[_HEADROOM : _HEADROOM + n] = datagram
        self._downstream_at(n, ip[12:16] + udp[0:2])

    def open_l2tp_ring(self, usock: Any) -> PacketRing | None:
        """Split the L2TP port of ``usock`` (a UDP socket bound to one IPv4 address) between an
        AF_PACKET receive ring for data messages and the socket for the rest (root).

        The ring socket (all interfaces, ETH_P_IP) gets :func:`l2tp_ring_filter`, the UDP
        socket :func:`l2tp_socket_filter` once the ring is mapped: data messages (fragmented
        or not) come through the ring, control messages through the socket. The ring sees
        packets before netfilter's INPUT hook and before the UDP checksum is checked. None (and
        nothing changed) when the socket is not bound to a unicast IPv4 address or the kernel
        refuses.
        """
        try:
            addr, port = usock.getsockname()[:2]
            if usock.family != socket.AF_INET or addr in ("0.0.0.0", ""):
                return None
        except (OSError, AttributeError, ValueError):
            return None
        try:
            rsock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        except OSError:
            return None
        try:
            rsock.setblocking(False)
            attach_filter(rsock, l2tp_ring_filter(addr, port))
            _drain(rsock)  # what arrived before the filter
            pring = PacketRing(rsock, reserve=0)
            _drain(rsock)  # what the filter let in before the ring
            attach_filter(usock, l2tp_socket_filter())
        except (OSError, ValueError):
            detach_filter(usock)
            rsock.close()
            return None
        self._filtered.append(usock)
        self._l2tp_port = int(port)
        self.set_l2tp_address(str(addr))
        self._own_socks.append(rsock)
        self._l2tp_ring = pring
        return pring

    # -- wiring into the Twisted adapters ----------------------------------------------------
    def install(
        self,
        raw_port: Any,
        l2tp_adapter: Any,
        *,
        ring: bool = True,
        tx_ring: bool = True,
        l2tp_ring: bool = True,
        direct: bool = False,
    ) -> None:
        """Take over the hot reads of a started ``RawEthernetPort`` and ``L2tpUdpAdapter``.

        For every PPPoE session socket of ``raw_port`` the reader's ``doRead`` becomes
        :meth:`read_ethernet` (unspliced frames go through the port's own frame handler, then
        its ``flush``); the L2TP UDP port's ``doRead`` becomes :meth:`read_l2tp` with control
        messages handed to the adapter's ``datagramReceived``. Sends use the same sockets.
        With ``ring`` (default) each session socket gets a :class:`PacketRing` (TPACKET_V2
        PACKET_RX_RING) and is read without a system call per frame; if the kernel refuses the
        ring the socket is read with ``recv_into``. With ``tx_ring`` (default) subscriber-bound
        frames, and direct-egress datagrams (:meth:`set_egress`), are written into a
        :class:`~broker.dataplane.rings.TxRing` on a send-only AF_PACKET socket per interface
        and sent with one system call per batch. With ``l2tp_ring`` (default) and an L2TP socket
        bound to one IPv4 address, data messages are read from an AF_PACKET receive ring
        (:meth:`open_l2tp_ring`, registered with the adapter's reactor) and only control
        messages reach the UDP socket. Every ring the kernel refuses (no CAP_NET_RAW, say) is
        skipped: the socket paths stay. Either adapter may be None. :meth:`uninstall` restores
        the original readers. ``features`` tells what was installed.

        With ``direct`` (opt-in: it skips netfilter and IPsec policies on the way out, see
        :class:`DirectPath`) every LNS gets a direct layer-2 path when its first session is
        attached, found with ``egress_lookup`` (:func:`linux_egress`: the kernel's route and
        neighbour entry, a blocking look-up of a few milliseconds once per LNS); an LNS without
        one (no resolved neighbour yet, not Ethernet) is asked again a minute later.
        """
        self.tx_ring = tx_ring
        self._reactor = getattr(l2tp_adapter, "reactor", None) or getattr(raw_port, "reactor", None)
        if l2tp_adapter is not None and getattr(l2tp_adapter, "listening", None) is not None:
            port = l2tp_adapter.listening
            usock = port.socket
            self.bind_l2tp(usock)
            with contextlib.suppress(OSError, AttributeError, ValueError, TypeError):
                host, lport = usock.getsockname()[:2]
                self._local = (str(host), int(lport))
            on_control = self._control_to(l2tp_adapter)
            on_tunnels = self._activity_to(l2tp_adapter)

            def read_udp() -> None:
                self.read_l2tp(usock, on_control, None, on_tunnels)

            self._hook(port, read_udp)
            reactor = getattr(l2tp_adapter, "reactor", None)
            if l2tp_ring and reactor is not None:
                pring_l2tp = self.open_l2tp_ring(usock)
                if pring_l2tp is not None:
                    ring_l2tp = pring_l2tp

                    def read_l2tp_ring() -> None:
                        self.read_l2tp_ring(ring_l2tp, on_tunnels)

                    self._l2tp_reader = _RingReader(pring_l2tp.sock, read_l2tp_ring)
                    reactor.addReader(self._l2tp_reader)
                    self._l2tp_reactor = reactor
        if raw_port is not None:
            for (ifname, ethertype), reader in list(raw_port._readers.items()):
                if ethertype != ETH_P_PPP_SES:
                    continue
                self.bind_ethernet(ifname, reader.sock, bytes(raw_port.local_mac[ifname]))
                if tx_ring and ifname not in self._eth_tx:
                    self._open_eth_tx(ifname)
                pring: PacketRing | None = None
                if ring:
                    try:
                        pring = PacketRing(reader.sock)
                    except (OSError, ValueError):
                        pring = None
                    else:
                        self._rings.append(pring)
                self._hook(reader, self._ethernet_reader(raw_port, reader, pring))
        if direct:
            self.auto_direct = True
            for peer in {entry.peer for entry in self._by_call.values()}:
                if peer not in self._direct:
                    self._find_egress(peer)

    @staticmethod
    def _activity_to(adapter: Any) -> Callable[[set[int]], None] | None:
        """The adapter's data-activity hook (its engine's ``note_data_received``), if any."""
        note = getattr(adapter, "_note_data", None)
        reactor = getattr(adapter, "reactor", None)
        if note is None or reactor is None:
            return None

        def activity(tunnels: set[int]) -> None:
            now = reactor.seconds()
            for tunnel_id in tunnels:
                note(tunnel_id, now)

        return activity

    @staticmethod
    def _control_to(adapter: Any) -> Callable[[bytes, Any], None]:
        def control(data: bytes, addr: Any) -> None:
            adapter.datagramReceived(data, (str(addr[0]), int(addr[1])))

        return control

    def _ethernet_reader(
        self, raw_port: Any, reader: Any, ring: PacketRing | None
    ) -> Callable[[], None]:
        pending: list[bytes] = []
        ifname, sock = reader.interface, reader.sock

        def read() -> None:
            if ring is not None:
                self.read_ring(ifname, ring, pending.append)
            else:
                self.read_ethernet(ifname, sock, pending.append)
            if not pending:
                return
            frames = pending[:]
            pending.clear()
            for frame in frames:
                raw_port._count("rx_frames")
                try:
                    raw_port._frame(reader, frame)
                except Exception:
                    self.counters["callback_errors"] += 1
            try:
                raw_port.flush()
            except Exception:
                self.counters["callback_errors"] += 1

        return read

    def _hook(self, target: Any, do_read: Callable[[], None]) -> None:
        self._hooks.append((target, target.__dict__.get("doRead")))
        target.doRead = do_read

    def uninstall(self) -> None:
        """Give the adapters their own ``doRead`` back, release rings and direct paths; sends
        use the injected writers again."""
        for target, previous in reversed(self._hooks):
            if previous is None:
                target.__dict__.pop("doRead", None)
            else:
                target.doRead = previous
        self._hooks.clear()
        if self._l2tp_reader is not None:
            with contextlib.suppress(Exception):
                self._l2tp_reactor.removeReader(self._l2tp_reader)
            self._l2tp_reader = None
        for usock in self._filtered:
            detach_filter(usock)
        self._filtered.clear()
        if self._l2tp_ring is not None:
            self._l2tp_ring.close()
            self._l2tp_ring = None
        for interface in list(self._eth_tx):
            self.bind_ethernet_tx(interface, None)
        for tx in self._tx_rings:
            with contextlib.suppress(OSError):
                tx.close()
        self._tx_rings.clear()
        for pring in self._rings:
            pring.close()
        self._rings.clear()
        for entry in self._by_call.values():
            entry.direct = None
            entry.eth_sock = None
        self._direct.clear()
        for sock in self._own_socks:
            with contextlib.suppress(OSError):
                sock.close()
        self._own_socks.clear()
        self._l2tp_sock = None
        self._eth_socks.clear()
        self.set_l2tp_address(None)
        self.auto_direct = False
        self._egress_tried.clear()
        if self._flush_call is not None:
            with contextlib.suppress(Exception):
                self._flush_call.cancel()
            self._flush_call = None
        self._reactor = None
        self._egress_tx.clear()
        self._egress_socks.clear()
