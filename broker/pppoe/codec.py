"""PPPoE packet codecs: Discovery stage (RFC 2516 §4, §5) and Session stage (RFC 2516 §6).

A Discovery packet is the PPPoE header (VER/TYPE 0x11, CODE, SESSION_ID, LENGTH) and a list
of TAGs (TAG_TYPE, TAG_LENGTH, TAG_VALUE). Tags are kept as an ordered tuple of raw
:class:`Tag` values so a decoded packet re-encodes byte for byte; typed accessors sit on
:class:`DiscoveryPacket`. Tags are checked by one loop against the registry in
:mod:`broker.pppoe.tags` (length bounds per type); unknown tags are kept and otherwise
ignored (RFC 2516 Appendix A). Octets after LENGTH (Ethernet padding) are ignored.

Structural checks only live here (header, lengths, session-id rules per code); which tags a
server requires (Service-Name in PADI/PADR) is the engine's business.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from broker.pppoe.constants import HEADER_LEN, VER_TYPE, Code, TagType
from broker.pppoe.tags import TAG_REGISTRY, LineInfo, decode_line_info, decode_vendor_specific
from broker.wire import Buffer, LocalProtocolError, RemoteProtocolError

#: RFC 2516 §4: LENGTH is 16 bits.
_MAX_LENGTH = 0xFFFF
_DISCOVERY_CODES = frozenset(c for c in Code if c is not Code.SESSION)
#: precompiled: PPPoE header (VER/TYPE, CODE, SESSION_ID, LENGTH) and TAG header
_HEADER = struct.Struct("!BBHH")
_TAG_HEADER = struct.Struct("!HH")
_SESSION = int(Code.SESSION)


@dataclass(frozen=True, slots=True)
class Tag:
    """One TAG as it appeared on the wire (RFC 2516 Appendix A)."""

    type: int
    value: bytes = b""


@dataclass(frozen=True, slots=True)
class DiscoveryPacket:
    """A PPPoE Discovery packet (ethertype 0x8863), RFC 2516 §5."""

    code: Code
    session_id: int = 0
    tags: tuple[Tag, ...] = ()

    # -- typed views ---------------------------------------------------------------------
    def first(self, tag_type: int) -> bytes | None:
        for t in self.tags:
            if t.type == tag_type:
                return t.value
        return None

    def all(self, tag_type: int) -> list[bytes]:
        return [t.value for t in self.tags if t.type == tag_type]

    def count(self, tag_type: int) -> int:
        return sum(1 for t in self.tags if t.type == tag_type)

    @property
    def service_names(self) -> list[str]:
        return [_text(v) for v in self.all(TagType.SERVICE_NAME)]

    @property
    def ac_name(self) -> str | None:
        v = self.first(TagType.AC_NAME)
        return None if v is None else _text(v)

    @property
    def host_uniq(self) -> bytes | None:
        return self.first(TagType.HOST_UNIQ)

    @property
    def ac_cookie(self) -> bytes | None:
        return self.first(TagType.AC_COOKIE)

    @property
    def relay_session_id(self) -> bytes | None:
        return self.first(TagType.RELAY_SESSION_ID)

    @property
    def max_payload(self) -> int | None:
        v = self.first(TagType.PPP_MAX_PAYLOAD)
        return None if v is None else int.from_bytes(v, "big")

    @property
    def errors(self) -> list[tuple[TagType, str]]:
        """Service-Name-Error, AC-System-Error and Generic-Error tags with their text."""
        kinds = (TagType.SERVICE_NAME_ERROR, TagType.AC_SYSTEM_ERROR, TagType.GENERIC_ERROR)
        return [(TagType(t.type), _text(t.value)) for t in self.tags if t.type in kinds]

    @property
    def vendor_specific(self) -> list[tuple[int, bytes]]:
        return [decode_vendor_specific(v) for v in self.all(TagType.VENDOR_SPECIFIC)]

    @property
    def line_info(self) -> LineInfo | None:
        """DSL Forum (TR-101) line identification added by an intermediate agent, if any."""
        return decode_line_info(self.vendor_specific)


def _text(value: bytes) -> str:
    # RFC 2516: UTF-8 strings, not NUL-terminated. Be lenient: a bad octet is not fatal.
    return value.decode("utf-8", "replace")


def encode_discovery(packet: DiscoveryPacket) -> bytes:
    """PPPoE header + tags (what follows the Ethernet header)."""
    if packet.code not in _DISCOVERY_CODES:
        raise LocalProtocolError(f"not a discovery code: {packet.code!r}")
    if not 0 <= packet.session_id <= 0xFFFF:
        raise LocalProtocolError(f"session id out of range: {packet.session_id}")
    body = bytearray()
    for tag in packet.tags:
        if not 0 <= tag.type <= 0xFFFF or len(tag.value) > 0xFFFF:
            raise LocalProtocolError(f"tag 0x{tag.type:04x} does not fit")
        body += _TAG_HEADER.pack(tag.type, len(tag.value))
        body += tag.value
    if len(body) > _MAX_LENGTH:
        raise LocalProtocolError("discovery payload longer than 65535 octets")
    return _HEADER.pack(VER_TYPE, packet.code, packet.session_id, len(body)) + body


def _pull_header(buf: Buffer) -> tuple[int, int, Buffer]:
    ver_type = buf.pull_uint8()
    if ver_type != VER_TYPE:
        raise RemoteProtocolError(f"PPPoE VER/TYPE 0x{ver_type:02x}, expected 0x11")
    code = buf.pull_uint8()
    session_id = buf.pull_uint16()
    length = buf.pull_uint16()
    if length > buf.remaining:
        raise RemoteProtocolError(f"PPPoE LENGTH {length} overruns the {buf.remaining} octets")
    return code, session_id, buf.sub(length)


def decode_discovery(payload: bytes) -> DiscoveryPacket:
    """Decode a Discovery packet; raises :class:`RemoteProtocolError` on anything malformed."""
    code_raw, session_id, body = _pull_header(Buffer(payload))
    if code_raw == Code.SESSION or code_raw not in _DISCOVERY_CODES:
        raise RemoteProtocolError(f"unknown PPPoE discovery code 0x{code_raw:02x}")
    code = Code(code_raw)
    # RFC 2516 §5.1-5.3: PADI, PADO and PADR carry SESSION_ID 0; §5.5: PADT names a session.
    if code in (Code.PADI, Code.PADO, Code.PADR) and session_id != 0:
        raise RemoteProtocolError(f"{code.name} with session id 0x{session_id:04x}")
    if code is Code.PADT and session_id == 0:
        raise RemoteProtocolError("PADT with session id 0")
    tags: list[Tag] = []
    while not body.eof():
        tag_type = body.pull_uint16()
        length = body.pull_uint16()
        value = body.pull_bytes(length)
        spec = TAG_REGISTRY.get(tag_type)
        if spec is not None:
            if not spec.min_len <= length <= spec.max_len:
                raise RemoteProtocolError(
                    f"tag {spec.name} length {length} outside {spec.min_len}..{spec.max_len}"
                )
            if spec.check is not None:
                spec.check(value)
        tags.append(Tag(tag_type, value))
        if tag_type == TagType.END_OF_LIST:
            # RFC 2516 Appendix A: no further tags; anything after it is ignored.
            break
    return DiscoveryPacket(code, session_id, tuple(tags))


def encode_session_frame(session_id: int, ppp: bytes) -> bytes:
    """PPPoE session-stage header + PPP frame (RFC 2516 §6); ``ppp`` starts at the protocol."""
    if not 1 <= session_id <= 0xFFFF:
        raise LocalProtocolError(f"session id must be 1..65535, not {session_id}")
    if len(ppp) > _MAX_LENGTH:
        raise LocalProtocolError("PPP frame longer than 65535 octets")
    return _HEADER.pack(VER_TYPE, _SESSION, session_id, len(ppp)) + ppp


def decode_session_frame(payload: bytes) -> tuple[int, bytes]:
    """``(session_id, ppp)``; raises :class:`RemoteProtocolError` on a malformed frame."""
    code, session_id, body = _pull_header(Buffer(payload))
    if code != Code.SESSION:
        raise RemoteProtocolError(f"session-stage frame with code 0x{code:02x}")
    if session_id == 0:
        raise RemoteProtocolError("session-stage frame with session id 0")
    ppp = body.pull_rest()
    if len(ppp) < 2:
        raise RemoteProtocolError("session-stage frame without a PPP protocol field")
    return session_id, ppp


__all__ = [
    "HEADER_LEN",
    "DiscoveryPacket",
    "Tag",
    "decode_discovery",
    "decode_session_frame",
    "encode_discovery",
    "encode_session_frame",
]
