"""Hidden AVP values (RFC 2661 section 4.3).

The plain value is wrapped in the Hidden AVP Subformat (2-octet original length, value,
padding) and XORed with an MD5 chain: ``b1 = MD5(attribute type (2 octets) + secret +
random vector)``, ``c1 = p1 xor b1``, ``bi = MD5(secret + c(i-1))``, ``ci = pi xor bi``;
the last chunk may be shorter than 16 octets and is XORed with a prefix of its ``bi``.
"""

from __future__ import annotations

import hashlib

from broker.l2tp.avps import HiddenAvpError

#: Shortest Hidden AVP Subformat we send (length + value + padding). RFC 2661 allows
#: shorter, but some LNSs (l2tpns) reject hidden values under one MD5 block.
MIN_SUBFORMAT_LEN = 16


def padding_needed(value_len: int) -> int:
    """How many padding octets bring the subformat of a ``value_len`` value to 16."""
    return max(0, MIN_SUBFORMAT_LEN - 2 - value_len)


def _xor_chain(
    attr_type: int, data: bytes, secret: bytes, random_vector: bytes, *, hiding: bool
) -> bytes:
    out = bytearray()
    block_hash = hashlib.md5(attr_type.to_bytes(2, "big") + secret + random_vector).digest()
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        n = len(chunk)
        mixed = (int.from_bytes(chunk) ^ int.from_bytes(block_hash[:n])).to_bytes(n)
        out += mixed
        cipher = mixed if hiding else chunk
        block_hash = hashlib.md5(secret + cipher).digest()
    return bytes(out)


def hide(
    attr_type: int, value: bytes, secret: bytes, random_vector: bytes, padding: bytes = b""
) -> bytes:
    """The hidden Attribute Value for a plain ``value``."""
    if len(value) > 0xFFFF:
        raise ValueError("value too long to hide")
    subformat = len(value).to_bytes(2, "big") + value + padding
    return _xor_chain(attr_type, subformat, secret, random_vector, hiding=True)


def unhide_subformat(
    attr_type: int, hidden: bytes, secret: bytes, random_vector: bytes
) -> tuple[bytes, bytes]:
    """(plain value, padding) from a hidden Attribute Value.

    Raises :class:`HiddenAvpError` when the revealed original length does not fit (wrong
    secret, wrong random vector or corrupted padding).
    """
    if len(hidden) < 2:
        raise HiddenAvpError(f"hidden AVP {attr_type}: {len(hidden)} octets, need >= 2")
    plain = _xor_chain(attr_type, hidden, secret, random_vector, hiding=False)
    orig_len = int.from_bytes(plain[:2], "big")
    if orig_len > len(plain) - 2:
        raise HiddenAvpError(
            f"hidden AVP {attr_type}: original length {orig_len} exceeds the "
            f"{len(plain) - 2} octets present (wrong secret or bad padding)"
        )
    return plain[2 : 2 + orig_len], plain[2 + orig_len :]


def unhide(attr_type: int, hidden: bytes, secret: bytes, random_vector: bytes) -> bytes:
    """The plain value of a hidden Attribute Value (see :func:`unhide_subformat`)."""
    return unhide_subformat(attr_type, hidden, secret, random_vector)[0]
