"""A tiny libpcap file reader/writer for golden-vector tests (classic pcap, Ethernet only)."""

from __future__ import annotations

import struct
from pathlib import Path

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1


def read_pcap(path: str | Path) -> list[tuple[float, bytes]]:
    """``[(timestamp, frame bytes), ...]`` from a classic pcap file of either byte order."""
    data = Path(path).read_bytes()
    for endian in ("<", ">"):
        (magic,) = struct.unpack_from(endian + "I", data, 0)
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    scale = 1e-6 if magic == _MAGIC_US else 1e-9
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet")
    frames = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _origlen = struct.unpack_from(endian + "IIII", data, pos)
        pos += 16
        frames.append((sec + frac * scale, data[pos : pos + caplen]))
        pos += caplen
    return frames


def write_pcap(path: str | Path, frames: list[tuple[float, bytes]]) -> None:
    out = bytearray(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for ts, frame in frames:
        sec = int(ts)
        out += struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame))
        out += frame
    Path(path).write_bytes(bytes(out))
