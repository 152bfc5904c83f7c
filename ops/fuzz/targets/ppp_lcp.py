"""Fuzz target: PPP control packets and options (RFC 1661 5-6, IPCP RFC 1332) and the LCP
automaton fed with a stream of them.

Input layout: a sequence of (length octet, packet) records. Contract: ``decode_control``
and ``decode_options`` raise only RemoteProtocolError and re-encode byte for byte; the
LCP automaton raises only RemoteProtocolError per packet and stays in a table state; the
LAC's PppLink, fed each record as a whole frame, never raises.
"""

from __future__ import annotations

import contextlib

from broker.ppp.codec import (
    IPCP_OPTIONS,
    LCP_OPTIONS,
    decode_control,
    decode_options,
    encode_options,
)
from broker.ppp.lcp import LcpAutomaton, RestartConfig
from broker.ppp.lcp_table import State
from broker.ppp.link import LinkConfig, PppLink
from broker.wire import RemoteProtocolError


def _rand(n: int) -> bytes:
    return bytes(range(7, 7 + n))


def _records(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    while i < len(data) and len(out) < 32:
        n = data[i]
        out.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    return out


def test_one_input(data: bytes) -> None:
    lcp = LcpAutomaton(
        RestartConfig(restart_timer=1.0, max_configure=3, max_terminate=2, max_failure=2),
        mru=1492,
        auth_request=("chap", "pap"),
        echo_interval=5.0,
        rand_bytes=_rand,
    )
    link = PppLink(
        LinkConfig(restart_timer=1.0, max_configure=3, echo_interval=5.0),
        rand_bytes=_rand,
    )
    now = 0.0
    lcp.up(now)
    lcp.open(now)
    link.start(now)
    for index, payload in enumerate(_records(data)):
        try:
            packet = decode_control(payload)
        except RemoteProtocolError:
            pass
        else:
            assert packet.encode() == payload[: 4 + len(packet.data)]
            for registry in (LCP_OPTIONS, IPCP_OPTIONS):
                try:
                    options = decode_options(packet.data, registry)
                except RemoteProtocolError:
                    continue
                assert encode_options(options) == packet.data
        with contextlib.suppress(RemoteProtocolError):
            lcp.receive(payload, now)
        assert lcp.state in State
        lcp.frames_to_send()
        # The same octets as a whole frame (protocol field first) into the LAC's PppLink:
        # it never raises (malformed input is counted).
        link.receive_frame(payload, now)
        link.frames_to_send()
        while link.next_event() is not None:
            pass
        if index % 4 == 3:
            timer = lcp.get_timer()
            if timer is not None:
                assert timer >= now
                now = timer
                lcp.handle_timer(now)
            link_timer = link.get_timer()
            if link_timer is not None:
                assert link_timer >= now
                now = link_timer
                link.handle_timer(now)
