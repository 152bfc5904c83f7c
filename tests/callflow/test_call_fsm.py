"""Every (state, input) pair of the call table, and random endings against the invariants."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.callflow.call_fsm import TRANSITIONS, CallInput, CallState, lookup
from broker.callflow.commands import AccountStart, AccountStop, CallEnded
from tests.support.callflow_harness import World, lns_tunnel, write_policies

POLICIES = write_policies(Path(tempfile.mkdtemp(prefix="fsm-pol-")))
USERS = {
    "u@isp-a.example": ("pw", [lns_tunnel(1, "198.51.100.2", 0), lns_tunnel(2, "198.51.100.3")]),
}


@given(st.sampled_from(list(CallState)), st.sampled_from(list(CallInput)))
def test_every_pair_is_a_transition_or_refused(state: CallState, inp: CallInput) -> None:
    step = lookup(state, inp)
    if (state, inp) in TRANSITIONS:
        assert step == TRANSITIONS[(state, inp)]
    else:
        assert step is None


def test_table_reaches_every_state_and_end_is_total() -> None:
    reached = {nxt for (_a, nxt) in TRANSITIONS.values()} | {CallState.DISCOVERED}
    assert reached == set(CallState)
    for state in CallState:  # END is accepted everywhere
        assert lookup(state, CallInput.END) is not None


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["new", "padt", "kill", "cdn", "lns-silent", "radius-down", "wait", "shutdown"]
        ),
        st.integers(0, 5),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ACTIONS, st.integers(0, 2**16))
def test_random_endings_keep_accounting_and_reservations_balanced(
    actions: list[tuple[str, int]], seed: int
) -> None:
    w = World(POLICIES, users=USERS, seed=seed)
    cpes = []
    for action, n in actions:
        if action == "new":
            cpes.append(w.add_cpe("u@isp-a.example", "pw"))
        elif action == "padt" and cpes:
            cpe = cpes[n % len(cpes)]
            if cpe.state == "ppp":
                w.cpe_padt(cpe)
        elif action == "kill" and w.flow.calls:
            ids = sorted(w.flow.calls)
            w.flow.kill(ids[n % len(ids)], "test", w.now)
        elif action == "cdn":
            lns = w.lns[("198.51.100.2", 1701)]
            for tid, tunnel in list(lns.tunnels.items()):
                for sid in list(tunnel.sessions)[:1]:
                    lns.close_session(tid, sid, 3, None, "admin", w.now)
        elif action == "lns-silent":
            w.lns_silent ^= {"198.51.100.2"}
        elif action == "radius-down":
            w.radius_down = not w.radius_down
        elif action == "shutdown":
            w.flow.shutdown(w.now)
        w.pump()
        w.advance(n * 3 + 0.5, step=0.5)
    w.flow.shutdown(w.now)
    w.advance(40, step=1.0)
    starts = {c.call.call_id for c in w.commands_of(AccountStart)}
    stops = [c.call.call_id for c in w.commands_of(AccountStop)]
    assert sorted(stops) == sorted(starts)  # exactly one Stop per Start
    ended = [c.call.call_id for c in w.commands_of(CallEnded)]
    assert len(ended) == len(set(ended))  # each call ends once
    assert w.reservations_open == set()
    assert w.flow.calls == {}
    assert len(w.splice) == 0
