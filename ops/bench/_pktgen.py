"""Packet generator for the splice benchmark: pre-built frames on a PACKET_TX_RING (root).

The frames are written once into every slot of a TPACKET_V2 transmit ring
(:class:`broker.dataplane.rings.TxRing`) on an AF_PACKET socket bound to the generator's veth;
each round marks every slot TP_STATUS_SEND_REQUEST with one strided write and has the kernel
send them all with one blocking ``send`` (which returns once every frame has been handed on
and its slot is free again). No Python work per packet, no UDP socket: one core offers
several times what one Python ``send`` per packet does.

- :func:`pppoe_frames`: PPPoE session frames (RFC 2516 section 4) for the upstream direction;
- :func:`l2tp_frames`: whole Ethernet/IPv4/UDP frames carrying L2TP data messages
  (RFC 2661 section 3.1, ``00 02 tunnel session FF 03`` + PPP) for the downstream direction,
  sent from the LNS side's interface: the broker's IP stack and its AF_PACKET ring see them
  as datagrams from the LNS. The UDP checksum is 0 (none, RFC 768), the IPv4 one is valid.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

from broker.dataplane.rings import TX_DATA, TxRing, open_packet_socket, vnet_linear

SO_SNDBUFFORCE = 32
SO_SNDBUF_BYTES = 32 * 1024 * 1024
_IPV4 = struct.Struct("!BBHHHBBH4s4s")


def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pppoe_frames(
    dst_mac: bytes, src_mac: bytes, session_ids: Sequence[int], ppp: bytes
) -> list[bytes]:
    """One PPPoE session frame per session id (Ethernet dst/src, 0x8864, VER/TYPE 0x11)."""
    return [
        dst_mac + src_mac + b"\x88\x64\x11\x00" + sid.to_bytes(2, "big")
        + len(ppp).to_bytes(2, "big") + ppp
        for sid in session_ids
    ]  # fmt: skip


def l2tp_frames(
    dst_mac: bytes,
    src_mac: bytes,
    src: tuple[str, int],
    dst: tuple[str, int],
    tunnel_id: int,
    session_ids: Sequence[int],
    ppp: bytes,
) -> list[bytes]:
    """One Ethernet/IPv4/UDP frame per session: an L2TP data message (no L/S/O bits, FF 03)."""
    out = []
    for i, session_id in enumerate(session_ids):
        l2tp = b"\x00\x02" + struct.pack("!HH", tunnel_id, session_id) + b"\xff\x03" + ppp
        udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(l2tp), 0)
        fields = [0x45, 0, 28 + len(l2tp), i, 0x4000, 64, 17, 0]
        addrs = [socket.inet_aton(src[0]), socket.inet_aton(dst[0])]
        hdr = _IPV4.pack(*fields, *addrs)
        fields[7] = ipv4_checksum(hdr)
        out.append(dst_mac + src_mac + b"\x08\x00" + _IPV4.pack(*fields, *addrs) + udp + l2tp)
    return out


def open_ring(interface: str, frames: Sequence[bytes], frame_nr: int = 4096) -> TxRing:
    """A blocking send-only AF_PACKET socket on ``interface`` with a transmit ring whose
    slots hold ``frames`` (cycled) and their lengths, every slot available. Each frame follows
    a virtio_net_hdr naming it whole (:func:`~broker.dataplane.rings.vnet_linear`): the kernel
    copies it into the socket buffer, so the veth need not copy ring pages again."""
    sock = open_packet_socket(interface, vnet_hdr=True)
    sock.setblocking(True)
    sock.settimeout(None)
    try:  # every frame of a round in flight at once
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, SO_SNDBUF_BYTES)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SO_SNDBUF_BYTES)
    size = max(len(f) for f in frames) + 10
    frame_size = 2048 if size + TX_DATA <= 2048 else 4096
    tx = TxRing(sock, frame_size, frame_nr, qdisc_bypass=True, vnet_hdr=True)
    m = tx.map
    for i in range(tx.frame_nr):
        data = vnet_linear(len(frames[i % len(frames)])) + frames[i % len(frames)]
        off = i * tx.frame_size
        m[off + TX_DATA : off + TX_DATA + len(data)] = data
        struct.pack_into("=II", m, off, 0, len(data))  # AVAILABLE, tp_len
    return tx


def run(tx: TxRing, rounds: int = 0) -> int:
    """Send every slot, round after round (forever when ``rounds`` is 0); octets the kernel
    took (the interface's counters say what went out)."""
    m = tx.map
    fs, nr = tx.frame_size, tx.frame_nr
    request = b"\x01" * nr  # the low octet of tp_status: TP_STATUS_SEND_REQUEST
    send = tx.sock.send
    sent = done = 0
    while not rounds or done < rounds:
        done += 1
        # slots the kernel has not given back yet stay as they are (it sends them later)
        status = m[0 : nr * fs : fs]
        if status.count(0) == nr:
            m[0 : nr * fs : fs] = request
        else:
            for i, st in enumerate(status):
                if st == 0:
                    m[i * fs] = 1
        try:
            sent += send(b"")
        except OSError:  # ENOBUFS when the peer's queues are full: try again
            continue
    return sent
