"""Tag registry for PPPoE Discovery (RFC 2516 Appendix A, RFC 4638 §4) and the DSL Forum
vendor-specific line identification sub-tags added by access nodes (TR-101 §3.9.3, RFC 4679
§3.3 for the meaning and numbering of each sub-tag).

The Vendor-Specific tag value is a 4-octet vendor id followed by vendor data; for the DSL
Forum (3561) that data is a list of sub-tags ``type(1) length(1) value`` where the length
counts the value only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from broker.pppoe.constants import (
    DSL_FORUM_VENDOR_ID,
    RELAY_SESSION_ID_MAX,
    DslForumSubTag,
    TagType,
)
from broker.wire import Buffer, LocalProtocolError, RemoteProtocolError


@dataclass(frozen=True, slots=True)
class TagSpec:
    name: str
    min_len: int = 0
    max_len: int = 0xFFFF
    check: Callable[[bytes], None] | None = None


def _check_vendor(value: bytes) -> None:
    if value[0] != 0:
        # RFC 2516 Appendix A: first octet of the vendor id MUST be 0.
        raise RemoteProtocolError("Vendor-Specific tag with non-zero first vendor-id octet")


def _check_max_payload(value: bytes) -> None:
    if int.from_bytes(value, "big") < 1:
        raise RemoteProtocolError("PPP-Max-Payload of 0")


#: One entry per known tag: its length bounds and an optional value check.
TAG_REGISTRY: dict[int, TagSpec] = {
    TagType.END_OF_LIST: TagSpec("End-Of-List", 0, 0),
    TagType.SERVICE_NAME: TagSpec("Service-Name"),
    TagType.AC_NAME: TagSpec("AC-Name"),
    TagType.HOST_UNIQ: TagSpec("Host-Uniq"),
    TagType.AC_COOKIE: TagSpec("AC-Cookie"),
    TagType.VENDOR_SPECIFIC: TagSpec("Vendor-Specific", 4, check=_check_vendor),
    TagType.RELAY_SESSION_ID: TagSpec("Relay-Session-Id", 0, RELAY_SESSION_ID_MAX),
    TagType.PPP_MAX_PAYLOAD: TagSpec("PPP-Max-Payload", 2, 2, check=_check_max_payload),
    TagType.SERVICE_NAME_ERROR: TagSpec("Service-Name-Error"),
    TagType.AC_SYSTEM_ERROR: TagSpec("AC-System-Error"),
    TagType.GENERIC_ERROR: TagSpec("Generic-Error"),
}


def decode_vendor_specific(value: bytes) -> tuple[int, bytes]:
    buf = Buffer(value)
    return buf.pull_uint32(), buf.pull_rest()


def encode_vendor_specific(vendor_id: int, data: bytes) -> bytes:
    out = Buffer()
    out.push_uint32(vendor_id)
    out.push_bytes(data)
    return out.data()


@dataclass(frozen=True, slots=True)
class LineInfo:
    """Access-loop identification from a DSL Forum Vendor-Specific tag (for RADIUS, RFC 4679)."""

    circuit_id: bytes | None = None
    remote_id: bytes | None = None
    actual_rate_up: int | None = None
    actual_rate_down: int | None = None
    min_rate_up: int | None = None
    min_rate_down: int | None = None
    attainable_rate_up: int | None = None
    attainable_rate_down: int | None = None
    max_rate_up: int | None = None
    max_rate_down: int | None = None


#: DSL Forum sub-tag -> (LineInfo field, is a 32-bit rate, max value length).
_SUBTAGS: dict[int, tuple[str, bool, int]] = {
    DslForumSubTag.AGENT_CIRCUIT_ID: ("circuit_id", False, 63),
    DslForumSubTag.AGENT_REMOTE_ID: ("remote_id", False, 63),
    DslForumSubTag.ACTUAL_RATE_UP: ("actual_rate_up", True, 4),
    DslForumSubTag.ACTUAL_RATE_DOWN: ("actual_rate_down", True, 4),
    DslForumSubTag.MIN_RATE_UP: ("min_rate_up", True, 4),
    DslForumSubTag.MIN_RATE_DOWN: ("min_rate_down", True, 4),
    DslForumSubTag.ATTAINABLE_RATE_UP: ("attainable_rate_up", True, 4),
    DslForumSubTag.ATTAINABLE_RATE_DOWN: ("attainable_rate_down", True, 4),
    DslForumSubTag.MAX_RATE_UP: ("max_rate_up", True, 4),
    DslForumSubTag.MAX_RATE_DOWN: ("max_rate_down", True, 4),
}


def decode_line_info(vendor_tags: Iterable[tuple[int, bytes]]) -> LineInfo | None:
    """LineInfo from the DSL Forum vendor tags, None when there are none.

    Sub-tags are decoded by one loop with bounds checks; unknown sub-tags are skipped;
    a sub-tag whose length overruns or breaks its fixed size raises RemoteProtocolError.
    """
    fields: dict[str, bytes | int] = {}
    seen = False
    for vendor_id, data in vendor_tags:
        if vendor_id != DSL_FORUM_VENDOR_ID:
            continue
        seen = True
        buf = Buffer(data)
        while not buf.eof():
            sub_type = buf.pull_uint8()
            length = buf.pull_uint8()
            value = buf.pull_bytes(length)
            spec = _SUBTAGS.get(sub_type)
            if spec is None:
                continue
            name, is_rate, max_len = spec
            if is_rate:
                if length != 4:
                    raise RemoteProtocolError(f"DSL Forum sub-tag {sub_type} length {length}")
                fields[name] = int.from_bytes(value, "big")
            else:
                if not 1 <= length <= max_len:
                    raise RemoteProtocolError(f"DSL Forum sub-tag {sub_type} length {length}")
                fields[name] = value
    if not seen:
        return None
    return LineInfo(**fields)  # type: ignore[arg-type]


def encode_line_info(info: LineInfo) -> bytes:
    """Vendor-Specific tag value (vendor id 3561 + sub-tags) for ``info``."""
    out = Buffer()
    out.push_uint32(DSL_FORUM_VENDOR_ID)
    for sub_type, (name, is_rate, max_len) in _SUBTAGS.items():
        value = getattr(info, name)
        if value is None:
            continue
        if is_rate and not 0 <= int(value) <= 0xFFFFFFFF:
            raise LocalProtocolError(f"DSL Forum rate {name} out of range: {value}")
        raw = int(value).to_bytes(4, "big") if is_rate else bytes(value)
        if not 1 <= len(raw) <= max_len:
            raise LocalProtocolError(f"DSL Forum sub-tag {name} length {len(raw)}")
        out.push_uint8(sub_type)
        out.push_uint8(len(raw))
        out.push_bytes(raw)
    return out.data()
