"""Stateful Hypothesis test: our endpoint (LAC and LNS roles) against an adversarial peer that
sends random valid and invalid control messages, replays and corrupts our own datagrams,
and lets time jump. No exception may escape and the invariants must hold after every step."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from broker.l2tp.avps import (
    Avp,
    accm_avp,
    bytes_avp,
    call_errors_avp,
    challenge_response,
    ppp_disconnect_cause_avp,
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
    uint64_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control, encode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import SessionClosed, TunnelClosed
from broker.l2tp.tunnel_fsm import TunnelState

ADV = ("203.0.113.5", 1701)
OTHER = ("203.0.113.6", 1701)
SECRET = b"adversary"
SHORT = (1.0, 2.0, 2.0)  # short schedules keep the machine moving


def template(mt: MessageType, rng: random.Random, chal: bytes | None) -> list[Avp]:
    """AVPs a well-behaved peer would send with this message type."""
    sid = uint16_avp(AvpType.ASSIGNED_SESSION_ID, rng.randint(1, 0xFFFF))
    setup = [
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "adv"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 3),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, rng.randint(1, 0xFFFF)),
        uint16_avp(AvpType.RECEIVE_WINDOW_SIZE, rng.choice([1, 4, 16])),
    ]
    if mt is MessageType.SCCRQ:
        return [*setup, uint64_avp(AvpType.TIE_BREAKER, rng.getrandbits(64), mandatory=False)]
    if mt is MessageType.SCCRP:
        extra = (
            []
            if chal is None
            else [bytes_avp(AvpType.CHALLENGE_RESPONSE, challenge_response(2, SECRET, chal))]
        )
        return setup + extra
    if mt is MessageType.SCCCN:
        return (
            []
            if chal is None
            else [bytes_avp(AvpType.CHALLENGE_RESPONSE, challenge_response(3, SECRET, chal))]
        )
    if mt is MessageType.StopCCN:
        return [uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 1), result_code_avp(rng.randint(0, 9))]
    if mt is MessageType.ICRQ:
        return [sid, uint32_avp(AvpType.CALL_SERIAL_NUMBER, rng.getrandbits(32))]
    if mt is MessageType.ICRP:
        return [sid]
    if mt is MessageType.ICCN:
        return [uint32_avp(AvpType.TX_CONNECT_SPEED, 1000), uint32_avp(AvpType.FRAMING_TYPE, 1)]
    if mt is MessageType.CDN:
        return [
            result_code_avp(rng.randint(1, 11), rng.randint(0, 8), "x"),
            sid,
            ppp_disconnect_cause_avp(1, 0xC021, 1, "m"),
        ]
    if mt is MessageType.SLI:
        return [accm_avp(0, 0)]
    if mt is MessageType.WEN:
        return [call_errors_avp(1, 2, 3, 4, 5, 6)]
    return []


JUNK = [
    Avp(999, b"?", mandatory=True),  # unknown mandatory
    Avp(998, b"?", mandatory=False),  # unknown optional
    Avp(7, b"", mandatory=True),  # empty host name
    Avp(9, b"\x00\x00", mandatory=True),  # assigned tunnel id 0
    Avp(10, b"\x00\x00", mandatory=True),  # receive window 0
    Avp(1, b"\x00", mandatory=True),  # short result code
    Avp(14, b"\x00", mandatory=True),  # short session id
    Avp(5, b"\x01\x02\x03\x04\x05\x06\x07\x08", mandatory=False, vendor_id=9),
]


class AdversarialPeer(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.ep = L2tpEndpoint(
            rand_bytes=random.Random(1).randbytes,
            lns_config=TunnelConfig(host_name="us", retransmit=SHORT, secret=SECRET),
            lns_policy=lambda _t, _s, p: (4, 0, "no") if p.serial % 3 == 0 else None,
            strict=True,  # any internal error fails the test
        )
        self.now = 0.0
        self.sent: list[bytes] = []
        self.closed_tunnels: set[int] = set()  # id() of tunnel objects reported closed
        self.closed_sessions: set[tuple[int, int, int]] = set()
        self.known: set[int] = set()

    # -- commands to our endpoint ---------------------------------------------------------
    @rule(secret=st.booleans(), hide=st.booleans())
    def open_tunnel(self, secret: bool, hide: bool) -> None:
        cfg = TunnelConfig(
            retransmit=SHORT,
            secret=SECRET if secret else None,
            hide_avps=hide and secret,
        )
        self.ep.open_tunnel(ADV, cfg, self.now)

    @rule(data=st.data())
    def open_session(self, data: st.DataObject) -> None:
        live = [
            t
            for t in self.ep.tunnels.values()
            if t.state not in (TunnelState.CLOSING, TunnelState.CLOSED)
        ]
        if not live:
            return
        t = data.draw(st.sampled_from(live))
        serial = data.draw(st.integers(0, 10))
        self.ep.open_session(t.tunnel_id, CallParams(serial=serial, authen_name="u"), self.now)

    @rule(data=st.data())
    def close_something(self, data: st.DataObject) -> None:
        if not self.ep.tunnels:
            return
        t = data.draw(st.sampled_from(list(self.ep.tunnels.values())))
        if t.sessions and data.draw(st.booleans()):
            sid = data.draw(st.sampled_from(sorted(t.sessions)))
            self.ep.close_session(t.tunnel_id, sid, 3, None, "admin", self.now)
        else:
            self.ep.close_tunnel(t.tunnel_id, 1, None, "bye", self.now)

    # -- the adversary ----------------------------------------------------------------------
    @rule(
        data=st.data(),
        mt=st.sampled_from([*MessageType, None, 5, 13, 99]),
        in_order=st.floats(0, 1),
        junk=st.lists(st.sampled_from(JUNK), max_size=2),
        drop=st.integers(0, 3),
    )
    def adversary_sends(
        self,
        data: st.DataObject,
        mt: MessageType | int | None,
        in_order: float,
        junk: list[Avp],
        drop: int,
    ) -> None:
        tunnels = list(self.ep.tunnels.values())
        t = data.draw(st.sampled_from(tunnels)) if tunnels and data.draw(st.booleans()) else None
        tid = t.tunnel_id if t is not None else data.draw(st.sampled_from([0, 1, 0xFFFF]))
        sids = sorted(t.sessions) if t is not None else []
        sid = data.draw(st.sampled_from([0, *sids, 4321]))
        if t is not None and in_order < 0.8:
            ns, nr = t.transport.expected, t.transport.next_ns
        else:
            ns, nr = data.draw(st.integers(0, 0xFFFF)), data.draw(st.integers(0, 0xFFFF))
        chal = None if t is None else t._peer_challenge or t._our_challenge
        if isinstance(mt, MessageType):
            avps = template(mt, self.rng, chal)
            if drop and avps:
                del avps[self.rng.randrange(len(avps))]
            avps += junk
            msg = ControlMessage(tid, sid, ns, nr, mt, tuple(avps))
            wire = encode_control(msg, SECRET, self.rng.randbytes)
        elif mt is None:
            wire = encode_control(ControlMessage(tid, sid, ns, nr, None, ()))
        else:  # an unknown Message Type value, M bit random
            body = (
                (0x8008 if drop % 2 else 0x0008).to_bytes(2, "big")
                + b"\0\0\0\0"
                + mt.to_bytes(2, "big")
            )
            wire = (
                (0xC802).to_bytes(2, "big")
                + (12 + len(body)).to_bytes(2, "big")
                + tid.to_bytes(2, "big")
                + sid.to_bytes(2, "big")
                + ns.to_bytes(2, "big")
                + nr.to_bytes(2, "big")
                + body
            )
        peer = ADV if data.draw(st.integers(0, 9)) else OTHER
        self.ep.receive_datagram(wire, peer, self.now)

    @rule(data=st.data())
    def adversary_replays_or_corrupts(self, data: st.DataObject) -> None:
        if not self.sent:
            return
        d = bytearray(data.draw(st.sampled_from(self.sent[-20:])))
        for _ in range(data.draw(st.integers(0, 3))):
            i = data.draw(st.integers(0, len(d) - 1))
            d[i] ^= data.draw(st.integers(1, 255))
        if data.draw(st.booleans()):
            d = d[: data.draw(st.integers(0, len(d)))]
        self.ep.receive_datagram(bytes(d), ADV, self.now)

    @rule(dt=st.sampled_from([0.0, 0.05, 0.2, 1.0, 3.0, 31.0, 61.0]))
    def time_passes(self, dt: float) -> None:
        self.now += dt
        while (deadline := self.ep.get_timer()) is not None and deadline <= self.now:
            self.ep.handle_timer(self.now)
            self.drain()
        self.ep.handle_timer(self.now)

    def drain(self) -> None:
        for data, peer in self.ep.datagrams_to_send(self.now):
            assert peer in (ADV, OTHER)
            self.sent.append(data)
            decode_control(data, SECRET)  # everything we send is well-formed
        while (e := self.ep.next_event()) is not None:
            if isinstance(e, TunnelClosed):
                key = e.tunnel_id
                assert key not in self.closed_tunnels or key not in self.ep.tunnels
                self.closed_tunnels.add(key)
            if isinstance(e, SessionClosed):
                skey = (e.tunnel_id, e.session_id, 0)
                self.closed_sessions.add(skey)

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def drained_and_consistent(self) -> None:
        self.drain()
        assert self.ep.counters["internal_errors"] == 0
        for tid, t in self.ep.tunnels.items():
            assert tid == t.tunnel_id and tid != 0
            assert 0 not in t.sessions and len(t.sessions) <= 0xFFFF
            if t.state in (TunnelState.CLOSING, TunnelState.CLOSED):
                assert not t.sessions
            if t.state is not TunnelState.CLOSED:
                # every live tunnel has a deadline: nothing can linger forever
                assert t.get_timer() is not None, t.state
        timer = self.ep.get_timer()
        assert timer is None or timer >= 0
        # no tunnel disappears without a TunnelClosed event
        for tid in self.known - set(self.ep.tunnels):
            assert tid in self.closed_tunnels
        self.known = set(self.ep.tunnels)


AdversarialPeer.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestAdversarialPeer = AdversarialPeer.TestCase
