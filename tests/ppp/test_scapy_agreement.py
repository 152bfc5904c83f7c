"""Every frame our engines exchange decodes the same in scapy (an independent PPP decoder)."""

from __future__ import annotations

import random

import pytest
from scapy.layers import ppp as sppp

from broker.ppp import LinkConfig, PppLink
from broker.ppp.codec import (
    IPCP_OPTIONS,
    LCP_OPTIONS,
    Option,
    decode_chap_value,
    decode_control,
    decode_options,
    decode_pap_message,
    decode_pap_request,
    split_frame,
)
from broker.ppp.constants import PppProtocol
from broker.ppp.lcp import RestartConfig
from broker.sim.ppp_client import ClientConfig, IpcpAutomaton, PppClient


def exchange(link_auth: tuple[str, ...], client_auth: tuple[str, ...], **kw: object) -> list[bytes]:
    r = random.Random(5)
    link = PppLink(LinkConfig(auth=link_auth, echo_interval=1.0), rand_bytes=r.randbytes)
    extra = kw.get("extra", ())
    assert isinstance(extra, tuple)
    client = PppClient(
        "carol@example.com",
        "pw",
        client_auth,
        ClientConfig(extra_options=extra, request_dns=True),
        rand_bytes=r.randbytes,
    )
    lns = IpcpAutomaton(
        RestartConfig(),
        address=bytes([192, 0, 2, 1]),
        assign=bytes([192, 0, 2, 20]),
        dns=(bytes([198, 51, 100, 1]),),
        rand_bytes=r.randbytes,
    )
    wire: list[bytes] = []
    now = 0.0
    link.start(now)
    client.start(now)
    handed = False
    for step in range(4):
        for _ in range(50):
            a = link.frames_to_send() + lns.frames_to_send()
            b = client.frames_to_send()
            if not a and not b:
                break
            wire += a + b
            for f in a:
                client.receive_frame(f, now)
            for f in b:
                proto, info = split_frame(f)
                if handed and proto == PppProtocol.IPCP:
                    lns.receive(info, now)
                elif handed and proto == PppProtocol.LCP:
                    link.lcp.receive(info, now)  # the LNS's LCP answers after hand-over
                else:
                    link.receive_frame(f, now)
        if step == 0:
            link.accept("Welcome, carol", now)
        elif step == 1:
            now = 1.0
            link.handle_timer(now)  # an Echo-Request
            link.receive_frame(b"\xc0\x25abc", now)  # Protocol-Reject
            link.receive_frame(b"\xc0\x21\x0d\x01\x00\x06xy", now)  # Code-Reject
            link.hand_over()
            handed = True
            lns.up(now)
            lns.open(now)
            client.handle_timer(now + 3.0)
        elif step == 2:
            client.terminate(now)
            lns.close(now)
    return wire


def check_frame(frame: bytes) -> None:
    protocol, info = split_frame(frame)
    pkt = decode_control(info)
    parsed = sppp.PPP(frame)
    assert parsed.proto == protocol
    layer = parsed.payload
    assert (layer.code, layer.id, layer.len) == (pkt.code, pkt.identifier, 4 + len(pkt.data))
    if protocol in (PppProtocol.LCP, PppProtocol.IPCP) and pkt.code <= 4:
        registry = LCP_OPTIONS if protocol == PppProtocol.LCP else IPCP_OPTIONS
        ours = decode_options(pkt.data, registry)
        theirs = [(o.type, o.len) for o in layer.options]
        assert theirs == [(o.type, 2 + len(o.data)) for o in ours]
        assert b"".join(bytes(o) for o in layer.options) == pkt.data
    elif protocol == PppProtocol.LCP and pkt.code in (9, 10):
        assert layer.magic_number == int.from_bytes(pkt.data[:4], "big")
        assert layer.data == pkt.data[4:]
    elif protocol == PppProtocol.LCP and pkt.code == 8:
        assert layer.rejected_protocol == int.from_bytes(pkt.data[:2], "big")
    elif protocol == PppProtocol.LCP and pkt.code == 7:
        assert bytes(layer.rejected_packet) == pkt.data
    elif protocol == PppProtocol.CHAP and pkt.code in (1, 2):
        value = decode_chap_value(pkt.data)
        assert (layer.value_size, layer.value) == (len(value.value), value.value)
        assert layer.optional_name == value.name
    elif protocol == PppProtocol.CHAP:
        assert layer.data == pkt.data
    elif protocol == PppProtocol.PAP and pkt.code == 1:
        req = decode_pap_request(pkt.data)
        assert (layer.username, layer.password) == (req.peer_id, req.password)
    elif protocol == PppProtocol.PAP:
        assert layer.message == decode_pap_message(pkt.data)


@pytest.mark.parametrize(
    ("link_auth", "client_auth", "extra"),
    [
        (("chap", "pap"), ("chap",), ()),
        (("chap", "pap"), ("pap",), (Option(2, b"\x00\x00\x00\x00"), Option(7), Option(8))),
        (("mschapv2",), ("mschapv2",), (Option(4, b"\xc0\x25\x00\x00\x00\x0a"),)),
    ],
)
def test_scapy_agrees(
    link_auth: tuple[str, ...], client_auth: tuple[str, ...], extra: tuple[Option, ...]
) -> None:
    wire = exchange(link_auth, client_auth, extra=extra)
    protocols = {split_frame(f)[0] for f in wire}
    assert {PppProtocol.LCP, PppProtocol.IPCP} <= protocols
    assert protocols & {PppProtocol.CHAP, PppProtocol.PAP}
    codes = {(split_frame(f)[0], f[2]) for f in wire}
    for wanted in (1, 2, 5, 6, 7, 8, 9, 10):
        assert (PppProtocol.LCP, wanted) in codes
    if extra:
        assert (PppProtocol.LCP, 4) in codes  # our Configure-Reject of ACCM/PFC/ACFC/LQR
    assert len(wire) > 20
    for frame in wire:
        check_frame(frame)
