"""L2TP AVPs: the value type, the registry table, typed value helpers, codec errors.

RFC 2661 section 4.1 (AVP format, M and H bits), 4.4 (every IETF AVP, its length and
whether it may be hidden), 5.1.1 (Challenge Response), RFC 3145 section 2 (AVP 46).

The registry :data:`AVP_SPECS` is the one table the decoder loops over: for each IETF
attribute type it gives the name, the allowed value length (before hiding), whether the
AVP may be hidden and the M bit the RFC prescribes (used as the default when building).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import Enum

from broker.l2tp.constants import (
    AVP_HEADER_LEN,
    AVP_MAX_LEN,
    PROTOCOL_VERSION_1_0,
    AvpType,
    ErrorCode,
    StopCcnResult,
)
from broker.wire import LocalProtocolError, RemoteProtocolError

# -- errors ------------------------------------------------------------------------------


class L2tpError(RemoteProtocolError):
    """A control message from the peer is malformed.

    Header context (``tunnel_id``, ``session_id``, ``ns``, ``nr``, ``message_type``) is
    filled in by the decoder as far as it got, so the engine can still acknowledge the
    message and address a StopCCN/CDN. ``result_code``/``error_code`` say what to send.
    """

    def __init__(
        self,
        message: str,
        *,
        result_code: int | None = StopCcnResult.GENERAL_ERROR,
        error_code: int | None = ErrorCode.BAD_VALUE,
        tunnel_id: int | None = None,
        session_id: int | None = None,
        ns: int | None = None,
        nr: int | None = None,
        message_type: int | None = None,
    ) -> None:
        super().__init__(message, result_code=result_code, error_code=error_code)
        self.tunnel_id = tunnel_id
        self.session_id = session_id
        self.ns = ns
        self.nr = nr
        self.message_type = message_type

    def set_context(
        self, tunnel_id: int, session_id: int, ns: int | None, nr: int | None, mt: int | None
    ) -> None:
        self.tunnel_id = tunnel_id
        self.session_id = session_id
        self.ns = ns
        self.nr = nr
        if self.message_type is None:
            self.message_type = mt


class MalformedHeader(L2tpError):
    """The L2TP header is short, has the wrong version or bits, or its Length lies."""


class MalformedAvp(L2tpError):
    """An AVP header or value has a bad length or value."""

    def __init__(self, message: str, **kw: int | None) -> None:
        kw.setdefault("error_code", ErrorCode.BAD_LENGTH)
        super().__init__(message, **kw)


class HiddenAvpError(MalformedAvp):
    """A hidden AVP cannot be revealed: no secret, no Random Vector, or bad padding."""


class UnknownMessageType(L2tpError):
    """The Message Type value is unknown; ``mandatory`` is its M bit (RFC 2661 4.4.1:
    M=1 -> clear the tunnel, M=0 -> ignore the message)."""

    def __init__(self, message: str, *, mandatory: bool, **kw: int | None) -> None:
        super().__init__(message, **kw)
        self.mandatory = mandatory


class UnknownMandatoryAvp(L2tpError):
    """An unrecognized AVP with M=1 (RFC 2661 4.1).

    The message must be rejected: answer a session message with a CDN, a tunnel message
    with a StopCCN, Result Code 2 / Error Code 8. ``avp_type`` and ``vendor_id`` name it.
    """

    def __init__(
        self,
        message: str,
        *,
        avp_type: int,
        vendor_id: int = 0,
        **kw: int | None,
    ) -> None:
        kw.setdefault("error_code", ErrorCode.UNKNOWN_MANDATORY_AVP)
        super().__init__(message, **kw)
        self.avp_type = avp_type
        self.vendor_id = vendor_id


# -- the AVP value -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Avp:
    """One AVP with its PLAIN value (``hidden`` says whether it travels hidden)."""

    type: int
    value: bytes
    mandatory: bool = True
    hidden: bool = False
    vendor_id: int = 0


class ValueKind(Enum):
    """How an AVP value is structured (used by helpers, tests and logging)."""

    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    BYTES = "bytes"
    STRING = "string"
    EMPTY = "empty"
    RESULT_CODE = "result_code"
    Q931_CAUSE = "q931_cause"
    PROXY_AUTHEN_ID = "proxy_authen_id"
    CALL_ERRORS = "call_errors"
    ACCM = "accm"
    PPP_DISCONNECT_CAUSE = "ppp_disconnect_cause"


@dataclass(frozen=True, slots=True)
class AvpSpec:
    """Registry row: what RFC 2661 section 4.4 says about one attribute type."""

    type: AvpType
    name: str
    kind: ValueKind
    min_len: int  #: shortest value (before hiding)
    max_len: int  #: longest value (before hiding)
    hidable: bool  #: "may be hidden"
    mandatory: bool  #: the M bit the RFC prescribes


_ANY = AVP_MAX_LEN - AVP_HEADER_LEN  # longest possible plain value
_K = ValueKind
_T = AvpType

#: (type, kind, min, max, hidable, mandatory) per RFC 2661 4.4.x and RFC 3145 2.
_ROWS: tuple[tuple[AvpType, ValueKind, int, int, bool, bool], ...] = (
    (_T.MESSAGE_TYPE, _K.UINT16, 2, 2, False, True),
    (_T.RESULT_CODE, _K.RESULT_CODE, 2, _ANY, False, True),
    (_T.PROTOCOL_VERSION, _K.BYTES, 2, 2, False, True),
    (_T.FRAMING_CAPABILITIES, _K.UINT32, 4, 4, True, True),
    (_T.BEARER_CAPABILITIES, _K.UINT32, 4, 4, True, True),
    (_T.TIE_BREAKER, _K.UINT64, 8, 8, False, False),
    (_T.FIRMWARE_REVISION, _K.UINT16, 2, 2, True, False),
    (_T.HOST_NAME, _K.STRING, 1, _ANY, False, True),
    (_T.VENDOR_NAME, _K.STRING, 0, _ANY, True, False),
    (_T.ASSIGNED_TUNNEL_ID, _K.UINT16, 2, 2, True, True),
    (_T.RECEIVE_WINDOW_SIZE, _K.UINT16, 2, 2, False, True),
    (_T.CHALLENGE, _K.BYTES, 1, _ANY, True, True),
    (_T.Q931_CAUSE, _K.Q931_CAUSE, 3, _ANY, False, True),
    (_T.CHALLENGE_RESPONSE, _K.BYTES, 16, 16, True, True),
    (_T.ASSIGNED_SESSION_ID, _K.UINT16, 2, 2, True, True),
    (_T.CALL_SERIAL_NUMBER, _K.UINT32, 4, 4, True, True),
    (_T.MINIMUM_BPS, _K.UINT32, 4, 4, True, True),
    (_T.MAXIMUM_BPS, _K.UINT32, 4, 4, True, True),
    (_T.BEARER_TYPE, _K.UINT32, 4, 4, True, True),
    (_T.FRAMING_TYPE, _K.UINT32, 4, 4, True, True),
    (_T.CALLED_NUMBER, _K.STRING, 0, _ANY, True, True),
    (_T.CALLING_NUMBER, _K.STRING, 0, _ANY, True, True),
    (_T.SUB_ADDRESS, _K.STRING, 0, _ANY, True, True),
    (_T.TX_CONNECT_SPEED, _K.UINT32, 4, 4, True, True),
    (_T.PHYSICAL_CHANNEL_ID, _K.UINT32, 4, 4, True, False),
    (_T.INITIAL_RECEIVED_LCP_CONFREQ, _K.BYTES, 0, _ANY, True, False),
    (_T.LAST_SENT_LCP_CONFREQ, _K.BYTES, 0, _ANY, True, False),
    (_T.LAST_RECEIVED_LCP_CONFREQ, _K.BYTES, 0, _ANY, True, False),
    (_T.PROXY_AUTHEN_TYPE, _K.UINT16, 2, 2, True, False),
    (_T.PROXY_AUTHEN_NAME, _K.STRING, 0, _ANY, True, False),
    (_T.PROXY_AUTHEN_CHALLENGE, _K.BYTES, 1, _ANY, True, False),
    (_T.PROXY_AUTHEN_ID, _K.PROXY_AUTHEN_ID, 2, 2, True, False),
    (_T.PROXY_AUTHEN_RESPONSE, _K.BYTES, 0, _ANY, True, False),
    (_T.CALL_ERRORS, _K.CALL_ERRORS, 26, 26, True, True),
    (_T.ACCM, _K.ACCM, 10, 10, True, True),
    (_T.RANDOM_VECTOR, _K.BYTES, 1, _ANY, False, True),
    (_T.PRIVATE_GROUP_ID, _K.BYTES, 0, _ANY, True, False),
    (_T.RX_CONNECT_SPEED, _K.UINT32, 4, 4, True, False),
    (_T.SEQUENCING_REQUIRED, _K.EMPTY, 0, 0, False, True),
    (_T.PPP_DISCONNECT_CAUSE, _K.PPP_DISCONNECT_CAUSE, 5, _ANY, True, False),
)

#: The registry: IETF attribute type -> its spec. The decoder loops over AVPs against it.
AVP_SPECS: dict[int, AvpSpec] = {
    t: AvpSpec(t, t.name, kind, lo, hi, hidable, mand) for t, kind, lo, hi, hidable, mand in _ROWS
}


def spec_for(avp_type: int, vendor_id: int = 0) -> AvpSpec | None:
    """The registry row for an attribute, or ``None`` when we do not recognize it."""
    if vendor_id != 0:
        return None
    return AVP_SPECS.get(avp_type)


def _mandatory(t: int, mandatory: bool | None) -> bool:
    if mandatory is not None:
        return mandatory
    spec = AVP_SPECS.get(t)
    return True if spec is None else spec.mandatory


# -- builders ----------------------------------------------------------------------------


def bytes_avp(t: int, v: bytes, *, mandatory: bool | None = None, hidden: bool = False) -> Avp:
    """An AVP with a raw value; the M bit defaults to what the RFC prescribes for ``t``."""
    return Avp(int(t), bytes(v), _mandatory(t, mandatory), hidden)


def uint16_avp(t: int, v: int, *, mandatory: bool | None = None, hidden: bool = False) -> Avp:
    return bytes_avp(t, _pack("!H", v), mandatory=mandatory, hidden=hidden)


def uint32_avp(t: int, v: int, *, mandatory: bool | None = None, hidden: bool = False) -> Avp:
    return bytes_avp(t, _pack("!I", v), mandatory=mandatory, hidden=hidden)


def uint64_avp(t: int, v: int, *, mandatory: bool | None = None, hidden: bool = False) -> Avp:
    return bytes_avp(t, _pack("!Q", v), mandatory=mandatory, hidden=hidden)


def str_avp(t: int, v: str, *, mandatory: bool | None = None, hidden: bool = False) -> Avp:
    """A text AVP (UTF-8; undecodable octets survive a round trip via surrogateescape)."""
    return bytes_avp(t, v.encode("utf-8", "surrogateescape"), mandatory=mandatory, hidden=hidden)


def empty_avp(t: int, *, mandatory: bool | None = None) -> Avp:
    return bytes_avp(t, b"", mandatory=mandatory)


def protocol_version_avp() -> Avp:
    """Protocol Version 1, Revision 0 (RFC 2661 4.4.3)."""
    return bytes_avp(AvpType.PROTOCOL_VERSION, PROTOCOL_VERSION_1_0)


def result_code_avp(result: int, error: int | None = None, message: str = "") -> Avp:
    """Result Code AVP (RFC 2661 4.4.2): result, optional error, optional message.

    A message needs an error code in front of it; ``error`` defaults to 0 then.
    """
    value = _pack("!H", result)
    if error is not None or message:
        value += _pack("!H", 0 if error is None else error)
        value += message.encode("utf-8", "surrogateescape")
    return bytes_avp(AvpType.RESULT_CODE, value)


def q931_cause_avp(cause: int, msg: int, advisory: str = "") -> Avp:
    """Q.931 Cause Code AVP (RFC 2661 4.4.4): cause code, cause msg, advisory text."""
    value = _pack("!HB", cause, msg) + advisory.encode("utf-8", "surrogateescape")
    return bytes_avp(AvpType.Q931_CAUSE, value)


def proxy_authen_id_avp(ident: int, *, hidden: bool = False) -> Avp:
    """Proxy Authen ID AVP (RFC 2661 4.4.5): a reserved octet, then the PPP ID."""
    return bytes_avp(AvpType.PROXY_AUTHEN_ID, _pack("!xB", ident), hidden=hidden)


def call_errors_avp(
    crc: int, framing: int, hw_overruns: int, buf_overruns: int, timeouts: int, alignment: int
) -> Avp:
    """Call Errors AVP (RFC 2661 4.4.6): reserved 16 bits then six 32-bit counters."""
    value = _pack("!xx6I", crc, framing, hw_overruns, buf_overruns, timeouts, alignment)
    return bytes_avp(AvpType.CALL_ERRORS, value)


def accm_avp(send_accm: int, recv_accm: int) -> Avp:
    """ACCM AVP (RFC 2661 4.4.6): reserved 16 bits, send ACCM, receive ACCM."""
    return bytes_avp(AvpType.ACCM, _pack("!xxII", send_accm, recv_accm))


def ppp_disconnect_cause_avp(code: int, protocol: int, direction: int, message: str = "") -> Avp:
    """PPP Disconnect Cause Code AVP (RFC 3145 2), M=0."""
    value = _pack("!HHB", code, protocol, direction) + message.encode("utf-8", "surrogateescape")
    return bytes_avp(AvpType.PPP_DISCONNECT_CAUSE, value)


# -- parsers (raise MalformedAvp on a bad length) ------------------------------------------


def _need(value: bytes, lo: int, hi: int | None, what: str) -> None:
    if len(value) < lo or (hi is not None and len(value) > hi):
        raise MalformedAvp(f"{what}: value length {len(value)} outside [{lo}, {hi}]")


def parse_uint16(value: bytes) -> int:
    _need(value, 2, 2, "uint16 AVP")
    return int.from_bytes(value, "big")


def parse_uint32(value: bytes) -> int:
    _need(value, 4, 4, "uint32 AVP")
    return int.from_bytes(value, "big")


def parse_uint64(value: bytes) -> int:
    _need(value, 8, 8, "uint64 AVP")
    return int.from_bytes(value, "big")


def parse_str(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def parse_result_code(value: bytes) -> tuple[int, int | None, str]:
    """(result, error or None, message) from a Result Code AVP value (RFC 2661 4.4.2)."""
    _need(value, 2, None, "Result Code")
    if len(value) == 3:
        raise MalformedAvp("Result Code: 3-octet value (error code truncated)")
    result = int.from_bytes(value[:2], "big")
    if len(value) == 2:
        return result, None, ""
    return result, int.from_bytes(value[2:4], "big"), parse_str(value[4:])


def parse_q931_cause(value: bytes) -> tuple[int, int, str]:
    """(cause code, cause msg, advisory) from a Q.931 Cause Code AVP value."""
    _need(value, 3, None, "Q.931 Cause Code")
    cause, msg = struct.unpack_from("!HB", value)
    return int(cause), int(msg), parse_str(value[3:])


def parse_proxy_authen_id(value: bytes) -> int:
    _need(value, 2, 2, "Proxy Authen ID")
    return value[1]


def parse_call_errors(value: bytes) -> tuple[int, int, int, int, int, int]:
    """(crc, framing, hw overruns, buffer overruns, timeouts, alignment)."""
    _need(value, 26, 26, "Call Errors")
    a, b, c, d, e, f = struct.unpack("!xx6I", value)
    return int(a), int(b), int(c), int(d), int(e), int(f)


def parse_accm(value: bytes) -> tuple[int, int]:
    """(send ACCM, receive ACCM)."""
    _need(value, 10, 10, "ACCM")
    s, r = struct.unpack("!xxII", value)
    return int(s), int(r)


def parse_ppp_disconnect_cause(value: bytes) -> tuple[int, int, int, str]:
    """(disconnect code, control protocol number, direction, message) per RFC 3145 2."""
    _need(value, 5, None, "PPP Disconnect Cause Code")
    code, proto, direction = struct.unpack_from("!HHB", value)
    return int(code), int(proto), int(direction), parse_str(value[5:])


def challenge_response(message_type: int, secret: bytes, challenge: bytes) -> bytes:
    """Challenge Response value (RFC 2661 5.1.1 / 4.4.3): MD5 over the one-octet CHAP ID
    (the Message Type of the reply carrying it: 2 for SCCRP, 3 for SCCCN), the shared
    secret and the challenge."""
    return hashlib.md5(bytes([message_type & 0xFF]) + secret + challenge).digest()


def _pack(fmt: str, *values: int) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error as exc:
        raise LocalProtocolError(f"AVP value out of range: {values!r} ({exc})") from exc
