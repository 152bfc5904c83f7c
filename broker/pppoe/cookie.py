"""Stateless AC-Cookie (RFC 2516 §5.2, Appendix A: "used by the Access Concentrator to aid in
protecting against denial of service attacks").

cookie = HMAC-SHA256(secret, interface | client MAC | Host-Uniq | time bucket)[:16]. The
server keeps no state per PADI: on PADR it recomputes the cookie for the current and the
previous time bucket and compares in constant time.
"""

from __future__ import annotations

import hmac
import struct

COOKIE_LEN = 16
_DOMAIN = b"l2tp-broker pppoe ac-cookie v1\x00"


def _bucket(now: float, lifetime: float) -> int:
    return int(now // lifetime)


def make_cookie(
    secret: bytes, interface: str, mac: bytes, host_uniq: bytes | None, bucket: int
) -> bytes:
    ifname = interface.encode()
    msg = b"".join(
        (
            _DOMAIN,
            struct.pack("!H", len(ifname)),
            ifname,
            mac,
            b"\x00" if host_uniq is None else b"\x01" + struct.pack("!H", len(host_uniq)),
            host_uniq or b"",
            struct.pack("!q", bucket),
        )
    )
    return hmac.digest(secret, msg, "sha256")[:COOKIE_LEN]  # one-shot: no HMAC object


def issue_cookie(
    secret: bytes, interface: str, mac: bytes, host_uniq: bytes | None, now: float, lifetime: float
) -> bytes:
    return make_cookie(secret, interface, mac, host_uniq, _bucket(now, lifetime))


def verify_cookie(
    cookie: bytes,
    secret: bytes,
    interface: str,
    mac: bytes,
    host_uniq: bytes | None,
    now: float,
    lifetime: float,
) -> bool:
    """True if ``cookie`` was issued in the current or the previous time bucket."""
    if len(cookie) != COOKIE_LEN:
        return False
    bucket = _bucket(now, lifetime)
    ok = False
    for b in (bucket, bucket - 1):
        ok |= hmac.compare_digest(cookie, make_cookie(secret, interface, mac, host_uniq, b))
    return ok
