"""Fuzz target: L2TP AVP values (RFC 2661 4.4) and AVP hiding (RFC 2661 4.3).

Input layout: octet 0 picks the AVP type, octets 1-16 are a Random Vector, the rest a
value. Contract: every typed parser raises only RemoteProtocolError; ``unhide`` of any
octets raises only RemoteProtocolError; ``hide`` then ``unhide`` gives the value back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from broker.l2tp import avps
from broker.l2tp.avps import AVP_SPECS, ValueKind
from broker.l2tp.hidden import hide, padding_needed, unhide, unhide_subformat
from broker.wire import RemoteProtocolError

SECRET = b"vector-secret"

_PARSERS: dict[ValueKind, Callable[[bytes], object]] = {
    ValueKind.UINT16: avps.parse_uint16,
    ValueKind.UINT32: avps.parse_uint32,
    ValueKind.UINT64: avps.parse_uint64,
    ValueKind.STRING: avps.parse_str,
    ValueKind.RESULT_CODE: avps.parse_result_code,
    ValueKind.Q931_CAUSE: avps.parse_q931_cause,
    ValueKind.PROXY_AUTHEN_ID: avps.parse_proxy_authen_id,
    ValueKind.CALL_ERRORS: avps.parse_call_errors,
    ValueKind.ACCM: avps.parse_accm,
    ValueKind.PPP_DISCONNECT_CAUSE: avps.parse_ppp_disconnect_cause,
}
_TYPES = sorted(AVP_SPECS)


def test_one_input(data: bytes) -> None:
    if len(data) < 17:
        return
    avp_type = _TYPES[data[0] % len(_TYPES)]
    vector, value = data[1:17], data[17:]
    for parse in _PARSERS.values():
        with contextlib.suppress(RemoteProtocolError):
            parse(value)
    with contextlib.suppress(RemoteProtocolError):
        unhide(avp_type, value, SECRET, vector)
    padding = bytes(padding_needed(len(value)))
    hidden = hide(avp_type, value, SECRET, vector, padding)
    assert unhide_subformat(avp_type, hidden, SECRET, vector) == (value, padding)
