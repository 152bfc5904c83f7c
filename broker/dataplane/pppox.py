"""Linux PPPoX sockets and PPP channel ioctls, written with struct/fcntl/ctypes (no C extension).

The layouts mirror the kernel's uapi headers:

- ``linux/if_pppox.h``: ``struct sockaddr_pppox`` (PPPoE, RFC 2516: session id, peer MAC,
  device name; ``__packed``, 30 octets) and ``struct sockaddr_pppol2tp`` (L2TPv2, RFC 2661:
  UDP socket fd, peer address, tunnel and session ids both ways; ``__packed``, 38 octets);
- ``linux/ppp-ioctl.h``: PPPIOCGCHAN, PPPIOCATTCHAN, PPPIOCBRIDGECHAN (Linux 5.11+),
  PPPIOCUNBRIDGECHAN, PPPIOCGL2TPSTATS and ``struct pppol2tp_ioc_stats`` (72 octets);
- ``linux/if_pppol2tp.h``: the SOL_PPPOL2TP socket options (sequencing, RFC 2661 5.4).

Python's ``socket.connect`` does not know AF_PPPOX addresses, so :func:`connect_raw` calls
libc's ``connect(2)`` through ctypes with the packed address. Little-endian host fields
(``int``, ``pid_t``, ``sa_family``) use native order; ids in ``sockaddr_pppox`` are network
order (``sid_t`` is ``__be16``), the pppol2tp ids are host order (``__u16``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

__all__ = [
    "AF_PPPOX",
    "IFNAMSIZ",
    "PPPIOCATTCHAN",
    "PPPIOCBRIDGECHAN",
    "PPPIOCGCHAN",
    "PPPIOCGL2TPSTATS",
    "PPPIOCUNBRIDGECHAN",
    "SOCKADDR_PPPOL2TP",
    "SOCKADDR_PPPOX",
    "SOL_PPPOL2TP",
    "L2tpStats",
    "PppolL2tpOption",
    "PxProto",
    "attach_channel",
    "bridge_channels",
    "connect_raw",
    "get_channel",
    "get_l2tp_stats",
    "io",
    "ioc",
    "ior",
    "iow",
    "pack_sockaddr_pppoe",
    "pack_sockaddr_pppol2tp",
    "unbridge_channel",
]

#: linux/socket.h
AF_PPPOX = 24
#: linux/if.h
IFNAMSIZ = 16
#: linux/socket.h (SOL_PPPOL2TP)
SOL_PPPOL2TP = 273


class PxProto(IntEnum):
    """linux/if_pppox.h protocol numbers for ``socket(AF_PPPOX, type, proto)``."""

    #: RFC 2516: PPP over Ethernet (SOCK_STREAM)
    OE = 0
    #: RFC 2661: PPP over L2TPv2 (SOCK_DGRAM)
    OL2TP = 1


class PppolL2tpOption(IntEnum):
    """linux/if_pppol2tp.h socket options (level SOL_PPPOL2TP)."""

    DEBUG = 1
    #: RFC 2661 5.4: drop data messages without sequence numbers
    RECVSEQ = 2
    #: RFC 2661 5.4: send Ns/Nr on data messages
    SENDSEQ = 3
    LNSMODE = 4
    REORDERTO = 5


# -- asm-generic/ioctl.h ---------------------------------------------------------------------
_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2


def ioc(direction: int, kind: str, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)`` from asm-generic/ioctl.h (x86, arm, ...)."""
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError("ioctl argument too large")
    return (
        (direction << _IOC_DIRSHIFT)
        | (ord(kind) << _IOC_TYPESHIFT)
        | (nr << _IOC_NRSHIFT)
        | (size << _IOC_SIZESHIFT)
    )


def io(kind: str, nr: int) -> int:
    return ioc(_IOC_NONE, kind, nr, 0)


def ior(kind: str, nr: int, size: int) -> int:
    return ioc(_IOC_READ, kind, nr, size)


def iow(kind: str, nr: int, size: int) -> int:
    return ioc(_IOC_WRITE, kind, nr, size)


_INT = struct.Struct("=i")
#: struct pppol2tp_ioc_stats: tunnel_id, session_id (__u16), using_ipsec:1 (in a __u32),
#: then eight __aligned_u64 counters.
_L2TP_STATS = struct.Struct("=HHI8Q")

#: linux/ppp-ioctl.h
PPPIOCGCHAN = ior("t", 55, _INT.size)
PPPIOCATTCHAN = iow("t", 56, _INT.size)
PPPIOCGL2TPSTATS = ior("t", 54, _L2TP_STATS.size)
PPPIOCBRIDGECHAN = iow("t", 53, _INT.size)
PPPIOCUNBRIDGECHAN = io("t", 52)

#: struct sockaddr_pppox (__packed): sa_family, sa_protocol (unsigned int), then the union
#: whose PPPoE member is struct pppoe_addr {sid (__be16), remote[ETH_ALEN], dev[IFNAMSIZ]}.
SOCKADDR_PPPOX = struct.Struct("=HI")
_PPPOE_ADDR = struct.Struct("!H6s16s")
#: struct sockaddr_pppol2tp (__packed): sa_family, sa_protocol, struct pppol2tp_addr {pid,
#: fd, struct sockaddr_in addr (16), s_tunnel, s_session, d_tunnel, d_session}.
SOCKADDR_PPPOL2TP = struct.Struct("=HIii16sHHHH")
_SOCKADDR_IN = struct.Struct("=H2s4s8x")  # sin_family (host order), sin_port, sin_addr, zero


def pack_sockaddr_pppoe(session_id: int, remote_mac: bytes, interface: str) -> bytes:
    """``struct sockaddr_pppox`` for a PPPoE session (30 octets)."""
    dev = interface.encode()
    if len(dev) >= IFNAMSIZ or not dev:
        raise ValueError(f"interface name {interface!r} is not 1..15 octets")
    if len(remote_mac) != 6:
        raise ValueError("peer MAC must be 6 octets")
    if not 0 < session_id < 0xFFFF:
        raise ValueError("PPPoE session id must be 1..0xfffe (RFC 2516 section 4)")
    return SOCKADDR_PPPOX.pack(AF_PPPOX, PxProto.OE) + _PPPOE_ADDR.pack(
        session_id, bytes(remote_mac), dev
    )


def pack_sockaddr_pppol2tp(
    *,
    fd: int,
    peer: tuple[str, int],
    tunnel_id: int,
    session_id: int,
    peer_tunnel_id: int,
    peer_session_id: int,
    pid: int = 0,
) -> bytes:
    """``struct sockaddr_pppol2tp`` (L2TPv2, IPv4 peer; 38 octets)."""
    for name, value in (
        ("tunnel_id", tunnel_id),
        ("session_id", session_id),
        ("peer_tunnel_id", peer_tunnel_id),
        ("peer_session_id", peer_session_id),
    ):
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"{name} out of range")
    addr = _SOCKADDR_IN.pack(
        socket.AF_INET, int(peer[1]).to_bytes(2, "big"), ipaddress.IPv4Address(peer[0]).packed
    )
    return SOCKADDR_PPPOL2TP.pack(
        AF_PPPOX,
        PxProto.OL2TP,
        pid,
        fd,
        addr,
        tunnel_id,
        session_id,
        peer_tunnel_id,
        peer_session_id,
    )


_libc: Any = None


def _connect_fn() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.connect.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
        _libc.connect.restype = ctypes.c_int
    return _libc.connect


def connect_raw(fd: int, address: bytes) -> None:
    """``connect(2)`` with a packed socket address; raises OSError with the errno."""
    rc = _connect_fn()(fd, address, len(address))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def get_channel(fd: int) -> int:
    """PPPIOCGCHAN: the PPP channel index of a connected PPPoX socket."""
    buf = bytearray(_INT.size)
    fcntl.ioctl(fd, PPPIOCGCHAN, buf, True)
    return int(_INT.unpack(buf)[0])


def attach_channel(ppp_fd: int, channel: int) -> None:
    """PPPIOCATTCHAN: attach an open /dev/ppp descriptor to a channel."""
    fcntl.ioctl(ppp_fd, PPPIOCATTCHAN, _INT.pack(channel))


def bridge_channels(ppp_fd: int, other_channel: int) -> None:
    """PPPIOCBRIDGECHAN: bridge the attached channel with ``other_channel`` (both ways)."""
    fcntl.ioctl(ppp_fd, PPPIOCBRIDGECHAN, _INT.pack(other_channel))


def unbridge_channel(ppp_fd: int) -> None:
    """PPPIOCUNBRIDGECHAN on the attached channel."""
    fcntl.ioctl(ppp_fd, PPPIOCUNBRIDGECHAN, 0)


@dataclass(frozen=True, slots=True)
class L2tpStats:
    """``struct pppol2tp_ioc_stats``: the kernel's counters of one session (or tunnel)."""

    tunnel_id: int
    session_id: int
    using_ipsec: bool
    tx_packets: int
    tx_bytes: int
    tx_errors: int
    rx_packets: int
    rx_bytes: int
    rx_seq_discards: int
    rx_oos_packets: int
    rx_errors: int

    @classmethod
    def unpack(cls, data: bytes) -> L2tpStats:
        t, s, flags, *c = _L2TP_STATS.unpack(data)
        return cls(t, s, bool(flags & 1), *c)

    def pack(self) -> bytes:
        return _L2TP_STATS.pack(
            self.tunnel_id,
            self.session_id,
            int(self.using_ipsec),
            self.tx_packets,
            self.tx_bytes,
            self.tx_errors,
            self.rx_packets,
            self.rx_bytes,
            self.rx_seq_discards,
            self.rx_oos_packets,
            self.rx_errors,
        )


def get_l2tp_stats(fd: int) -> L2tpStats:
    """PPPIOCGL2TPSTATS on a connected PPPoL2TP session socket."""
    buf = bytearray(_L2TP_STATS.size)
    fcntl.ioctl(fd, PPPIOCGL2TPSTATS, buf, True)
    return L2tpStats.unpack(bytes(buf))
