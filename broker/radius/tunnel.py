"""RFC 2868 tunnel attributes: tags, Tunnel-Password salt encryption, tunnel candidates.

Works on the RAW attributes of an Access-Accept (pyrad leaves tags in place):

* integer attributes (Tunnel-Type, Tunnel-Medium-Type, Tunnel-Preference; RFC 2868 sections
  3.1, 3.2, 3.8) carry the tag in the high octet and a 24-bit value;
* string attributes (sections 3.3, 3.4, 3.6, 3.7, 3.9, 3.10) carry a tag octet only when the
  first octet is 0x01-0x1F; otherwise the whole value is the string (untagged);
* Tunnel-Password (section 3.5) always has a tag octet, then a 2-octet salt whose high bit is
  set, then the encrypted Data-Length + password + padding.

Grouping (RFC 2868 section 3 "tag ... grouping attributes ... which refer to the same tunnel"):
attributes with the same tag 0x01-0x1F form one candidate. Untagged attributes (tag 0) are
defaults: when tagged groups exist they fill fields a tagged group lacks; when none exists the
untagged attributes form a single candidate with tag 0. The first instance of an attribute in
a group wins. Only Tunnel-Type L2TP (3) over Tunnel-Medium-Type IPv4 (1) or IPv6 (2) is
usable; other groups are returned in ``skipped`` with a reason. A missing medium type is
inferred from the server endpoint (an IPv6 literal means IPv6, anything else IPv4).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from broker.radius.constants import Attr, TunnelMediumType, TunnelType
from broker.wire import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MAX_TAG",
    "SkippedTunnel",
    "TunnelCandidate",
    "TunnelParseResult",
    "decrypt_tunnel_password",
    "encode_tunnel_attributes",
    "encrypt_tunnel_password",
    "parse_tunnels",
    "split_tagged_integer",
    "split_tagged_string",
]

#: RFC 2868 section 3: tags 0x01-0x1F group attributes.
MAX_TAG = 0x1F

RawAttribute = tuple[int, bytes]

_INTEGER_ATTRS = frozenset(
    int(a) for a in (Attr.TUNNEL_TYPE, Attr.TUNNEL_MEDIUM_TYPE, Attr.TUNNEL_PREFERENCE)
)
_STRING_ATTRS = frozenset(
    {
        Attr.TUNNEL_CLIENT_ENDPOINT,
        Attr.TUNNEL_SERVER_ENDPOINT,
        Attr.TUNNEL_PRIVATE_GROUP_ID,
        Attr.TUNNEL_ASSIGNMENT_ID,
        Attr.TUNNEL_CLIENT_AUTH_ID,
        Attr.TUNNEL_SERVER_AUTH_ID,
    }
)
_TUNNEL_ATTRS = frozenset(int(a) for a in _INTEGER_ATTRS | _STRING_ATTRS | {Attr.TUNNEL_PASSWORD})
# Plain ints for the hot paths (an enum member lookup costs more than a global).
_TUNNEL_TYPE = int(Attr.TUNNEL_TYPE)
_TUNNEL_MEDIUM_TYPE = int(Attr.TUNNEL_MEDIUM_TYPE)
_TUNNEL_CLIENT_ENDPOINT = int(Attr.TUNNEL_CLIENT_ENDPOINT)
_TUNNEL_SERVER_ENDPOINT = int(Attr.TUNNEL_SERVER_ENDPOINT)
_TUNNEL_PASSWORD = int(Attr.TUNNEL_PASSWORD)
_TUNNEL_PRIVATE_GROUP_ID = int(Attr.TUNNEL_PRIVATE_GROUP_ID)
_TUNNEL_ASSIGNMENT_ID = int(Attr.TUNNEL_ASSIGNMENT_ID)
_TUNNEL_PREFERENCE = int(Attr.TUNNEL_PREFERENCE)
_TUNNEL_CLIENT_AUTH_ID = int(Attr.TUNNEL_CLIENT_AUTH_ID)
_TUNNEL_SERVER_AUTH_ID = int(Attr.TUNNEL_SERVER_AUTH_ID)


@dataclass(frozen=True, slots=True)
class TunnelCandidate:
    """One usable tunnel (an LNS) from an Access-Accept."""

    tag: int
    tunnel_type: int
    medium_type: int
    server_endpoint: str
    client_endpoint: str | None = None
    password: bytes | None = None
    preference: int | None = None
    assignment_id: bytes | None = None
    client_auth_id: bytes | None = None
    server_auth_id: bytes | None = None
    private_group_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class SkippedTunnel:
    """A tag group we could not use, with the reason (for logging)."""

    tag: int
    reason: str


@dataclass(frozen=True, slots=True)
class TunnelParseResult:
    candidates: tuple[TunnelCandidate, ...] = ()
    skipped: tuple[SkippedTunnel, ...] = field(default_factory=tuple)


# -- tags ------------------------------------------------------------------------------------


def split_tagged_integer(value: bytes) -> tuple[int, int]:
    """(tag, 24-bit value) of a tagged integer attribute (RFC 2868 section 3.1)."""
    if len(value) != 4:
        raise RemoteProtocolError(f"tagged integer of {len(value)} octets, expected 4")
    return value[0], int.from_bytes(value[1:], "big")


def split_tagged_string(value: bytes) -> tuple[int, bytes]:
    """(tag, string): the first octet is a tag only when it is 0x01-0x1F (RFC 2868 3.3)."""
    if value and 0x01 <= value[0] <= MAX_TAG:
        return value[0], value[1:]
    return 0, value


# -- Tunnel-Password (RFC 2868 section 3.5) --------------------------------------------------


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


def encrypt_tunnel_password(
    password: bytes, secret: bytes, request_authenticator: bytes, salt: bytes
) -> bytes:
    """Salt + ciphertext of Data-Length + password + zero padding (no tag octet)."""
    if len(salt) != 2 or not salt[0] & 0x80:
        raise LocalProtocolError("Tunnel-Password salt must be 2 octets with the high bit set")
    if len(password) > 239:
        raise LocalProtocolError("Tunnel-Password longer than 239 octets does not fit")
    plain = bytes((len(password),)) + password
    plain += bytes(-len(plain) % 16)
    out = bytearray(salt)
    prev = request_authenticator + salt
    for i in range(0, len(plain), 16):
        block = _xor16(plain[i : i + 16], hashlib.md5(secret + prev).digest())
        out += block
        prev = block
    return bytes(out)


def decrypt_tunnel_password(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Reverse of :func:`encrypt_tunnel_password`; ``value`` starts with the salt."""
    if len(value) < 18 or (len(value) - 2) % 16:
        raise RemoteProtocolError(f"Tunnel-Password of {len(value)} octets is not salt + 16n")
    salt, cipher = value[:2], value[2:]
    if not salt[0] & 0x80:
        raise RemoteProtocolError("Tunnel-Password salt without its high bit")
    plain = bytearray()
    prev = request_authenticator + salt
    for i in range(0, len(cipher), 16):
        block = cipher[i : i + 16]
        plain += _xor16(block, hashlib.md5(secret + prev).digest())
        prev = block
    length = plain[0]
    if length > len(plain) - 1:
        raise RemoteProtocolError("Tunnel-Password Data-Length exceeds the decrypted data")
    return bytes(plain[1 : 1 + length])


# -- grouping --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _infer_medium(endpoint: str) -> int:
    try:
        ipaddress.IPv6Address(endpoint)
    except ValueError:
        return TunnelMediumType.IPV4
    return TunnelMediumType.IPV6


@functools.lru_cache(maxsize=1024)
def _endpoint_ok(endpoint: str, medium: int) -> bool:
    if not endpoint:
        return False
    try:
        addr = ipaddress.ip_address(endpoint)
    except ValueError:
        # A host name (FQDN) is allowed for both media (RFC 2868 section 3.3).
        return all(c.isalnum() or c in "-._" for c in endpoint)
    return addr.version == (4 if medium == TunnelMediumType.IPV4 else 6)


def parse_tunnels(
    attributes: Iterable[RawAttribute], secret: bytes, request_authenticator: bytes
) -> TunnelParseResult:
    """Group the tunnel attributes of a reply into candidates (never raises)."""
    groups: dict[int, dict[int, bytes | int]] = {}
    problems: dict[int, str] = {}
    for attr_type, value in attributes:
        if attr_type not in _TUNNEL_ATTRS:
            continue
        try:
            if attr_type in _INTEGER_ATTRS:
                tag, number = split_tagged_integer(value)
                item: bytes | int = number
            elif attr_type == _TUNNEL_PASSWORD:
                if not value:
                    raise RemoteProtocolError("empty Tunnel-Password")
                tag = value[0] if value[0] <= MAX_TAG else 0
                item = decrypt_tunnel_password(value[1:], secret, request_authenticator)
            else:
                tag, item = split_tagged_string(value)
        except RemoteProtocolError as exc:
            tag = value[0] if value and value[0] <= MAX_TAG else 0
            problems.setdefault(tag, f"attribute {attr_type}: {exc}")
            continue
        if tag > MAX_TAG:
            tag = 0
        groups.setdefault(tag, {}).setdefault(attr_type, item)

    defaults = groups.pop(0, {})
    tagged = sorted(set(groups) | {t for t in problems if t})
    candidates: list[TunnelCandidate] = []
    skipped: list[SkippedTunnel] = []
    if not tagged:
        if not defaults and 0 not in problems:
            return TunnelParseResult()
        tagged = [0]
    elif 0 in problems:
        # A malformed untagged attribute is dropped; the tagged groups stand on their own.
        skipped.append(SkippedTunnel(0, problems[0]))
    for tag in tagged:
        if tag in problems:
            skipped.append(SkippedTunnel(tag, problems[tag]))
            continue
        merged = {**defaults, **groups.get(tag, {})}
        result = _candidate(tag, merged)
        if isinstance(result, SkippedTunnel):
            skipped.append(result)
        else:
            candidates.append(result)
    return TunnelParseResult(tuple(candidates), tuple(skipped))


def _text(value: bytes | int | None) -> bytes | None:
    return value if isinstance(value, bytes) else None


def _candidate(tag: int, attrs: dict[int, bytes | int]) -> TunnelCandidate | SkippedTunnel:
    tunnel_type = attrs.get(_TUNNEL_TYPE)
    if not isinstance(tunnel_type, int):
        return SkippedTunnel(tag, "no Tunnel-Type")
    if tunnel_type != TunnelType.L2TP:
        return SkippedTunnel(tag, f"Tunnel-Type {tunnel_type} is not L2TP")
    raw_endpoint = _text(attrs.get(_TUNNEL_SERVER_ENDPOINT))
    if raw_endpoint is None:
        return SkippedTunnel(tag, "no Tunnel-Server-Endpoint")
    try:
        endpoint = raw_endpoint.decode("utf-8").strip()
    except UnicodeDecodeError:
        return SkippedTunnel(tag, "Tunnel-Server-Endpoint is not text")
    medium = attrs.get(_TUNNEL_MEDIUM_TYPE)
    if not isinstance(medium, int):
        medium = _infer_medium(endpoint)
    if medium not in (TunnelMediumType.IPV4, TunnelMediumType.IPV6):
        return SkippedTunnel(tag, f"Tunnel-Medium-Type {medium} is not IPv4 or IPv6")
    if not _endpoint_ok(endpoint, medium):
        return SkippedTunnel(tag, f"Tunnel-Server-Endpoint {endpoint!r} unusable")
    raw_client = _text(attrs.get(_TUNNEL_CLIENT_ENDPOINT))
    client = raw_client.decode("utf-8", "replace").strip() if raw_client is not None else None
    preference = attrs.get(_TUNNEL_PREFERENCE)
    return TunnelCandidate(
        tag=tag,
        tunnel_type=tunnel_type,
        medium_type=medium,
        server_endpoint=endpoint,
        client_endpoint=client or None,
        password=_text(attrs.get(_TUNNEL_PASSWORD)),
        preference=preference if isinstance(preference, int) else None,
        assignment_id=_text(attrs.get(_TUNNEL_ASSIGNMENT_ID)),
        client_auth_id=_text(attrs.get(_TUNNEL_CLIENT_AUTH_ID)),
        server_auth_id=_text(attrs.get(_TUNNEL_SERVER_AUTH_ID)),
        private_group_id=_text(attrs.get(_TUNNEL_PRIVATE_GROUP_ID)),
    )


# -- encoding (servers in tests, labs, simulators) ------------------------------------------


def _tagged_string(tag: int, value: bytes) -> bytes:
    if tag:
        return bytes((tag,)) + value
    if value and value[0] <= MAX_TAG:
        raise LocalProtocolError("an untagged string may not start with 0x00-0x1F")
    return value


def encode_tunnel_attributes(
    candidate: TunnelCandidate,
    secret: bytes,
    request_authenticator: bytes,
    *,
    rand_bytes: Callable[[int], bytes] = os.urandom,
) -> list[RawAttribute]:
    """The RFC 2868 attributes describing ``candidate`` (tag 0 = untagged)."""
    tag = candidate.tag
    if not 0 <= tag <= MAX_TAG:
        raise LocalProtocolError(f"tag {tag} outside 0..31")
    out: list[RawAttribute] = [
        (Attr.TUNNEL_TYPE, bytes((tag,)) + candidate.tunnel_type.to_bytes(3, "big")),
        (Attr.TUNNEL_MEDIUM_TYPE, bytes((tag,)) + candidate.medium_type.to_bytes(3, "big")),
        (
            Attr.TUNNEL_SERVER_ENDPOINT,
            _tagged_string(tag, candidate.server_endpoint.encode()),
        ),
    ]
    if candidate.client_endpoint is not None:
        out.append(
            (Attr.TUNNEL_CLIENT_ENDPOINT, _tagged_string(tag, candidate.client_endpoint.encode()))
        )
    if candidate.preference is not None:
        out.append(
            (Attr.TUNNEL_PREFERENCE, bytes((tag,)) + candidate.preference.to_bytes(3, "big"))
        )
    if candidate.password is not None:
        salt = bytes((rand_bytes(1)[0] | 0x80,)) + rand_bytes(1)
        out.append(
            (
                Attr.TUNNEL_PASSWORD,
                bytes((tag,))
                + encrypt_tunnel_password(candidate.password, secret, request_authenticator, salt),
            )
        )
    strings: Sequence[tuple[int, bytes | None]] = (
        (Attr.TUNNEL_ASSIGNMENT_ID, candidate.assignment_id),
        (Attr.TUNNEL_CLIENT_AUTH_ID, candidate.client_auth_id),
        (Attr.TUNNEL_SERVER_AUTH_ID, candidate.server_auth_id),
        (Attr.TUNNEL_PRIVATE_GROUP_ID, candidate.private_group_id),
    )
    out += [(t, _tagged_string(tag, v)) for t, v in strings if v is not None]
    return out
