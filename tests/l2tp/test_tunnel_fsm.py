"""Control connection transition table (RFC 2661 7.2.1): every (state, input) pair.

Each pair is driven through a real :class:`TunnelConnection` (state forced, input applied)
and must land in the state the table (or the protocol-error default) names, with the
invariants holding: sessions gone once closing, TunnelClosed at most once, every datagram
decodable.
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import (
    Avp,
    bytes_avp,
    challenge_response,
    protocol_version_avp,
    result_code_avp,
    str_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage, decode_control
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.events import L2tpEvent, TunnelClosed
from broker.l2tp.tunnel import TunnelConnection
from broker.l2tp.tunnel_fsm import (
    TUNNEL_TABLE,
    TunnelAction,
    TunnelInput,
    TunnelState,
    tunnel_transition,
)

SECRET = b"s3cret"
ALL_PAIRS = [(s, i) for s in TunnelState for i in TunnelInput]


def _setup_avps(challenge_reply: bytes | None = None) -> tuple[Avp, ...]:
    avps = [
        protocol_version_avp(),
        str_avp(AvpType.HOST_NAME, "peer"),
        uint32_avp(AvpType.FRAMING_CAPABILITIES, 3),
        uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 77),
    ]
    if challenge_reply is not None:
        avps.append(bytes_avp(AvpType.CHALLENGE_RESPONSE, challenge_reply))
    return tuple(avps)


def message_for(inp: TunnelInput, t: TunnelConnection) -> ControlMessage | None:
    mt = MessageType
    chal = t._our_challenge
    if inp is TunnelInput.RX_SCCRQ_OK:
        return ControlMessage(0, 0, 0, 0, mt.SCCRQ, _setup_avps())
    if inp is TunnelInput.RX_SCCRQ_BAD:
        return ControlMessage(0, 0, 0, 0, mt.SCCRQ, (protocol_version_avp(),))
    if inp is TunnelInput.RX_SCCRP_OK:
        reply = None if chal is None else challenge_response(2, SECRET, chal)
        return ControlMessage(1, 0, 0, 1, mt.SCCRP, _setup_avps(reply))
    if inp is TunnelInput.RX_SCCRP_BAD:
        return ControlMessage(1, 0, 0, 1, mt.SCCRP, _setup_avps(b"\0" * 16))
    if inp is TunnelInput.RX_SCCCN_OK:
        reply = b"" if chal is None else challenge_response(3, SECRET, chal)
        return ControlMessage(1, 0, 1, 1, mt.SCCCN, (bytes_avp(AvpType.CHALLENGE_RESPONSE, reply),))
    if inp is TunnelInput.RX_SCCCN_BAD:
        return ControlMessage(1, 0, 1, 1, mt.SCCCN, ())
    if inp is TunnelInput.RX_STOPCCN:
        return ControlMessage(
            1, 0, 1, 1, mt.StopCCN, (uint16_avp(AvpType.ASSIGNED_TUNNEL_ID, 77), result_code_avp(6))
        )
    if inp is TunnelInput.RX_HELLO:
        return ControlMessage(1, 0, 1, 1, mt.HELLO, ())
    if inp is TunnelInput.RX_SESSION:
        return ControlMessage(
            1, 4321, 1, 1, mt.CDN, (result_code_avp(3), uint16_avp(AvpType.ASSIGNED_SESSION_ID, 5))
        )
    return None


def fresh(now: float = 0.0) -> tuple[TunnelConnection, deque[L2tpEvent]]:
    events: deque[L2tpEvent] = deque()
    r = random.Random(7)
    t = TunnelConnection(
        tunnel_id=100,
        peer=("192.0.2.9", 1701),
        config=TunnelConfig(secret=SECRET),
        now=now,
        events=events,
        rand_bytes=r.randbytes,
        accept_calls=True,
    )
    return t, events


def drive(t: TunnelConnection, state: TunnelState, inp: TunnelInput, now: float) -> None:
    """Force ``state`` (with a waiting session and a sent challenge) and apply ``inp``."""
    t.state = state
    t._our_challenge = b"c" * 16
    t.peer_tunnel_id = 77
    msg = message_for(inp, t)
    if inp is TunnelInput.RX_SCCRQ_BAD and state is TunnelState.IDLE:
        assert msg is not None
        assert t._classify_sccrq(msg) is inp  # records the StopCCN cause
    if inp is TunnelInput.LOCAL_CLOSE:
        t._cause = ("local", 1, None, "")
    t.apply(inp, now, msg)


ENDING = (TunnelState.CLOSING, TunnelState.CLOSED)


def check_invariants(t: TunnelConnection, events: deque[L2tpEvent], was: TunnelState) -> None:
    closed = [e for e in events if isinstance(e, TunnelClosed)]
    assert len(closed) <= 1
    if t.state in ENDING:
        assert not t.sessions
        if was not in ENDING:
            assert len(closed) == 1  # entering closing/closed is reported exactly once
    for data in t.datagrams_to_send(1e9):
        decode_control(data, SECRET)


@pytest.mark.parametrize(("state", "inp"), ALL_PAIRS, ids=lambda v: v.name)
def test_every_pair(state: TunnelState, inp: TunnelInput) -> None:
    t, events = fresh()
    if state in (TunnelState.WAIT_CTL_REPLY, TunnelState.WAIT_CTL_CONN, TunnelState.ESTABLISHED):
        t.state = TunnelState.WAIT_CTL_REPLY
        t.open_session(CallParams(), 0.0)
    action, expected = tunnel_transition(state, inp)
    drive(t, state, inp, 1.0)
    assert t.state is expected, (state, inp, action)
    check_invariants(t, events, state)
    if (state, inp) not in TUNNEL_TABLE:
        assert action is TunnelAction.PROTOCOL_ERROR
        assert any(
            isinstance(e, TunnelClosed) and e.reason == "protocol-error" and e.result == 7
            for e in events
        )


def test_table_shape() -> None:
    # closed is absorbing, every state can be left for closing/closed, the RFC rows exist
    for i in TunnelInput:
        assert TUNNEL_TABLE[(TunnelState.CLOSED, i)][1] is TunnelState.CLOSED
    assert TUNNEL_TABLE[(TunnelState.IDLE, TunnelInput.LOCAL_OPEN)] == (
        TunnelAction.SEND_SCCRQ,
        TunnelState.WAIT_CTL_REPLY,
    )
    assert TUNNEL_TABLE[(TunnelState.WAIT_CTL_REPLY, TunnelInput.RX_SCCRP_OK)][1] is (
        TunnelState.ESTABLISHED
    )
    assert TUNNEL_TABLE[(TunnelState.WAIT_CTL_CONN, TunnelInput.RX_SCCCN_OK)][1] is (
        TunnelState.ESTABLISHED
    )
    for s in (TunnelState.WAIT_CTL_REPLY, TunnelState.WAIT_CTL_CONN, TunnelState.ESTABLISHED):
        assert TUNNEL_TABLE[(s, TunnelInput.RX_STOPCCN)][1] is TunnelState.CLOSING
        assert TUNNEL_TABLE[(s, TunnelInput.RETRANSMIT_EXHAUSTED)][1] is TunnelState.CLOSED
    # RFC 7.2.1: an established tunnel receiving SCCRQ/SCCRP/SCCCN sends StopCCN
    for i in (TunnelInput.RX_SCCRQ_OK, TunnelInput.RX_SCCRP_OK, TunnelInput.RX_SCCCN_OK):
        assert tunnel_transition(TunnelState.ESTABLISHED, i) == (
            TunnelAction.PROTOCOL_ERROR,
            TunnelState.CLOSING,
        )


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list(TunnelInput)), min_size=1, max_size=12))
def test_random_input_sequences_follow_the_table(inputs: list[TunnelInput]) -> None:
    t, events = fresh()
    now = 0.0
    for inp in inputs:
        now += 1.0
        was = t.state
        _action, expected = tunnel_transition(was, inp)
        drive(t, was, inp, now)
        assert t.state is expected
        check_invariants(t, events, TunnelState.IDLE)


@settings(max_examples=len(ALL_PAIRS) * 2, deadline=None)
@given(st.sampled_from(ALL_PAIRS))
def test_pairs_hypothesis(pair: tuple[TunnelState, TunnelInput]) -> None:
    state, inp = pair
    t, events = fresh()
    drive(t, state, inp, 1.0)
    assert t.state is tunnel_transition(state, inp)[1]
    check_invariants(t, events, state)
