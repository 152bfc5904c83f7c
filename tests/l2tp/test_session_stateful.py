"""Stateful Hypothesis test of the session machines (RFC 2661 7.4.1 LAC, 7.4.2 LNS) against
an adversarial peer: over a tunnel between our LAC and our LNS, the adversary injects
in-sequence session messages (ICRQ/ICRP/ICCN/CDN/SLI/WEN and tunnel-only types) with valid,
missing or junk AVPs, for known, unknown and zero session ids, into either side; plus
truncated and corrupted datagrams and timer firings. Invariants after every step: no
exception, every session in a state of its role's table, no CLOSED session kept, one
SessionClosed at most per announced session, timers never in the past, malformed input
counted, session tables bounded by what was asked for."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from broker.l2tp.avps import (
    Avp,
    accm_avp,
    call_errors_avp,
    ppp_disconnect_cause_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage, encode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.endpoint import L2tpEndpoint
from broker.l2tp.events import IncomingSession, SessionClosed, SessionEstablished
from broker.l2tp.session import LacSession, LnsSession
from broker.l2tp.session_fsm import LAC_TABLE, LNS_TABLE, SessionState
from broker.l2tp.tunnel import TunnelConnection
from broker.l2tp.tunnel_fsm import TunnelState
from tests.support.l2tp_net import LAC_ADDR, LNS_ADDR, Net

SHORT = (1.0, 2.0, 2.0)
LAC_STATES = {s for s, _ in LAC_TABLE} | {n for _, n in LAC_TABLE.values()}
LNS_STATES = {s for s, _ in LNS_TABLE} | {n for _, n in LNS_TABLE.values()}
SESSION_TYPES = [
    MessageType.ICRQ,
    MessageType.ICRP,
    MessageType.ICCN,
    MessageType.CDN,
    MessageType.SLI,
    MessageType.WEN,
    MessageType.OCRQ,
    MessageType.HELLO,
]
JUNK = [
    Avp(999, b"?", mandatory=True),  # unknown mandatory
    Avp(998, b"?", mandatory=False),  # unknown optional
    Avp(int(AvpType.ASSIGNED_SESSION_ID), b"\x00\x00", mandatory=True),  # session id 0
    Avp(int(AvpType.RESULT_CODE), b"\x00", mandatory=True),  # short result code
    Avp(int(AvpType.FRAMING_TYPE), b"\x00", mandatory=True),  # short framing type
    Avp(int(AvpType.ACCM), b"\x01\x02", mandatory=True),  # short ACCM
]


def template(mt: MessageType, rng: random.Random) -> list[Avp]:
    """What a well-behaved peer sends with each session message."""
    sid = uint16_avp(AvpType.ASSIGNED_SESSION_ID, rng.randint(1, 0xFFFF))
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
    if mt is MessageType.OCRQ:
        return [sid, str_avp(AvpType.CALLED_NUMBER, "1")]
    return []


class SessionAdversary(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.rng = random.Random(0)
        self.net = Net(
            seed=3,
            lns_config=TunnelConfig(host_name="lns", retransmit=SHORT),
            lns_policy=lambda _t, _s, p: (4, 0, "busy") if p.serial % 5 == 4 else None,
        )
        self.lac_tid = self.net.lac.open_tunnel(LNS_ADDR, TunnelConfig(retransmit=SHORT), 0.0)
        self.net.run(until=3.0)
        self.opened = 0  # sessions our LAC was asked to open
        self.icrqs = 0  # ICRQs injected into our LNS
        self.closed: set[tuple[str, int, int]] = set()
        self.malformed = {"lac": 0, "lns": 0}

    # -- helpers -------------------------------------------------------------------------
    def side(self, name: str) -> tuple[L2tpEndpoint, tuple[str, int]]:
        if name == "lac":
            return self.net.lac, LNS_ADDR
        return self.net.lns, LAC_ADDR

    def live_tunnels(self, ep: L2tpEndpoint) -> list[TunnelConnection]:
        return [t for t in ep.tunnels.values() if t.state is TunnelState.ESTABLISHED]

    def deliver(self, ep: L2tpEndpoint, data: bytes, peer: tuple[str, int]) -> None:
        ep.receive_datagram(data, peer, self.net.now)
        self.net.run(until=self.net.now)

    # -- commands ------------------------------------------------------------------------
    @rule(serial=st.integers(0, 9))
    def lac_opens_session(self, serial: int) -> None:
        tunnels = self.live_tunnels(self.net.lac)
        if not tunnels:
            return
        self.opened += 1
        self.net.lac.open_session(tunnels[0].tunnel_id, CallParams(serial=serial), self.net.now)
        self.net.run(until=self.net.now + 0.5)  # ICRQ, ICRP, ICCN

    @rule(data=st.data(), which=st.sampled_from(["lac", "lns"]))
    def side_closes_session(self, data: st.DataObject, which: str) -> None:
        ep, _ = self.side(which)
        for t in ep.tunnels.values():
            if t.sessions:
                sid = data.draw(st.sampled_from(sorted(t.sessions)))
                ep.close_session(t.tunnel_id, sid, 3, None, "admin", self.net.now)
                self.net.run(until=self.net.now)
                return

    @precondition(lambda self: not self.live_tunnels(self.net.lac))
    @rule()
    def reopen_tunnel(self) -> None:
        self.lac_tid = self.net.lac.open_tunnel(
            LNS_ADDR, TunnelConfig(retransmit=SHORT), self.net.now
        )
        self.net.run(until=self.net.now + 3.0)

    # -- the adversary ----------------------------------------------------------------------
    @rule(
        data=st.data(),
        which=st.sampled_from(["lac", "lns"]),
        mt=st.sampled_from(SESSION_TYPES),
        junk=st.lists(st.sampled_from(JUNK), max_size=2),
        drop=st.integers(0, 3),
        in_order=st.sampled_from([True, True, True, False]),
    )
    def adversary_injects(
        self,
        data: st.DataObject,
        which: str,
        mt: MessageType,
        junk: list[Avp],
        drop: int,
        in_order: bool,
    ) -> None:
        ep, peer = self.side(which)
        tunnels = self.live_tunnels(ep)
        if not tunnels:
            return
        t = tunnels[0]
        if t.sessions and data.draw(st.integers(0, 3)):
            sid = data.draw(st.sampled_from(sorted(t.sessions)))
        else:
            sid = data.draw(st.sampled_from([0, 0xFFFF]))
        if in_order:
            ns, nr = t.transport.expected, t.transport.next_ns
        else:
            ns, nr = data.draw(st.integers(0, 0xFFFF)), data.draw(st.integers(0, 0xFFFF))
        avps = template(mt, self.rng)
        if drop and avps:
            del avps[self.rng.randrange(len(avps))]
        avps += junk
        if mt is MessageType.ICRQ and which == "lns":
            self.icrqs += 1
        msg = ControlMessage(t.tunnel_id, sid, ns, nr, mt, tuple(avps))  # our ids: we receive it
        self.deliver(ep, encode_control(msg), peer)

    @rule(
        which=st.sampled_from(["lac", "lns"]),
        cut=st.integers(0, 11),
        version=st.sampled_from([0, 1, 3, 15]),
    )
    def adversary_sends_malformed(self, which: str, cut: int, version: int) -> None:
        """A header that cannot be decoded: too short, or not version 2. Always counted."""
        ep, peer = self.side(which)
        tunnels = self.live_tunnels(ep)
        tid = tunnels[0].tunnel_id if tunnels else 1
        if cut < 6:
            wire = bytes((0xC8, 0x02, 0, 12, tid >> 8, tid & 0xFF))[:cut]
        else:
            wire = bytes((0xC8, version, 0, 12, tid >> 8, tid & 0xFF, 0, 1, 0, 0, 0, 0))
        before = ep.counters["malformed"]
        self.deliver(ep, wire, peer)
        assert ep.counters["malformed"] == before + 1
        self.malformed[which] += 1

    @rule(data=st.data(), which=st.sampled_from(["lac", "lns"]))
    def adversary_replays_or_corrupts(self, data: st.DataObject, which: str) -> None:
        sent = [d for _t, who, d in self.net.sent[-30:] if who != which]
        if not sent:
            return
        d = bytearray(data.draw(st.sampled_from(sent)))
        for _ in range(data.draw(st.integers(0, 3))):
            d[data.draw(st.integers(0, len(d) - 1))] ^= data.draw(st.integers(1, 255))
        if data.draw(st.booleans()):
            d = d[: data.draw(st.integers(0, len(d)))]
        ep, peer = self.side(which)
        self.deliver(ep, bytes(d), peer)

    @rule(dt=st.sampled_from([0.0, 0.05, 0.5, 2.0, 7.0, 31.0, 61.0]))
    def time_passes(self, dt: float) -> None:
        self.net.run(until=self.net.now + dt)

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def consistent(self) -> None:
        self.net.run(until=self.net.now)  # drain
        now = self.net.now
        for name, ep in (("lac", self.net.lac), ("lns", self.net.lns)):
            assert ep.counters["internal_errors"] == 0
            assert ep.counters["malformed"] >= self.malformed[name]
            timer = ep.get_timer()
            assert timer is None or timer >= now, (timer, now)
            for t in ep.tunnels.values():
                assert 0 not in t.sessions
                for sid, s in t.sessions.items():
                    assert s.session_id == sid
                    assert s.state is not SessionState.CLOSED, s
                    if isinstance(s, LacSession):
                        assert s.state in LAC_STATES
                    else:
                        assert isinstance(s, LnsSession) and s.state in LNS_STATES
        lac_sessions = sum(len(t.sessions) for t in self.net.lac.tunnels.values())
        lns_sessions = sum(len(t.sessions) for t in self.net.lns.tunnels.values())
        assert lac_sessions <= self.opened
        assert lns_sessions <= self.opened + self.icrqs
        for name, events in (("lac", self.net.lac_events), ("lns", self.net.lns_events)):
            closed: set[tuple[int, int] | None] = set()
            for e in events:
                key = (e.tunnel_id, e.session_id) if hasattr(e, "session_id") else None
                if isinstance(e, (IncomingSession, SessionEstablished)):
                    closed.discard(key)  # an id may be reused after its close
                elif isinstance(e, SessionClosed):
                    assert key not in closed, f"{name}: two SessionClosed for {key}"
                    closed.add(key)


SessionAdversary.TestCase.settings = settings(
    derandomize=True, max_examples=30, stateful_step_count=30, deadline=None
)
TestSessionAdversary = SessionAdversary.TestCase
