"""Incoming-call transition tables (RFC 2661 7.4.1 LAC, 7.4.2 LNS): every (state, input) pair
of both tables, driven through real :class:`LacSession` / :class:`LnsSession` objects."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.l2tp.avps import (
    Avp,
    accm_avp,
    call_errors_avp,
    result_code_avp,
    uint16_avp,
    uint32_avp,
)
from broker.l2tp.codec import ControlMessage
from broker.l2tp.config import CallParams, TunnelConfig
from broker.l2tp.constants import AvpType, MessageType
from broker.l2tp.events import L2tpEvent, SessionClosed
from broker.l2tp.session import LacSession, LnsSession
from broker.l2tp.session_fsm import (
    LAC_TABLE,
    LNS_TABLE,
    SessionAction,
    SessionInput,
    SessionState,
    session_transition,
)


class Host:
    tunnel_id = 10
    peer_tunnel_id = 20
    config = TunnelConfig()

    def __init__(self) -> None:
        self.sent: list[tuple[MessageType, int, list[Avp]]] = []
        self.events: list[L2tpEvent] = []

    def send_message(self, mt: MessageType, sid: int, avps: list[Avp], now: float) -> None:
        self.sent.append((mt, sid, avps))

    def emit(self, event: L2tpEvent) -> None:
        self.events.append(event)


I = SessionInput  # noqa: E741
MT = MessageType


def message_for(inp: SessionInput) -> ControlMessage | None:
    sid = uint16_avp(AvpType.ASSIGNED_SESSION_ID, 99)
    table: dict[SessionInput, tuple[MessageType, tuple[Avp, ...]]] = {
        I.RX_ICRQ_OK: (MT.ICRQ, (sid, uint32_avp(AvpType.CALL_SERIAL_NUMBER, 1))),
        I.RX_ICRQ_BAD: (MT.ICRQ, ()),
        I.RX_ICRP_OK: (MT.ICRP, (sid,)),
        I.RX_ICRP_BAD: (MT.ICRP, ()),
        I.RX_ICCN_OK: (
            MT.ICCN,
            (uint32_avp(AvpType.TX_CONNECT_SPEED, 1000), uint32_avp(AvpType.FRAMING_TYPE, 1)),
        ),
        I.RX_ICCN_BAD: (MT.ICCN, ()),
        I.RX_CDN: (MT.CDN, (result_code_avp(3, 0, "bye"), sid)),
        I.RX_SLI: (MT.SLI, (accm_avp(0, 0xFFFFFFFF),)),
        I.RX_WEN: (MT.WEN, (call_errors_avp(1, 2, 3, 4, 5, 6),)),
        I.RX_OTHER: (MT.OCRQ, ()),
    }
    if inp not in table:
        return None
    mt, avps = table[inp]
    return ControlMessage(10, 5, 0, 0, mt, avps)


PAIRS = [(role, s, i) for role in ("lac", "lns") for s in SessionState for i in SessionInput]


def run_pair(role: str, state: SessionState, inp: SessionInput) -> tuple[Host, object]:
    host = Host()
    cls = LacSession if role == "lac" else LnsSession
    session = cls(host, 5, CallParams(calling_number="123"))
    session.state = state
    session.announced = state is not SessionState.IDLE
    session.peer_session_id = 0 if state is SessionState.WAIT_REPLY else 99
    table = LAC_TABLE if role == "lac" else LNS_TABLE
    action, expected = session_transition(table, state, inp)
    got = session.handle(inp, 1.0, message_for(inp), None)
    assert got is action
    assert session.state is expected
    # invariants: a closed announced session reports exactly one SessionClosed
    closed = [e for e in host.events if isinstance(e, SessionClosed)]
    assert len(closed) <= 1
    if (
        expected is SessionState.CLOSED
        and state is not SessionState.CLOSED
        and session.announced is False
    ):
        assert len(closed) == (1 if state is not SessionState.IDLE else len(closed))
    for mt, _sid, avps in host.sent:
        if mt is MT.CDN:
            assert avps[0].type == AvpType.RESULT_CODE
            assert avps[1].type == AvpType.ASSIGNED_SESSION_ID
    return host, action


@pytest.mark.parametrize(("role", "state", "inp"), PAIRS, ids=str)
def test_every_pair(role: str, state: SessionState, inp: SessionInput) -> None:
    table = LAC_TABLE if role == "lac" else LNS_TABLE
    host, action = run_pair(role, state, inp)
    if (state, inp) not in table:
        assert action is SessionAction.PROTOCOL_ERROR
        assert any(isinstance(e, SessionClosed) for e in host.events) or state in (
            SessionState.IDLE,
        )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PAIRS))
def test_pairs_hypothesis(pair: tuple[str, SessionState, SessionInput]) -> None:
    run_pair(*pair)


def test_rfc_rows() -> None:
    S = SessionState
    assert LAC_TABLE[(S.WAIT_TUNNEL, I.TUNNEL_OPEN)] == (SessionAction.SEND_ICRQ, S.WAIT_REPLY)
    assert LAC_TABLE[(S.WAIT_REPLY, I.RX_ICRP_OK)] == (SessionAction.SEND_ICCN, S.ESTABLISHED)
    assert LAC_TABLE[(S.WAIT_REPLY, I.RX_CDN)][1] is S.CLOSED
    assert LNS_TABLE[(S.IDLE, I.RX_ICRQ_OK)] == (SessionAction.SEND_ICRP, S.WAIT_CONNECT)
    assert LNS_TABLE[(S.WAIT_CONNECT, I.RX_ICCN_OK)] == (SessionAction.ESTABLISH, S.ESTABLISHED)
    for table in (LAC_TABLE, LNS_TABLE):
        for i in SessionInput:
            assert table[(S.CLOSED, i)] == (SessionAction.IGNORE, S.CLOSED)


def test_protocol_error_sends_cdn_result_2() -> None:
    host, action = run_pair("lns", SessionState.ESTABLISHED, I.RX_OTHER)
    assert action is SessionAction.PROTOCOL_ERROR
    (mt, sid, avps) = host.sent[0]
    assert mt is MT.CDN and sid == 99
    assert avps[0].value[:2] == b"\x00\x02"


@settings(max_examples=100, deadline=None)
@given(role=st.sampled_from(["lac", "lns"]), inputs=st.lists(st.sampled_from(list(I)), max_size=10))
def test_random_sequences(role: str, inputs: list[SessionInput]) -> None:
    host = Host()
    cls = LacSession if role == "lac" else LnsSession
    table = LAC_TABLE if role == "lac" else LNS_TABLE
    session = cls(host, 5, CallParams())
    for inp in inputs:
        expected = session_transition(table, session.state, inp)[1]
        session.handle(inp, 0.0, message_for(inp))
        assert session.state is expected
    assert len([e for e in host.events if isinstance(e, SessionClosed)]) <= 1
