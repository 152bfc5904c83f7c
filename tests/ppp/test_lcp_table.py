"""The LCP transition table against an independent transcription of RFC 1661 section 4.1."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.ppp.lcp import ControlAutomaton, RestartConfig, Signal
from broker.ppp.lcp_table import TABLE, TIMER_STATES, Action, Event, State

# Copied verbatim from RFC 1661 section 4.1 (the two halves of the table).
RFC_TEXT = """
      | State
      |    0         1         2         3         4         5
Events| Initial   Starting  Closed    Stopped   Closing   Stopping
------+-----------------------------------------------------------
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
      |
  TO+ |    -         -         -         -       str/4     str/5
  TO- |    -         -         -         -       tlf/2     tlf/3
      |
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
      |
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
      |
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
      |
 RXR  |    -         -         2         3         4         5

      | State
      |    6         7         8           9
Events| Req-Sent  Ack-Rcvd  Ack-Sent    Opened
------+-----------------------------------------
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
      |
  TO+ |  scr/6     scr/6     scr/8         -
  TO- |  tlf/3p    tlf/3p    tlf/3p        -
      |
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
      |
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
      |
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         6         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
      |
 RXR  |    6         7         8         ser/9
"""


def parse_rfc_table(text: str) -> dict[tuple[int, str], tuple[tuple[str, ...], int] | None]:
    out: dict[tuple[int, str], tuple[tuple[str, ...], int] | None] = {}
    states: list[int] = []
    for line in text.splitlines():
        if "|" not in line:
            continue
        head, _, rest = line.partition("|")
        head = head.strip()
        cells = rest.split()
        if head == "" and cells and cells[0].isdigit():
            states = [int(c) for c in cells]
            continue
        if head in ("", "Events") or head.startswith("---"):
            continue
        assert len(cells) == len(states), line
        for state, cell in zip(states, cells, strict=True):
            if cell == "-":
                out[(state, head)] = None
                continue
            cell = cell.rstrip("prx")
            actions, _, nxt = cell.rpartition("/")
            out[(state, head)] = (tuple(actions.split(",")) if actions else (), int(nxt))
    return out


RFC = parse_rfc_table(RFC_TEXT)


def test_rfc_transcription_is_complete() -> None:
    assert len(RFC) == 10 * 16


def test_table_is_total_and_matches_rfc() -> None:
    assert set(TABLE) == {(s, e) for s in State for e in Event}
    for (state, event), transition in TABLE.items():
        expected = RFC[(int(state), event.value)]
        if expected is None:
            assert transition is None, (state, event)
        else:
            assert transition is not None, (state, event)
            actions, nxt = transition
            assert (tuple(a.value for a in actions), int(nxt)) == expected, (state, event)


class Probe(ControlAutomaton):
    protocol = 0x8021


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(State)), st.sampled_from(list(Event)), st.integers(0, 3))
def test_every_pair_runs(state: State, event: Event, count: int) -> None:
    a = Probe(RestartConfig(), rand_bytes=lambda n: bytes(n))
    a.state = state
    a.restart_count = count
    a._fire(event)
    transition = TABLE[(state, event)]
    if transition is None:
        assert a.state is state
        assert a.counters == {"illegal-event": 1}
        return
    actions, nxt = transition
    assert a.state is nxt
    sent_codes = [f[2] for f in a.frames_to_send()]
    expected_codes = {
        Action.SCR: 1,
        Action.SCA: 2,
        Action.STR: 5,
        Action.STA: 6,
        Action.SCJ: 7,
    }
    wanted = [expected_codes[x] for x in actions if x in expected_codes]
    if Action.SCN in actions:
        assert len(sent_codes) == len(wanted) + 1
    else:
        assert sent_codes == wanted
    signals = {Action.TLU: Signal.UP, Action.TLD: Signal.DOWN}
    signals |= {Action.TLS: Signal.STARTED, Action.TLF: Signal.FINISHED}
    assert a.signals == [signals[x] for x in actions if x in signals]
    if nxt not in TIMER_STATES:
        assert a.get_timer() is None
    if {Action.SCR, Action.STR, Action.ZRC} & set(actions):
        assert a.get_timer() == 3.0
