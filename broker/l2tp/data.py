"""L2TP data message header (RFC 2661 section 3.1) for the PPP splice.

Data messages have T=0; the L (Length), S (Ns/Nr), O (Offset Size + pad) and P (priority)
bits are optional. :func:`decode_data` returns the header and where the PPP frame starts;
:func:`split_data` also honours a Length field shorter than the datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from broker.l2tp.avps import MalformedHeader
from broker.l2tp.constants import L2TP_VERSION, HeaderFlag
from broker.wire import Buffer, BufferReadError, LocalProtocolError

# plain ints for the hot path (IntFlag arithmetic builds enum members: slow)
_T_BIT = int(HeaderFlag.TYPE)
_L_BIT = int(HeaderFlag.LENGTH)
_S_BIT = int(HeaderFlag.SEQUENCE)
_O_BIT = int(HeaderFlag.OFFSET)
_P_BIT = int(HeaderFlag.PRIORITY)
_VER_MASK = int(HeaderFlag.VERSION_MASK)


@dataclass(frozen=True, slots=True)
class DataHeader:
    tunnel_id: int
    session_id: int
    ns: int | None = None  #: present (with nr) when the S bit is set
    nr: int | None = None
    offset_pad: int = 0  #: Offset Size: octets of padding before the payload (O bit)
    priority: bool = False  #: P bit
    length: int | None = None  #: Length field (L bit), total octets of the message


def encode_data_header(
    tunnel_id: int,
    session_id: int,
    ns: int | None = None,
    nr: int | None = None,
    *,
    offset_pad: int = 0,
    priority: bool = False,
    payload_len: int | None = None,
) -> bytes:
    """The header to put before a PPP frame (with FF 03) in a data message.

    ``ns``/``nr`` go together (S bit); ``offset_pad`` > 0 adds the O bit, Offset Size and
    that many zero octets; ``payload_len`` adds the L bit and the total Length.
    """
    if (ns is None) != (nr is None):
        raise LocalProtocolError("data header: ns and nr go together")
    if not 0 <= offset_pad <= 0xFFFF:
        raise LocalProtocolError(f"offset pad {offset_pad} outside 0..65535")
    flags = L2TP_VERSION
    header_len = 6
    if payload_len is not None:
        flags |= _L_BIT
        header_len += 2
    if ns is not None:
        flags |= _S_BIT
        header_len += 4
    if offset_pad:
        flags |= _O_BIT
        header_len += 2 + offset_pad
    if priority:
        flags |= _P_BIT
    out = Buffer()
    try:
        out.push_uint16(flags)
        if payload_len is not None:
            out.push_uint16(header_len + payload_len)
        out.push_uint16(tunnel_id)
        out.push_uint16(session_id)
        if ns is not None and nr is not None:
            out.push_uint16(ns)
            out.push_uint16(nr)
        if offset_pad:
            out.push_uint16(offset_pad)
            out.push_bytes(bytes(offset_pad))
    except struct.error as exc:  # a field outside 16 bits
        raise LocalProtocolError(f"data header field out of range: {exc}") from exc
    return out.data()


def encode_data(header: DataHeader, payload: bytes) -> bytes:
    """Header and payload; the Length field (if ``header.length`` is not None) is computed."""
    return (
        encode_data_header(
            header.tunnel_id,
            header.session_id,
            header.ns,
            header.nr,
            offset_pad=header.offset_pad,
            priority=header.priority,
            payload_len=None if header.length is None else len(payload),
        )
        + payload
    )


def decode_data(data: bytes) -> tuple[DataHeader, int]:
    """(header, payload offset) of a data message; raises MalformedHeader if malformed."""
    buf = Buffer(data)
    if len(data) < 6:
        raise MalformedHeader(f"data message of {len(data)} octets, need >= 6")
    flags = buf.pull_uint16()
    if flags & _VER_MASK != L2TP_VERSION:
        raise MalformedHeader(f"L2TP version {flags & _VER_MASK}, expected 2")
    if flags & _T_BIT:
        raise MalformedHeader("control message (T=1) where a data message was expected")
    try:
        length = buf.pull_uint16() if flags & _L_BIT else None
        tunnel_id = buf.pull_uint16()
        session_id = buf.pull_uint16()
        ns = nr = None
        if flags & _S_BIT:
            ns = buf.pull_uint16()
            nr = buf.pull_uint16()
        offset_pad = 0
        if flags & _O_BIT:
            offset_pad = buf.pull_uint16()
            buf.skip(offset_pad)
    except BufferReadError as exc:  # the header announced more than was sent
        raise MalformedHeader(f"truncated data header: {exc}") from exc
    offset = buf.position
    if length is not None and not offset <= length <= len(data):
        raise MalformedHeader(f"data Length {length} outside [{offset}, {len(data)}]")
    header = DataHeader(tunnel_id, session_id, ns, nr, offset_pad, bool(flags & _P_BIT), length)
    return header, offset


def split_data(data: bytes) -> tuple[DataHeader, bytes]:
    """(header, payload), the payload cut at the Length field when present."""
    header, offset = decode_data(data)
    end = len(data) if header.length is None else header.length
    return header, data[offset:end]
