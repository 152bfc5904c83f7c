"""Fuzz target: the L2TP endpoint engine (tunnels, sessions, reliable delivery; RFC 2661 5-8)
fed with sequences of datagrams.

Input layout: records of (flags octet, 2-octet length, datagram). Flags: bit 0 patches the
Tunnel ID to a live tunnel of the receiving endpoint, bit 1 patches Ns/Nr to the values
that tunnel expects (in sequence), bit 2 delivers to the LAC endpoint (which has a tunnel
of its own open) instead of the LNS endpoint (which accepts SCCRQs, with a secret), bits
4-7 let time pass first (timers fire). Contract: ``receive_datagram`` never raises and the
endpoints run with ``strict=True``, so an internal error (anything but the counted drop of
malformed input) escapes and is a crash; timers are never in the past; everything the
endpoints send decodes.
"""

from __future__ import annotations

import random

from broker.l2tp.codec import decode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.endpoint import L2tpEndpoint

SECRET = b"vector-secret"
LAC_ADDR = ("192.0.2.1", 1701)
LNS_ADDR = ("192.0.2.2", 1701)
_SHORT = (1.0, 2.0, 2.0)
_STEPS = (0.0, 0.05, 0.5, 1.0, 2.0, 4.0, 8.0, 31.0, 61.0)


def _endpoints() -> tuple[L2tpEndpoint, L2tpEndpoint]:
    lns = L2tpEndpoint(
        rand_bytes=random.Random(1).randbytes,
        lns_config=TunnelConfig(host_name="lns", secret=SECRET, retransmit=_SHORT),
        lns_policy=lambda _t, _s, p: (4, 0, "busy") if p.serial % 3 == 2 else None,
        strict=True,
    )
    lac = L2tpEndpoint(rand_bytes=random.Random(2).randbytes, strict=True)
    tid = lac.open_tunnel(LNS_ADDR, TunnelConfig(retransmit=_SHORT, secret=SECRET), 0.0)
    lac.open_session(tid, CallParams(serial=1, authen_name="u"), 0.0)
    return lns, lac


def _drain(ep: L2tpEndpoint, now: float) -> None:
    for data, _peer in ep.datagrams_to_send(now):
        decode_control(data, SECRET)
    while ep.next_event() is not None:
        pass


def test_one_input(data: bytes) -> None:
    lns, lac = _endpoints()
    now = 0.0
    _drain(lac, now)
    pos = 0
    records = 0
    while pos + 3 <= len(data) and records < 24:
        flags = data[pos]
        n = int.from_bytes(data[pos + 1 : pos + 3], "big")
        datagram = bytearray(data[pos + 3 : pos + 3 + n])
        pos += 3 + n
        records += 1
        ep, peer = (lac, LNS_ADDR) if flags & 4 else (lns, LAC_ADDR)
        now += _STEPS[(flags >> 4) % len(_STEPS)]
        for endpoint in (lns, lac):
            endpoint.handle_timer(now)
            _drain(endpoint, now)
        tunnels = list(ep.tunnels.values())
        if tunnels and len(datagram) >= 12 and flags & 3:
            t = tunnels[0]
            if flags & 1:
                datagram[4:6] = t.tunnel_id.to_bytes(2, "big")
            if flags & 2:
                datagram[8:10] = t.transport.expected.to_bytes(2, "big")
                datagram[10:12] = t.transport.next_ns.to_bytes(2, "big")
        ep.receive_datagram(bytes(datagram), peer, now)
        _drain(ep, now)
        for endpoint in (lns, lac):
            assert endpoint.counters["internal_errors"] == 0
            timer = endpoint.get_timer()
            assert timer is None or timer >= 0
