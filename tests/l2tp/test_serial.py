"""Ns/Nr serial arithmetic (RFC 2661 section 5.8)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.serial import seq_add, seq_diff, seq_gt, seq_le, seq_lt

u16 = st.integers(0, 0xFFFF)


def test_rfc_example() -> None:
    # "if the last received sequence number was 15, then messages with sequence numbers 0
    # through 15, as well as 32784 through 65535, would be considered less than or equal"
    last = 15
    for ns in [*range(16), *range(32784, 65536, 97), 65535, 32784]:
        assert seq_le(ns, last)
    for ns in (16, 17, 1000, 32783):
        assert not seq_le(ns, last)
        assert seq_gt(ns, last)


def test_wraps() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(65530, 10) == 4
    assert seq_diff(3, 65534) == 5
    assert seq_lt(65535, 0)
    assert seq_gt(0, 65535)


@settings(max_examples=300, deadline=None)
@given(u16, u16)
def test_trichotomy(a: int, b: int) -> None:
    lt, eq, gt = seq_lt(a, b), a == b, seq_gt(a, b)
    assert lt + eq + gt == 1
    assert seq_le(a, b) == (lt or eq)


@settings(max_examples=300, deadline=None)
@given(u16, st.integers(1, 32767))
def test_forward_steps_are_greater(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_gt(b, a)
    assert seq_lt(a, b)
    assert seq_diff(b, a) == n
