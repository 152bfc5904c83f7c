"""Ns/Nr serial-number arithmetic modulo 2**16 (RFC 2661 section 5.8).

A received sequence number is "less than or equal to" the last one received when it lies in
that number or the 32767 values before it (modulo 65536); every other value is "greater".
"""

from __future__ import annotations

MOD = 0x10000
HALF = 0x8000


def seq_add(a: int, n: int) -> int:
    """``a + n`` modulo 2**16."""
    return (a + n) & 0xFFFF


def seq_diff(a: int, b: int) -> int:
    """Forward distance from ``b`` to ``a`` (0..65535): how many increments turn b into a."""
    return (a - b) & 0xFFFF


def seq_lt(a: int, b: int) -> bool:
    """``a`` comes strictly before ``b`` in serial order (RFC 2661 section 5.8)."""
    return 0 < seq_diff(b, a) < HALF


def seq_le(a: int, b: int) -> bool:
    """``a`` is ``b`` or one of the 32767 values before it (RFC 2661 section 5.8)."""
    return seq_diff(b, a) < HALF


def seq_gt(a: int, b: int) -> bool:
    """``a`` comes strictly after ``b``: neither equal nor in the 32767 values before it."""
    return not seq_le(a, b)
