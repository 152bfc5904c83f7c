from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.dataplane.fastpath import FastSplice
from broker.dataplane.userspace import ETH_P_PPP_SES, UserspaceSplice
from broker.wire import MacAddress

MAC = MacAddress(bytes.fromhex("020000000001"))
LNS = ("198.51.100.2", 1701)


#: the reference splice and the runtime's fast path must frame identically
IMPLS = [UserspaceSplice, FastSplice]
each_impl = pytest.mark.parametrize("impl", IMPLS, ids=lambda c: c.__name__)


def make(impl: type, sequencing: bool = False) -> tuple[Any, list, list]:
    to_lns: list[tuple[bytes, tuple[str, int]]] = []
    to_cpe: list[tuple[str, bytes, int, bytes]] = []
    sp = impl(lambda d, p: to_lns.append((d, p)), lambda i, m, e, f: to_cpe.append((i, m, e, f)))
    sp.attach(
        call_id=7, interface="eth1", mac=MAC, pppoe_session_id=0x1234, tunnel_id=11,
        session_id=22, peer_tunnel_id=0xAAAA, peer_session_id=0xBBBB, peer=LNS,
        sequencing=sequencing,
    )  # fmt: skip
    return sp, to_lns, to_cpe


@each_impl
def test_upstream_adds_address_control(impl: type) -> None:
    sp, to_lns, _ = make(impl)
    assert sp.upstream("eth1", MAC, 0x1234, b"\xc0\x21\x09\x01\x00\x08abcd")
    data, peer = to_lns[0]
    assert peer == LNS
    assert data == bytes.fromhex("0002aaaabbbb") + b"\xff\x03\xc0\x21\x09\x01\x00\x08abcd"
    assert sp.counters_for(7) == {
        "input_octets": 10,
        "input_packets": 1,
        "output_octets": 0,
        "output_packets": 0,
    }


@each_impl
def test_downstream_with_and_without_ff03_and_header_bits(impl: type) -> None:
    sp, _, to_cpe = make(impl)
    plain = bytes.fromhex("0002000b0016") + b"\xff\x03\x00\x21PAYLOAD"
    no_ac = bytes.fromhex("0002000b0016") + b"\x00\x21PAYLOAD"
    # L + S + O bits: length, Ns/Nr, offset 2 with two pad octets
    body = b"\x00\x0b\x00\x16" + b"\x00\x01\x00\x00" + b"\x00\x02zz" + b"\xff\x03\x00\x21PAYLOAD"
    full = struct.pack("!HH", 0x4A02, 4 + len(body)) + body
    for msg in (plain, no_ac, full):
        assert sp.downstream(msg)
    for iface, mac, ethertype, frame in to_cpe:
        assert (iface, mac, ethertype) == ("eth1", MAC, ETH_P_PPP_SES)
        assert frame == bytes.fromhex("110012340009") + b"\x00\x21PAYLOAD"
    assert sp.counters_for(7)["output_packets"] == 3  # type: ignore[index]


@each_impl
def test_unknown_and_malformed_are_counted_not_raised(impl: type) -> None:
    sp, to_lns, to_cpe = make(impl)
    assert not sp.upstream("eth1", MAC, 0x9999, b"\x00\x21x")
    assert not sp.downstream(bytes.fromhex("0002000b0017") + b"\x00\x21x")
    for bad in (
        b"",
        b"\x00\x02\x00",
        bytes.fromhex("c802000b0016"),
        bytes.fromhex("0003000b0016"),
        bytes.fromhex("4002"),
        bytes.fromhex("0202000b0016ffff"),
    ):
        assert not sp.downstream(bad)
    assert sp.counters["unknown_downstream"] == 1
    assert sp.counters["malformed_downstream"] == 6
    assert to_lns == [] and to_cpe == []


@each_impl
def test_sequencing_numbers_upstream(impl: type) -> None:
    sp, to_lns, _ = make(impl, sequencing=True)
    for _ in range(3):
        sp.upstream("eth1", MAC, 0x1234, b"\x00\x21x")
    assert [struct.unpack_from("!HHHHH", d)[3] for d, _ in to_lns] == [0, 1, 2]
    assert all(struct.unpack_from("!H", d)[0] == 0x0802 for d, _ in to_lns)


@each_impl
def test_detach_returns_counters_and_forgets(impl: type) -> None:
    sp, _, _ = make(impl)
    sp.upstream("eth1", MAC, 0x1234, b"\x00\x21abc")
    assert sp.detach(7)["input_octets"] == 5
    assert sp.detach(7) == {}
    assert len(sp) == 0
    assert not sp.owns("eth1", MAC, 0x1234)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=1500), st.booleans())
def test_round_trip_through_both_directions(ppp: bytes, with_ac: bool) -> None:
    for impl in IMPLS:
        check_round_trip(impl, ppp, with_ac)


def check_round_trip(impl: type, ppp: bytes, with_ac: bool) -> None:
    sp, to_lns, to_cpe = make(impl)
    sp.upstream("eth1", MAC, 0x1234, ppp)
    up = to_lns[-1][0]
    assert up[6:8] == b"\xff\x03" and up[8:] == ppp
    down = bytes.fromhex("0002000b0016") + (b"\xff\x03" if with_ac else b"") + ppp
    if not with_ac and ppp[:2] == b"\xff\x03":
        return  # indistinguishable from a frame that carries FF 03: stripped, as intended
    sp.downstream(down)
    frame = to_cpe[-1][3]
    assert frame[6:] == ppp and struct.unpack_from("!H", frame, 4)[0] == len(ppp)
