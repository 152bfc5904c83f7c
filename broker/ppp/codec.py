"""PPP frame and control packet codecs: protocol field, LCP/NCP packets and options, PAP, CHAP.

RFC 1661 sections 2 (protocol field), 5 (packet format) and 6 (option format); RFC 1334
section 2.2 (PAP packets); RFC 1994 section 4 (CHAP packets); RFC 1332 section 3 (IPCP
options). Frames here carry the 2-octet protocol field first and no HDLC address/control
octets (as in PPPoE, RFC 2516 section 7). Every length is checked; bad input raises
:class:`~broker.wire.RemoteProtocolError`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from broker.ppp.constants import IpcpOption, LcpOption
from broker.wire import Buffer, RemoteProtocolError

_HDR = struct.Struct("!BBH")
_PROTO = struct.Struct("!H")


def split_frame(ppp: bytes) -> tuple[int, bytes]:
    """Return (protocol, information) of a PPP frame that starts with the protocol field."""
    if len(ppp) < 2:
        raise RemoteProtocolError("PPP frame shorter than its protocol field")
    proto = (ppp[0] << 8) | ppp[1]
    if proto & 0x0100 or not proto & 0x0001:
        # RFC 1661 section 2: the least significant bit of the least significant octet is 1
        # and of the most significant octet 0.
        raise RemoteProtocolError(f"invalid PPP protocol field 0x{proto:04x}")
    return proto, ppp[2:]


def build_frame(protocol: int, information: bytes) -> bytes:
    return _PROTO.pack(protocol) + information


@dataclass(frozen=True, slots=True)
class ControlPacket:
    """An LCP/NCP/PAP/CHAP packet: Code, Identifier, Length (implied) and Data."""

    code: int
    identifier: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _HDR.pack(self.code, self.identifier, 4 + len(self.data)) + self.data


def decode_control(payload: bytes) -> ControlPacket:
    """Decode Code/Identifier/Length/Data; octets past Length are padding (RFC 1661 5)."""
    if len(payload) < 4:
        raise RemoteProtocolError(f"control packet of {len(payload)} octets, header needs 4")
    code, ident, length = _HDR.unpack_from(payload)
    if length < 4:
        raise RemoteProtocolError(f"control packet length {length} < 4")
    if length > len(payload):
        raise RemoteProtocolError(f"control packet length {length} overruns {len(payload)}")
    return ControlPacket(code, ident, payload[4:length])


def encode_control(protocol: int, code: int, identifier: int, data: bytes = b"") -> bytes:
    """A whole PPP frame (protocol field first) holding one control packet."""
    return _PROTO.pack(protocol) + _HDR.pack(code, identifier, 4 + len(data)) + data


# -- options (RFC 1661 section 6) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One Configuration Option: Type and Data (Length is implied: 2 + len(data))."""

    type: int
    data: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.type, 2 + len(self.data))) + self.data


@dataclass(frozen=True, slots=True)
class OptionSize:
    """Allowed length of an option's data for a known type (max None: unbounded)."""

    minimum: int
    maximum: int | None


#: LCP option registry: data sizes per type (RFC 1661 section 6, RFC 1662 section 7.1).
LCP_OPTIONS: Mapping[int, OptionSize] = {
    LcpOption.MRU: OptionSize(2, 2),
    LcpOption.ACCM: OptionSize(4, 4),
    LcpOption.AUTH_PROTOCOL: OptionSize(2, None),
    LcpOption.QUALITY_PROTOCOL: OptionSize(2, None),
    LcpOption.MAGIC_NUMBER: OptionSize(4, 4),
    LcpOption.PFC: OptionSize(0, 0),
    LcpOption.ACFC: OptionSize(0, 0),
}

#: IPCP option registry (RFC 1332 section 3, RFC 1877 section 1).
IPCP_OPTIONS: Mapping[int, OptionSize] = {
    IpcpOption.IP_ADDRESSES: OptionSize(8, 8),
    IpcpOption.IP_COMPRESSION: OptionSize(2, None),
    IpcpOption.IP_ADDRESS: OptionSize(4, 4),
    IpcpOption.PRIMARY_DNS: OptionSize(4, 4),
    IpcpOption.PRIMARY_NBNS: OptionSize(4, 4),
    IpcpOption.SECONDARY_DNS: OptionSize(4, 4),
    IpcpOption.SECONDARY_NBNS: OptionSize(4, 4),
}


def decode_options(data: bytes, registry: Mapping[int, OptionSize]) -> tuple[Option, ...]:
    """Decode an option list with one loop; known types are size-checked by ``registry``.

    Unknown types are returned as they are (the automaton Configure-Rejects them).
    """
    buf = Buffer(data)
    out: list[Option] = []
    while not buf.eof():
        kind = buf.pull_uint8()
        length = buf.pull_uint8()
        if length < 2:
            raise RemoteProtocolError(f"option {kind} has length {length} < 2")
        value = buf.pull_bytes(length - 2)
        size = registry.get(kind)
        if size is not None and (
            len(value) < size.minimum or (size.maximum is not None and len(value) > size.maximum)
        ):
            raise RemoteProtocolError(f"option {kind} has bad length {length}")
        out.append(Option(kind, value))
    return tuple(out)


def encode_options(options: Iterable[Option]) -> bytes:
    return b"".join(o.encode() for o in options)


def u16_option(kind: int, value: int) -> Option:
    return Option(kind, _PROTO.pack(value))


def u32_option(kind: int, value: int) -> Option:
    return Option(kind, value.to_bytes(4, "big"))


def option_u16(option: Option) -> int:
    return (option.data[0] << 8) | option.data[1]


def option_u32(option: Option) -> int:
    return int.from_bytes(option.data[:4], "big")


# -- PAP (RFC 1334 section 2.2) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PapRequest:
    peer_id: bytes
    password: bytes

    def encode(self) -> bytes:
        return (
            bytes((len(self.peer_id),))
            + self.peer_id
            + bytes((len(self.password),))
            + self.password
        )


def decode_pap_request(data: bytes) -> PapRequest:
    buf = Buffer(data)
    peer_id = buf.pull_bytes(buf.pull_uint8())
    password = buf.pull_bytes(buf.pull_uint8())
    return PapRequest(peer_id, password)


def encode_pap_message(message: bytes) -> bytes:
    """Data of an Authenticate-Ack/Nak: Msg-Length and Message (cut to 255 octets)."""
    message = message[:255]
    return bytes((len(message),)) + message


def decode_pap_message(data: bytes) -> bytes:
    if not data:  # some peers send Ack/Nak with no Msg-Length at all
        return b""
    buf = Buffer(data)
    return buf.pull_bytes(buf.pull_uint8())


# -- CHAP (RFC 1994 section 4.1) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChapValue:
    """Data of a Challenge or Response: Value-Size, Value, Name (rest of the packet)."""

    value: bytes
    name: bytes

    def encode(self) -> bytes:
        return bytes((len(self.value),)) + self.value + self.name


def decode_chap_value(data: bytes) -> ChapValue:
    buf = Buffer(data)
    size = buf.pull_uint8()
    if size == 0:
        raise RemoteProtocolError("CHAP Value-Size 0")
    value = buf.pull_bytes(size)
    return ChapValue(value, buf.pull_rest())
