"""L2TP control message codec (RFC 2661 sections 3.1, 4.1, 4.3, 4.4).

:func:`decode_control` checks the header (T=1, L=1, S=1, O=0, Ver=2, Length within the
datagram; octets beyond Length are ignored), walks the AVPs with one loop over the
registry table :data:`broker.l2tp.avps.AVP_SPECS`, reveals hidden AVPs with the shared
secret and the preceding Random Vector, skips unrecognized AVPs with M=0 (IETF or vendor)
and rejects unrecognized AVPs with M=1 (:class:`UnknownMandatoryAvp`). An H bit on an AVP
that RFC 2661 4.4 says MUST NOT be hidden (Message Type, Result Code, Protocol Version, Tie
Breaker, Host Name, Receive Window Size, Q.931 Cause Code, Random Vector, Sequencing
Required) makes it malformed: :class:`MalformedAvp` when M=1, skipped when M=0. Every malformed
input raises a :class:`~broker.wire.RemoteProtocolError` subclass and nothing else.

:func:`encode_control` is its inverse; hidden AVPs get a Random Vector AVP inserted before
the first of them unless the message already carries one, and are padded to at least one
MD5 block.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from broker.l2tp.avps import (
    AVP_SPECS,
    Avp,
    AvpSpec,
    HiddenAvpError,
    L2tpError,
    MalformedAvp,
    MalformedHeader,
    UnknownMandatoryAvp,
    UnknownMessageType,
    ValueKind,
    accm_avp,
    bytes_avp,
    call_errors_avp,
    challenge_response,
    empty_avp,
    parse_accm,
    parse_call_errors,
    parse_ppp_disconnect_cause,
    parse_proxy_authen_id,
    parse_q931_cause,
    parse_result_code,
    parse_str,
    parse_uint16,
    parse_uint32,
    parse_uint64,
    ppp_disconnect_cause_avp,
    protocol_version_avp,
    proxy_authen_id_avp,
    q931_cause_avp,
    result_code_avp,
    spec_for,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.constants import (
    AVP_HEADER_LEN,
    AVP_MAX_LEN,
    CONTROL_HEADER_LEN,
    L2TP_VERSION,
    AvpFlag,
    AvpType,
    ErrorCode,
    HeaderFlag,
    MessageType,
)
from broker.l2tp.hidden import hide, padding_needed, unhide
from broker.wire import Buffer, BufferReadError, LocalProtocolError, RemoteProtocolError

# plain ints for the hot paths (IntFlag arithmetic builds enum members: slow)
_T_BIT = int(HeaderFlag.TYPE)
_L_BIT = int(HeaderFlag.LENGTH)
_S_BIT = int(HeaderFlag.SEQUENCE)
_O_BIT = int(HeaderFlag.OFFSET)
_VER_MASK = int(HeaderFlag.VERSION_MASK)
_M_BIT = int(AvpFlag.MANDATORY)
_H_BIT = int(AvpFlag.HIDDEN)
_RSVD_BITS = int(AvpFlag.RESERVED)
_LEN_MASK = int(AvpFlag.LENGTH_MASK)
_AVP_HEADER = struct.Struct("!HHH")
_CONTROL_FLAGS = _T_BIT | _L_BIT | _S_BIT | L2TP_VERSION
#: precompiled: control header (flags, length, tunnel, session, Ns, Nr) and AVP header
_CONTROL_HEADER = struct.Struct("!6H")
_AVP_HEADER = struct.Struct("!3H")
RANDOM_VECTOR_LEN = 16  #: octets of Random Vector we generate


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """A decoded control message. ``avps`` excludes the leading Message Type AVP; their
    values are plain (already revealed). Random Vector AVPs stay in place as received."""

    tunnel_id: int
    session_id: int
    ns: int
    nr: int
    message_type: MessageType | None  # None for a ZLB acknowledgement
    avps: tuple[Avp, ...] = ()

    def get(self, t: int) -> Avp | None:
        """The first IETF AVP of type ``t``, or ``None``."""
        for avp in self.avps:
            if avp.type == t and avp.vendor_id == 0:
                return avp
        return None

    def get_all(self, t: int) -> list[Avp]:
        return [a for a in self.avps if a.type == t and a.vendor_id == 0]

    @property
    def is_zlb(self) -> bool:
        return self.message_type is None


#: AVPs whose values are credentials or secrets-derived: never shown in logs.
REDACTED_AVPS = frozenset(
    {
        AvpType.CHALLENGE,
        AvpType.CHALLENGE_RESPONSE,
        AvpType.RANDOM_VECTOR,
        AvpType.PROXY_AUTHEN_CHALLENGE,
        AvpType.PROXY_AUTHEN_RESPONSE,
    }
)


def describe(msg: ControlMessage) -> str:
    """One log line for a message: header and AVPs by name, credentials redacted."""
    name = "ZLB" if msg.message_type is None else msg.message_type.name
    parts = [f"{name} tid={msg.tunnel_id} sid={msg.session_id} ns={msg.ns} nr={msg.nr}"]
    for avp in msg.avps:
        spec = spec_for(avp.type, avp.vendor_id)
        label = spec.name if spec is not None else f"{avp.vendor_id}:{avp.type}"
        if avp.hidden:
            label += "(H)"
        if avp.type in REDACTED_AVPS and avp.vendor_id == 0:
            parts.append(f"{label}=<{len(avp.value)} octets>")
        else:
            parts.append(f"{label}={_show_value(spec, avp.value)}")
    return " ".join(parts)


def _show_value(spec: AvpSpec | None, value: bytes) -> str:
    kind = None if spec is None else spec.kind
    try:
        if kind in (ValueKind.UINT16, ValueKind.UINT32, ValueKind.UINT64):
            return str(int.from_bytes(value, "big"))
        if kind is ValueKind.STRING:
            return repr(parse_str(value))
        if kind is ValueKind.RESULT_CODE:
            return repr(parse_result_code(value))
        if kind is ValueKind.PPP_DISCONNECT_CAUSE:
            return repr(parse_ppp_disconnect_cause(value))
        if kind is ValueKind.Q931_CAUSE:
            return repr(parse_q931_cause(value))
    except RemoteProtocolError:
        pass
    return value.hex() if len(value) <= 32 else f"{value[:32].hex()}...({len(value)} octets)"


def peek_header(data: bytes) -> tuple[bool, int, int]:
    """(is_control, tunnel_id, session_id) from any L2TP datagram, without full decoding."""
    if len(data) < 6:
        raise MalformedHeader(f"L2TP datagram of {len(data)} octets, need >= 6")
    flags = (data[0] << 8) | data[1]
    if flags & _VER_MASK != L2TP_VERSION:
        raise MalformedHeader(f"L2TP version {flags & _VER_MASK}, expected 2")
    pos = 4 if flags & _L_BIT else 2
    if len(data) < pos + 4:
        raise MalformedHeader(f"L2TP datagram of {len(data)} octets, need >= {pos + 4}")
    tunnel_id = (data[pos] << 8) | data[pos + 1]
    session_id = (data[pos + 2] << 8) | data[pos + 3]
    return bool(flags & _T_BIT), tunnel_id, session_id


def decode_control(data: bytes, secret: bytes | None = None) -> ControlMessage:
    """Decode one control message; raise a RemoteProtocolError subclass if malformed."""
    if len(data) < CONTROL_HEADER_LEN:
        raise MalformedHeader(f"control message of {len(data)} octets, need >= 12")
    buf = Buffer(data)
    flags = buf.pull_uint16()
    length = buf.pull_uint16()
    tunnel_id = buf.pull_uint16()
    session_id = buf.pull_uint16()
    ns = buf.pull_uint16()
    nr = buf.pull_uint16()
    version = flags & _VER_MASK
    problem = None
    if version != L2TP_VERSION:
        problem = f"L2TP version {version}, expected 2"
    elif not flags & _T_BIT:
        problem = "data message (T=0) where a control message was expected"
    elif not flags & _L_BIT or not flags & _S_BIT:
        problem = "control message without L or S bit"
    elif flags & _O_BIT:
        problem = "control message with O bit set"
    elif length < CONTROL_HEADER_LEN:
        problem = f"Length field {length} shorter than the header"
    elif length > len(data):
        problem = f"Length field {length} exceeds the {len(data)}-octet datagram"
    if problem is not None:
        raise MalformedHeader(
            problem,
            error_code=ErrorCode.BAD_LENGTH if "Length" in problem else ErrorCode.BAD_VALUE,
            tunnel_id=tunnel_id,
            session_id=session_id,
        )  # ns/nr stay None: a broken header does not occupy a sequence slot
    found: list[MessageType] = []  # the Message Type, once decoded (error context)
    avps: list[Avp] = []
    try:
        _decode_avps(Buffer(data, start=CONTROL_HEADER_LEN, end=length), secret, found, avps)
    except L2tpError as exc:
        exc.set_context(tunnel_id, session_id, ns, nr, found[0] if found else None)
        raise
    message_type = found[0] if found else None
    return ControlMessage(tunnel_id, session_id, ns, nr, message_type, tuple(avps))


def _decode_avps(
    buf: Buffer, secret: bytes | None, found: list[MessageType], avps: list[Avp]
) -> None:
    """The one loop over AVPs against the registry (appends to ``found`` and ``avps``)."""
    random_vector: bytes | None = None
    first = True
    while not buf.eof():
        if buf.remaining < AVP_HEADER_LEN:
            raise MalformedAvp(f"{buf.remaining} trailing octets, too short for an AVP header")
        word, vendor_id, avp_type = _AVP_HEADER.unpack(buf.pull_bytes(AVP_HEADER_LEN))
        avp_len = word & _LEN_MASK
        if avp_len < AVP_HEADER_LEN:
            raise MalformedAvp(f"AVP {vendor_id}:{avp_type} Length {avp_len} < 6")
        if avp_len - AVP_HEADER_LEN > buf.remaining:
            raise MalformedAvp(
                f"AVP {vendor_id}:{avp_type} Length {avp_len} overruns the message "
                f"({buf.remaining + AVP_HEADER_LEN} octets left)"
            )
        raw = buf.pull_bytes(avp_len - AVP_HEADER_LEN)
        mandatory = bool(word & _M_BIT)
        hidden = bool(word & _H_BIT)
        reserved = bool(word & _RSVD_BITS)
        if first:
            first = False
            if vendor_id != 0 or avp_type != AvpType.MESSAGE_TYPE or hidden or reserved:
                raise MalformedAvp(
                    f"first AVP is {vendor_id}:{avp_type}, not a plain Message Type",
                    error_code=ErrorCode.BAD_VALUE,
                )
            if len(raw) != 2:
                raise MalformedAvp(f"Message Type AVP value of {len(raw)} octets")
            code = int.from_bytes(raw, "big")
            try:
                found.append(MessageType(code))
            except ValueError:
                raise UnknownMessageType(
                    f"unknown Message Type {code} (M={int(mandatory)})",
                    mandatory=mandatory,
                    message_type=code,
                ) from None
            continue
        spec = None if reserved else spec_for(avp_type, vendor_id)
        if spec is None:
            if mandatory:
                raise UnknownMandatoryAvp(
                    f"unrecognized mandatory AVP {vendor_id}:{avp_type}",
                    avp_type=avp_type,
                    vendor_id=vendor_id,
                )
            continue  # RFC 2661 4.1: unrecognized with M=0 is ignored
        if hidden and not spec.hidable:
            # RFC 2661 4.4: "This AVP MUST NOT be hidden (the H-bit MUST be 0)". Its value
            # cannot be trusted either way (hidden or plain): a mandatory one is malformed
            # (the tunnel or session is torn down, as for any malformed mandatory AVP), an
            # optional one (Tie Breaker) is treated as unrecognized and skipped.
            if mandatory:
                raise MalformedAvp(
                    f"{spec.name} has the H bit set but MUST NOT be hidden (RFC 2661 4.4)"
                )
            continue
        if hidden:
            if secret is None:
                raise HiddenAvpError(f"hidden AVP {avp_type} but no shared secret configured")
            if random_vector is None:
                raise HiddenAvpError(f"hidden AVP {avp_type} without a preceding Random Vector")
            value = unhide(avp_type, raw, secret, random_vector)
        else:
            value = raw
        if not spec.min_len <= len(value) <= spec.max_len:
            if mandatory:
                raise MalformedAvp(
                    f"{spec.name} value of {len(value)} octets, "
                    f"expected {spec.min_len}..{spec.max_len}"
                )
            continue  # a malformed optional AVP is treated as unrecognized
        if avp_type == AvpType.RANDOM_VECTOR and not hidden:
            random_vector = value
        avps.append(Avp(avp_type, value, mandatory, hidden, vendor_id))


def encode_control(
    msg: ControlMessage,
    secret: bytes | None = None,
    rand_bytes: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """Encode a control message. Raises LocalProtocolError for values that cannot be sent."""
    if msg.message_type is None and msg.avps:
        raise LocalProtocolError("a ZLB (message_type None) carries no AVPs")
    for name in ("tunnel_id", "session_id", "ns", "nr"):
        if not 0 <= getattr(msg, name) <= 0xFFFF:
            raise LocalProtocolError(f"{name}={getattr(msg, name)} outside 0..65535")
    body = bytearray()
    if msg.message_type is not None:
        _push_avp(body, AvpType.MESSAGE_TYPE, 0, True, False, int(msg.message_type).to_bytes(2))
    random_vector: bytes | None = None
    for avp in msg.avps:
        if avp.type == AvpType.RANDOM_VECTOR and avp.vendor_id == 0 and not avp.hidden:
            random_vector = avp.value
        wire_value = avp.value
        if avp.hidden:
            if secret is None:
                raise LocalProtocolError(f"AVP {avp.type} marked hidden but no secret given")
            spec = spec_for(avp.type, avp.vendor_id)
            if spec is not None and not spec.hidable:
                raise LocalProtocolError(f"{spec.name} MUST NOT be hidden (RFC 2661 4.4)")
            if random_vector is None:
                random_vector = rand_bytes(RANDOM_VECTOR_LEN)
                _push_avp(body, AvpType.RANDOM_VECTOR, 0, True, False, random_vector)
            padding = rand_bytes(padding_needed(len(avp.value)))
            wire_value = hide(avp.type, avp.value, secret, random_vector, padding)
        _push_avp(body, avp.type, avp.vendor_id, avp.mandatory, avp.hidden, wire_value)
    length = CONTROL_HEADER_LEN + len(body)
    if length > 0xFFFF:
        raise LocalProtocolError(f"control message of {length} octets exceeds 65535")
    header = _CONTROL_HEADER.pack(
        _CONTROL_FLAGS, length, msg.tunnel_id, msg.session_id, msg.ns, msg.nr
    )
    return header + body


def _push_avp(
    out: bytearray, avp_type: int, vendor_id: int, mandatory: bool, hidden: bool, value: bytes
) -> None:
    avp_len = AVP_HEADER_LEN + len(value)
    if avp_len > AVP_MAX_LEN:
        raise LocalProtocolError(f"AVP {vendor_id}:{avp_type} of {avp_len} octets exceeds 1023")
    if not (0 <= avp_type <= 0xFFFF and 0 <= vendor_id <= 0xFFFF):
        raise LocalProtocolError(f"AVP type {avp_type} / vendor {vendor_id} out of range")
    word = avp_len
    if mandatory:
        word |= _M_BIT
    if hidden:
        word |= _H_BIT
    out += _AVP_HEADER.pack(word, vendor_id, avp_type)
    out += value


__all__ = [
    "AVP_SPECS",
    "Avp",
    "AvpSpec",
    "BufferReadError",
    "ControlMessage",
    "HiddenAvpError",
    "L2tpError",
    "MalformedAvp",
    "MalformedHeader",
    "RemoteProtocolError",
    "UnknownMandatoryAvp",
    "UnknownMessageType",
    "accm_avp",
    "bytes_avp",
    "call_errors_avp",
    "challenge_response",
    "decode_control",
    "describe",
    "empty_avp",
    "encode_control",
    "parse_accm",
    "parse_call_errors",
    "parse_ppp_disconnect_cause",
    "parse_proxy_authen_id",
    "parse_q931_cause",
    "parse_result_code",
    "parse_str",
    "parse_uint16",
    "parse_uint32",
    "parse_uint64",
    "peek_header",
    "ppp_disconnect_cause_avp",
    "protocol_version_avp",
    "proxy_authen_id_avp",
    "q931_cause_avp",
    "result_code_avp",
    "spec_for",
    "str_avp",
    "uint16_avp",
    "uint32_avp",
    "uint64_avp",
]
