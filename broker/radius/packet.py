"""RADIUS packet codec: header, attribute walk, authenticators, password hiding.

Implements RFC 2865 section 3 (packet format, Request and Response Authenticators), 5 (attribute
format), 5.2 (User-Password hiding), 5.3 (CHAP-Password), 5.26 (Vendor-Specific); RFC 2866
section 3 and RFC 5176 section 3.5 (the MD5 Request Authenticator of Accounting, CoA and
Disconnect requests); RFC 3579 section 3.2 / RFC 2869 section 5.14 (Message-Authenticator,
HMAC-MD5 over the packet with the attribute zeroed); RFC 5997 (Status-Server).

Security rule (BlastRADIUS, CVE-2024-3596): :func:`verify_reply` checks the Response
Authenticator and requires a valid Message-Authenticator *before* anything looks at the code
of a reply to an Access-Request or Status-Server. Every Access-Request and Status-Server we
build carries Message-Authenticator as its first attribute.

Attributes are kept raw, in order, as ``(type, value)`` pairs; typed values are encoded and
decoded by pyrad through the project dictionary (:mod:`broker.radius.dictionary`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pyrad import tools as _pyrad_tools

from broker.radius.constants import (
    AUTHENTICATOR_LENGTH,
    HEADER_LENGTH,
    MAX_ATTRIBUTE_VALUE,
    MAX_PACKET_LENGTH,
    Attr,
    Code,
)
from broker.radius.dictionary import load_dictionary
from broker.wire import LocalProtocolError, RemoteProtocolError

__all__ = [
    "RadiusPacket",
    "attribute",
    "chap_password",
    "decode_attributes",
    "decode_packet",
    "decode_value",
    "decode_verified_reply",
    "encode_access_request",
    "encode_attributes",
    "encode_request",
    "encode_response",
    "hide_password",
    "message_authenticator",
    "parse_vendor_specific",
    "unhide_password",
    "vendor_attribute",
    "verify_access_request",
    "verify_accounting_request",
    "verify_coa_request",
    "verify_reply",
    "verify_request",
    "verify_response",
]

RawAttribute = tuple[int, bytes]
RandBytes = Callable[[int], bytes]

_HEADER = struct.Struct("!BBH16s")
_ZERO_AUTH = bytes(AUTHENTICATOR_LENGTH)
_ZERO_MA = bytes(16)
_MA_TYPE = int(Attr.MESSAGE_AUTHENTICATOR)
#: Codes whose Request Authenticator is random (RFC 2865 section 3, RFC 5997 section 3).
_RANDOM_AUTH_CODES = frozenset({Code.ACCESS_REQUEST, Code.STATUS_SERVER})
#: Codes whose Request Authenticator is an MD5 over the packet (RFC 2866 section 3,
#: RFC 5176 section 3.5).
_HASHED_AUTH_CODES = frozenset({Code.ACCOUNTING_REQUEST, Code.DISCONNECT_REQUEST, Code.COA_REQUEST})


@dataclass(frozen=True, slots=True)
class RadiusPacket:
    """A decoded packet: header fields and the raw attributes in wire order."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: tuple[RawAttribute, ...]

    def get(self, attr_type: int) -> bytes | None:
        """The first value of an attribute type, or ``None``."""
        for t, v in self.attributes:
            if t == attr_type:
                return v
        return None

    def get_all(self, attr_type: int) -> list[bytes]:
        return [v for t, v in self.attributes if t == attr_type]

    def vendor_attributes(self, vendor: int, vendor_type: int) -> list[bytes]:
        """Values of one vendor attribute across all Vendor-Specific attributes."""
        found: list[bytes] = []
        for t, v in self.attributes:
            if t != Attr.VENDOR_SPECIFIC:
                continue
            try:
                vid, subs = parse_vendor_specific(v)
            except RemoteProtocolError:
                continue
            if vid == vendor:
                found += [sv for st, sv in subs if st == vendor_type]
        return found

    def value(self, name: str) -> Any:
        """The first value of a dictionary attribute, decoded to its Python type (or None)."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[Any]:
        """All values of a dictionary attribute, decoded to Python types (pyrad)."""
        key = load_dictionary().attrindex.GetForward(name)
        if isinstance(key, tuple):
            raws = self.vendor_attributes(key[0], key[1])
        else:
            raws = self.get_all(key)
        return [decode_value(name, raw) for raw in raws]


# -- attribute walk ---------------------------------------------------------------------------


def _walk(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, bytes]]:
    """(type, value offset, value) for every attribute of ``data[start:end]`` (RFC 2865 5);
    an attribute shorter than 2 octets or running past ``end`` is a RemoteProtocolError.
    Indexes the bytes directly instead of a :class:`broker.wire.Buffer`: this runs for every
    RADIUS reply and the method calls were a tenth of a round trip's CPU."""
    if end is None:
        end = len(data)
    out: list[tuple[int, int, bytes]] = []
    append = out.append
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise RemoteProtocolError(f"attribute header truncated at offset {pos}")
        attr_type, length = data[pos], data[pos + 1]
        if length < 2:
            raise RemoteProtocolError(f"attribute {attr_type} has length {length} < 2")
        nxt = pos + length
        if nxt > end:
            raise RemoteProtocolError(f"attribute {attr_type} of {length} octets runs past the end")
        append((attr_type, pos + 2, data[pos + 2 : nxt]))
        pos = nxt
    return out


def decode_attributes(data: bytes) -> list[RawAttribute]:
    """Split an attribute area into ``(type, value)`` pairs (RFC 2865 section 5)."""
    return [(t, v) for t, _, v in _walk(data)]


def encode_attributes(attrs: Iterable[RawAttribute]) -> bytes:
    parts: list[bytes] = []
    append = parts.append
    for attr_type, value in attrs:
        n = len(value)
        if n > MAX_ATTRIBUTE_VALUE or not 0 <= attr_type <= 255:
            raise LocalProtocolError(
                f"attribute {attr_type} with {n} octets: type must be 0..255, value <= 253"
            )
        append(bytes((attr_type, n + 2)) + value)
    return b"".join(parts)


def _parse_header(raw: bytes) -> tuple[int, int, int, bytes]:
    if len(raw) < HEADER_LENGTH:
        raise RemoteProtocolError(f"RADIUS packet of {len(raw)} octets is shorter than 20")
    code, identifier, length, auth = _HEADER.unpack_from(raw)
    if length < HEADER_LENGTH or length > MAX_PACKET_LENGTH:
        raise RemoteProtocolError(f"RADIUS Length {length} outside 20..4096")
    if length > len(raw):
        raise RemoteProtocolError(f"RADIUS Length {length} exceeds the {len(raw)} octets received")
    return code, identifier, length, auth


def _split(raw: bytes) -> tuple[int, int, int, bytes, list[tuple[int, int, bytes]]]:
    code, identifier, length, auth = _parse_header(raw)
    return code, identifier, length, auth, _walk(raw, HEADER_LENGTH, length)


def decode_packet(raw: bytes) -> RadiusPacket:
    """Decode a packet; octets beyond Length are padding and ignored (RFC 2865 section 3).

    Raises :class:`RemoteProtocolError` on a short packet or a malformed attribute.
    """
    code, identifier, _, auth, attrs = _split(raw)
    return RadiusPacket(code, identifier, auth, tuple((t, v) for t, _, v in attrs))


# -- typed values through the dictionary ------------------------------------------------------


def vendor_attribute(vendor: int, vendor_type: int, value: bytes) -> RawAttribute:
    """A Vendor-Specific attribute with one sub-attribute in the RFC 2865 5.26 layout."""
    if len(value) > MAX_ATTRIBUTE_VALUE - 6:
        raise LocalProtocolError(f"vendor attribute value of {len(value)} octets too long")
    return (
        Attr.VENDOR_SPECIFIC,
        struct.pack("!IBB", vendor, vendor_type, len(value) + 2) + value,
    )


def parse_vendor_specific(value: bytes) -> tuple[int, list[RawAttribute]]:
    """Vendor-Id and the (vendor-type, value) sub-attributes of a Vendor-Specific value."""
    if len(value) < 4:
        raise RemoteProtocolError(f"Vendor-Specific of {len(value)} octets has no Vendor-Id")
    return int.from_bytes(value[:4], "big"), [(t, v) for t, _, v in _walk(value, 4)]


def attribute(name: str, value: Any) -> RawAttribute:
    """Encode a dictionary attribute by name (pyrad types; named VALUEs accepted as str).

    Tags and encryption are not applied here: tunnel attributes go through
    :mod:`broker.radius.tunnel`, User-Password through :func:`encode_request`.
    """
    d = load_dictionary()
    adef = d.attributes[name]
    if isinstance(value, str) and adef.values.HasForward(value):
        encoded: bytes = adef.values.GetForward(value)
    else:
        encoded = _pyrad_tools.EncodeAttr(adef.type, value)
    key = d.attrindex.GetForward(name)
    if isinstance(key, tuple):
        return vendor_attribute(key[0], key[1], encoded)
    return (int(key), encoded)


def decode_value(name: str, raw: bytes) -> Any:
    """Decode one raw value of a dictionary attribute to its Python type (pyrad).

    Raises :class:`RemoteProtocolError` when the value does not fit the type.
    """
    adef = load_dictionary().attributes[name]
    try:
        return _pyrad_tools.DecodeAttr(adef.type, raw)
    except (ValueError, TypeError, struct.error, IndexError) as exc:
        raise RemoteProtocolError(f"bad {name} value: {exc}") from exc


# -- password hiding and CHAP -----------------------------------------------------------------


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def hide_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """RFC 2865 section 5.2: pad to 16n octets (n <= 8) and chain MD5 over secret+previous."""
    if len(password) > 128:
        raise LocalProtocolError("User-Password longer than 128 octets")
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out = bytearray()
    prev = authenticator
    for i in range(0, len(padded), 16):
        block = _xor(padded[i : i + 16], hashlib.md5(secret + prev).digest())
        out += block
        prev = block
    return bytes(out)


def unhide_password(hidden: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """Reverse of :func:`hide_password`; trailing NUL padding is removed."""
    if not hidden or len(hidden) % 16 or len(hidden) > 128:
        raise RemoteProtocolError(f"User-Password of {len(hidden)} octets is not 16n <= 128")
    out = bytearray()
    prev = authenticator
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        out += _xor(block, hashlib.md5(secret + prev).digest())
        prev = block
    return bytes(out).rstrip(b"\x00")


def chap_password(ident: int, response: bytes) -> bytes:
    """RFC 2865 section 5.3: CHAP Ident (1 octet) followed by the 16-octet Response."""
    if len(response) != 16:
        raise LocalProtocolError("CHAP-MD5 Response must be 16 octets")
    return bytes((ident & 0xFF,)) + response


# -- authenticators ----------------------------------------------------------------------------


def message_authenticator(packet: bytes, secret: bytes) -> bytes:
    """HMAC-MD5 over ``packet`` as given (caller zeroes MA and sets the right authenticator)."""
    return hmac.digest(secret, packet, "md5")


def _assemble(code: int, identifier: int, auth: bytes, attr_bytes: bytes) -> bytes:
    length = HEADER_LENGTH + len(attr_bytes)
    if length > MAX_PACKET_LENGTH:
        raise LocalProtocolError(f"RADIUS packet of {length} octets exceeds 4096")
    return _HEADER.pack(code, identifier & 0xFF, length, auth) + attr_bytes


def _with_ma_first(attrs: Sequence[RawAttribute]) -> list[RawAttribute]:
    rest = [(t, v) for t, v in attrs if t != Attr.MESSAGE_AUTHENTICATOR]
    return [(Attr.MESSAGE_AUTHENTICATOR, _ZERO_MA), *rest]


# The Message-Authenticator placed first sits at a fixed offset: header, type, length.
_MA_OFFSET = HEADER_LENGTH + 2


def encode_request(
    code: int,
    identifier: int,
    attrs: Sequence[RawAttribute],
    secret: bytes,
    authenticator: bytes | None = None,
    *,
    add_message_authenticator: bool | None = None,
    rand_bytes: RandBytes = os.urandom,
) -> bytes:
    """Encode a request packet.

    Access-Request and Status-Server: the Request Authenticator is ``authenticator`` or 16
    random octets; a ``User-Password`` given in clear in ``attrs`` is hidden (RFC 2865 5.2);
    Message-Authenticator is always added (first attribute, RFC 3579 3.2).

    Accounting-Request, Disconnect-Request, CoA-Request: the Request Authenticator is the MD5
    of the packet with a zero authenticator and the secret (RFC 2866 3, RFC 5176 3.5);
    Message-Authenticator only when ``add_message_authenticator`` is true (computed first,
    with the authenticator zeroed).
    """
    if code in _RANDOM_AUTH_CODES:
        if add_message_authenticator is False:
            raise LocalProtocolError("Access-Request/Status-Server always carry MA")
        auth = authenticator if authenticator is not None else rand_bytes(AUTHENTICATOR_LENGTH)
        if len(auth) != AUTHENTICATOR_LENGTH:
            raise LocalProtocolError("Request Authenticator must be 16 octets")
        password = next((v for t, v in attrs if t == Attr.USER_PASSWORD), None)
        rest = [
            (t, v) for t, v in attrs if t != Attr.USER_PASSWORD and t != Attr.MESSAGE_AUTHENTICATOR
        ]
        return encode_access_request(
            identifier, encode_attributes(rest), password, secret, auth, code=code
        )
    if code in _HASHED_AUTH_CODES:
        if authenticator is not None:
            raise LocalProtocolError(f"code {code} has a computed Request Authenticator")
        items = _with_ma_first(attrs) if add_message_authenticator else list(attrs)
        packet = bytearray(_assemble(code, identifier, _ZERO_AUTH, encode_attributes(items)))
        if add_message_authenticator:
            packet[_MA_OFFSET : _MA_OFFSET + 16] = message_authenticator(bytes(packet), secret)
        packet[4:20] = hashlib.md5(bytes(packet) + secret).digest()
        return bytes(packet)
    raise LocalProtocolError(f"code {code} is not a request we encode")


def encode_access_request(
    identifier: int,
    encoded_attributes: bytes,
    password: bytes | None,
    secret: bytes,
    authenticator: bytes,
    *,
    code: int = Code.ACCESS_REQUEST,
) -> bytes:
    """Fast path of :func:`encode_request` for an Access-Request (or Status-Server) whose other
    attributes are already encoded (the client re-sends the same attributes to each server):
    Message-Authenticator first, then the hidden User-Password if any, then the rest."""
    head = bytes((Attr.MESSAGE_AUTHENTICATOR, 18)) + _ZERO_MA
    if password is not None:
        hidden = hide_password(password, secret, authenticator)
        head += bytes((Attr.USER_PASSWORD, len(hidden) + 2)) + hidden
    packet = bytearray(_assemble(code, identifier, authenticator, head + encoded_attributes))
    packet[_MA_OFFSET : _MA_OFFSET + 16] = message_authenticator(bytes(packet), secret)
    return bytes(packet)


def encode_response(
    code: int,
    identifier: int,
    attrs: Sequence[RawAttribute],
    secret: bytes,
    request_authenticator: bytes,
    *,
    add_message_authenticator: bool = True,
) -> bytes:
    """Encode a reply: Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attrs+Secret).

    The Message-Authenticator (first attribute) is computed with the Request Authenticator in
    the authenticator field (RFC 3579 section 3.2, RFC 5176 section 3.5).
    """
    items = _with_ma_first(attrs) if add_message_authenticator else list(attrs)
    packet = bytearray(_assemble(code, identifier, request_authenticator, encode_attributes(items)))
    if add_message_authenticator:
        packet[_MA_OFFSET : _MA_OFFSET + 16] = message_authenticator(bytes(packet), secret)
    packet[4:20] = hashlib.md5(bytes(packet) + secret).digest()
    return bytes(packet)


def _ma_valid(
    raw: bytes,
    length: int,
    auth_field: bytes,
    spans: list[tuple[int, int, bytes]],
    secret: bytes,
    *,
    required: bool,
) -> bool:
    mas = [(off, v) for t, off, v in spans if t == _MA_TYPE]
    if not mas:
        return not required
    if len(mas) != 1 or len(mas[0][1]) != 16:
        return False
    off, received = mas[0]
    signed = raw[:4] + auth_field + raw[20:off] + _ZERO_MA + raw[off + 16 : length]
    return hmac.compare_digest(hmac.digest(secret, signed, "md5"), received)


def verify_response(
    raw: bytes,
    request_authenticator: bytes,
    secret: bytes,
    *,
    require_message_authenticator: bool,
) -> bool:
    """Check a reply's Response Authenticator and Message-Authenticator (never raises).

    With ``require_message_authenticator`` a reply without exactly one valid
    Message-Authenticator is refused whatever its code. Without it, one present must be valid.
    """
    try:
        _, _, length, auth, spans = _split(raw)
    except RemoteProtocolError:
        return False
    body = bytearray(raw[:length])
    body[4:20] = request_authenticator
    expected = hashlib.md5(bytes(body) + secret).digest()
    if not hmac.compare_digest(expected, auth):
        return False
    return _ma_valid(
        raw,
        length,
        request_authenticator,
        spans,
        secret,
        required=require_message_authenticator,
    )


def verify_reply(raw: bytes, request_authenticator: bytes, secret: bytes) -> bool:
    """Verify a reply to an Access-Request or Status-Server: Response Authenticator AND a
    valid Message-Authenticator, checked before the code is read (BlastRADIUS)."""
    return verify_response(raw, request_authenticator, secret, require_message_authenticator=True)


def decode_verified_reply(
    raw: bytes, request_authenticator: bytes, secret: bytes
) -> RadiusPacket | None:
    """:func:`verify_reply` and :func:`decode_packet` in one walk: the packet, or ``None`` when
    it is malformed or fails the authenticator checks (never raises)."""
    try:
        code, identifier, length, auth, spans = _split(raw)
    except RemoteProtocolError:
        return None
    expected = hashlib.md5(raw[:4] + request_authenticator + raw[20:length] + secret).digest()
    if not hmac.compare_digest(expected, auth):
        return None
    if not _ma_valid(raw, length, request_authenticator, spans, secret, required=True):
        return None
    return RadiusPacket(code, identifier, auth, tuple((t, v) for t, _, v in spans))


def verify_request(raw: bytes, secret: bytes) -> bool:
    """Verify the MD5 Request Authenticator of an Accounting-, Disconnect- or CoA-Request
    (RFC 2866 section 3, RFC 5176 section 3.5) and a Message-Authenticator if present."""
    try:
        _, _, length, auth, spans = _split(raw)
    except RemoteProtocolError:
        return False
    body = bytearray(raw[:length])
    body[4:20] = _ZERO_AUTH
    if not hmac.compare_digest(hashlib.md5(bytes(body) + secret).digest(), auth):
        return False
    return _ma_valid(raw, length, _ZERO_AUTH, spans, secret, required=False)


verify_accounting_request = verify_request
verify_coa_request = verify_request


def verify_access_request(
    raw: bytes, secret: bytes, *, require_message_authenticator: bool = True
) -> bool:
    """Server side: check the Message-Authenticator of an Access-Request or Status-Server."""
    try:
        _, _, length, auth, spans = _split(raw)
    except RemoteProtocolError:
        return False
    return _ma_valid(raw, length, auth, spans, secret, required=require_message_authenticator)
