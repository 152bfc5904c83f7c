"""Tunnel identities above the per-tunnel cap, lockout scope and hold (issue 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.callflow.commands import CallUp, LockOut, Reserve
from broker.radius.tunnel import TunnelCandidate
from tests.support.callflow_harness import TUNNEL_SECRET, World, lns_tunnel, write_policies

LNS_A = "198.51.100.2"
LNS_B = "198.51.100.3"


def tunnel(tag: int, address: str, password: bytes, preference: int = 0) -> Any:
    return TunnelCandidate(
        tag=tag, tunnel_type=3, medium_type=1, server_endpoint=address,
        password=password, preference=preference, assignment_id=b"grp",
    )  # fmt: skip


USERS = {
    "u@capped.example": ("pw", [lns_tunnel(1, LNS_A)]),
    "h@held.example": ("pw", [lns_tunnel(1, LNS_A, 0), lns_tunnel(2, LNS_B, 10)]),
    # same LNS, a wrong tunnel secret for this realm only
    "w@wrong.example": (
        "pw",
        [tunnel(1, LNS_A, b"not-the-secret"), tunnel(2, LNS_B, TUNNEL_SECRET, 10)],
    ),
    "r@right.example": ("pw", [lns_tunnel(1, LNS_A)]),
}

REALM = """\
realm: {name}
match: {{kind: exact, value: {name}}}
tunnel_source: radius
{extra}
"""


@pytest.fixture
def world(tmp_path: Path) -> World:
    root = write_policies(tmp_path / "pol")
    for name, extra in (
        ("capped.example", "max_tunnel_sessions: 3"),
        ("held.example", "lockout_hold: 5"),
        ("wrong.example", "lockout_hold: 30"),
        ("right.example", ""),
    ):
        (root / "realms" / f"{name}.yaml").write_text(REALM.format(name=name, extra=extra))
    return World(root, users=USERS)


def test_fourth_call_opens_second_tunnel_with_same_identity(world: World) -> None:
    cpes = [world.add_cpe("u@capped.example", "pw") for _ in range(7)]
    world.advance(3)
    assert all(world.authenticated(c) for c in cpes)
    ups = world.commands_of(CallUp)
    assert len(ups) == 7
    per_tunnel: dict[int, int] = {}
    for up in ups:
        assert up.call.tunnel_id is not None
        per_tunnel[up.call.tunnel_id] = per_tunnel.get(up.call.tunnel_id, 0) + 1
    assert sorted(per_tunnel.values()) == [1, 3, 3]
    assert len({u.call.lns_id for u in ups}) == 1
    # the store counted 7 on one identity: it is never refused for the identity as a whole
    (key,) = {r.tunnel_key for r in world.commands_of(Reserve)}
    assert world.store.tunnel_counts[key] == 7
    assert all(r.tunnel_max is None for r in world.commands_of(Reserve))
    assert world.flow.counters["tunnels_opened"] == 3


def test_tunnel_slot_freed_is_reused(world: World) -> None:
    cpes = [world.add_cpe("u@capped.example", "pw") for _ in range(3)]
    world.advance(3)
    world.cpe_padt(cpes[0])
    world.advance(1)
    world.add_cpe("u@capped.example", "pw")
    world.advance(3)
    assert world.flow.counters["tunnels_opened"] == 1
    assert len(world.commands_of(CallUp)) == 4


def test_realm_lockout_hold_is_used_when_tunnel_fails_during_setup(world: World) -> None:
    world.lns_silent.add(LNS_A)
    cpe = world.add_cpe("h@held.example", "pw")
    world.advance(30)
    assert world.authenticated(cpe)
    assert [(lk.lns_id, lk.hold) for lk in world.commands_of(LockOut)] == [(f"{LNS_A}:1701", 5.0)]
    assert world.commands_of(CallUp)[0].call.lns_address == LNS_B


def test_realm_lockout_hold_is_used_when_established_tunnel_is_lost(world: World) -> None:
    cpe = world.add_cpe("h@held.example", "pw")
    world.advance(3)
    assert world.authenticated(cpe)
    world.lns_silent.add(LNS_A)
    world.advance(100, step=1.0)  # HELLO never acknowledged
    assert [lk.hold for lk in world.commands_of(LockOut)] == [5.0]
    # after the hold the LNS is tried again (a probe), not 300 s later
    world.lns_silent.discard(LNS_A)
    world.advance(6, step=1.0)
    again = world.add_cpe("h@held.example", "pw")
    world.advance(3)
    assert world.authenticated(again)
    assert world.commands_of(CallUp)[-1].call.lns_address == LNS_A


def test_wrong_tunnel_secret_holds_only_that_candidate(world: World) -> None:
    w = world.add_cpe("w@wrong.example", "pw")
    world.advance(10)
    assert world.authenticated(w)
    assert world.commands_of(CallUp)[-1].call.lns_address == LNS_B  # failed over
    assert world.commands_of(LockOut) == []  # the LNS itself is fine
    assert world.flow.counters["candidate_holds"] == 1
    assert world.store.locked_until == {}
    # another realm's tunnel to the same LNS with the right secret still comes up
    r = world.add_cpe("r@right.example", "pw")
    world.advance(3)
    assert world.authenticated(r)
    assert world.commands_of(CallUp)[-1].call.lns_address == LNS_A
    # the wrong candidate is not tried again while held: straight to LNS B
    opened = world.flow.counters["tunnels_opened"]
    w2 = world.add_cpe("w@wrong.example", "pw")
    world.advance(3)
    assert world.authenticated(w2)
    assert world.commands_of(CallUp)[-1].call.lns_address == LNS_B
    assert world.flow.counters["tunnels_opened"] == opened  # reused the LNS B tunnel
    assert world.flow.counters["candidate_holds"] == 1
    # after the realm's hold (30 s) it is tried again
    world.advance(31, step=1.0)
    world.add_cpe("w@wrong.example", "pw")
    world.advance(10)
    assert world.flow.counters["candidate_holds"] == 2


def test_lost_tunnel_padts_are_paced_through_the_flow_timer(world: World) -> None:
    from broker.pppoe.discovery import _PadtPacer

    world.discovery._padt = _PadtPacer(2.0, 2.0, 2.0)  # 2 PADTs/s, burst 2
    cpes = [world.add_cpe("r@right.example", "pw") for _ in range(6)]
    world.advance(3)
    assert all(world.authenticated(c) for c in cpes)
    world.lns_silent.add(LNS_A)
    got: list[float] = []
    end = world.now + 120
    while world.now < end and len(got) < 6:
        world.advance(0.25, step=0.25)
        got += [world.now] * (sum(c.padt_received for c in cpes) - len(got))
    assert len(got) == 6  # nobody's PADT was dropped
    assert world.flow.calls == {}  # the calls ended at once; only the PADTs waited
    assert got[-1] - got[0] >= 1.5  # 2 at once, then 2 per second
    assert world.discovery.counters["padt_paced"] == 4
    assert world.discovery.padts_queued == 0


def test_spliced_call_keeps_only_what_it_needs(world: World) -> None:
    """Memory per session (issue 8) and no credentials kept for the life of the call."""
    from broker.l2tp.session import _SENT_PARAMS

    cpe = world.add_cpe("r@right.example", "pw", auth=("pap",))
    world.advance(3)
    assert world.authenticated(cpe)
    (call,) = world.flow.calls.values()
    assert call.link is None and call.credentials is None and call.accept is None
    assert call.candidates == [] and call.timer_at is None
    assert call.class_attrs == (b"bill-r@right.example",)
    (up,) = world.commands_of(CallUp)
    assert up.call.class_attrs == call.class_attrs == world.flow.snapshot(call).class_attrs
    assert call.tunnel is not None and call.session_id is not None
    session = world.l2tp.tunnels[call.tunnel.tunnel_id].sessions[call.session_id]
    assert session.params is _SENT_PARAMS  # the proxy PAP password is gone from the LAC side
    # the call still ends cleanly, with its Class in the Stop
    world.cpe_padt(cpe)
    world.advance(1)
    assert world.flow.calls == {}


def test_radius_tunnel_assignment_id_reaches_the_snapshot(world: World) -> None:
    """Tunnel-Assignment-Id arrives from RADIUS as octets (RFC 2868 3.7): the tunnel record,
    call snapshots and tunnel accounting carry it as text (it used to be dropped)."""
    cpe = world.add_cpe("w@wrong.example", "pw")  # LNS A refuses the secret; LNS B takes it
    world.advance(5)
    assert world.authenticated(cpe)
    (up,) = world.commands_of(CallUp)
    assert up.call.tunnel_id is not None and up.call.assignment_id == "grp"
    rec = world.flow.tunnels[up.call.tunnel_id]
    assert rec.assignment_id == "grp"
