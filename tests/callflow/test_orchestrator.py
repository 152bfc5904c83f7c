"""The whole call flow in memory: PPPoE -> LCP -> CHAP/PAP -> RADIUS -> selection -> L2TP ->
splice -> accounting, and every ending path."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.callflow.commands import AccountStart, AccountStop, CallEnded, CallUp, LockOut
from broker.callflow.terminate import TerminateCause
from tests.support.callflow_harness import World, lns_tunnel, write_policies

USERS = {
    "alice@isp-a.example": (
        "alicepw",
        [lns_tunnel(1, "198.51.100.2", 0), lns_tunnel(2, "198.51.100.3", 10)],
    ),
    "bob@isp-a.example": ("bobpw", [lns_tunnel(1, "198.51.100.2", 0)]),
    "carol@isp-a.example": ("carolpw", [lns_tunnel(1, "198.51.100.3", 0)]),
    "nolns@isp-a.example": ("pw", []),
    "erin": ("erinpw", None),  # static realm, realm stripped
}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(write_policies(tmp_path / "pol"), users=USERS)


def test_chap_call_comes_up_and_splices(world: World) -> None:
    cpe = world.add_cpe("alice@isp-a.example", "alicepw")
    world.advance(2)
    assert world.authenticated(cpe)
    ups = world.commands_of(CallUp)
    assert len(ups) == 1
    snap = ups[0].call
    assert snap.lns_address == "198.51.100.2"  # preference 0 first
    assert snap.username == "alice@isp-a.example"
    assert snap.class_attrs == (b"bill-alice@isp-a.example",)
    assert len(world.commands_of(AccountStart)) == 1
    # data from the CPE reaches the LNS with FF 03, in an L2TP data message
    world.cpe_send(cpe, b"\x00\x21" + b"\x45" * 20)
    data = world.lns_data["198.51.100.2"][-1]
    assert data[6:10] == b"\xff\x03\x00\x21"


def test_pap_call_and_tunnel_reuse(world: World) -> None:
    a = world.add_cpe("bob@isp-a.example", "bobpw", auth=("pap",))
    b = world.add_cpe("bob@isp-a.example", "bobpw", auth=("pap",))
    world.advance(2)
    assert world.authenticated(a) and world.authenticated(b)
    ups = world.commands_of(CallUp)
    assert len(ups) == 2
    assert ups[0].call.tunnel_id == ups[1].call.tunnel_id
    assert world.flow.counters.get("tunnel_reused") == 1


def test_radius_reject_gives_chap_failure_with_reason(world: World) -> None:
    cpe = world.add_cpe("alice@isp-a.example", "wrong")
    world.advance(2)
    assert world.auth_failed(cpe) == "bad password"
    assert cpe.padt_received
    assert world.commands_of(AccountStart) == []
    assert world.flow.calls == {}


def test_no_candidate_rejects(world: World) -> None:
    cpe = world.add_cpe("nolns@isp-a.example", "pw")
    world.advance(2)
    assert world.auth_failed(cpe) == "no LNS available for this realm"


def test_failover_to_next_preference_when_lns_silent(world: World) -> None:
    world.lns_silent.add("198.51.100.2")
    cpe = world.add_cpe("alice@isp-a.example", "alicepw")
    world.advance(30)
    assert world.authenticated(cpe)
    ups = world.commands_of(CallUp)
    assert [u.call.lns_address for u in ups] == ["198.51.100.3"]
    locks = world.commands_of(LockOut)
    assert [(lk.lns_id, lk.hold) for lk in locks] == [("198.51.100.2:1701", 300.0)]
    # the next call skips the locked-out LNS at once
    world.add_cpe("alice@isp-a.example", "alicepw")
    world.advance(2)
    assert [u.call.lns_address for u in world.commands_of(CallUp)][-1] == "198.51.100.3"


def test_static_realm_strips_realm(world: World) -> None:
    cpe = world.add_cpe("erin@static.example", "x")
    world.advance(2)
    assert world.authenticated(cpe)
    assert world.commands_of(CallUp)[0].call.lns_address == "203.0.113.30"


@pytest.mark.parametrize(
    "ending", ["padt", "kill", "lcp-terminate", "echo-loss", "cdn", "shutdown", "tunnel-lost"]
)
def test_every_ending_gives_exactly_one_stop(world: World, ending: str) -> None:
    cpe = world.add_cpe("alice@isp-a.example", "alicepw")
    world.advance(2)
    (up,) = world.commands_of(CallUp)
    cid = up.call.call_id
    world.cpe_send(cpe, b"\x00\x21" + b"x" * 100)
    if ending == "padt":
        world.cpe_padt(cpe)
        cause = TerminateCause.USER_REQUEST
    elif ending == "kill":
        assert world.flow.kill(cid, "operator", world.now)
        cause = TerminateCause.ADMIN_RESET
    elif ending == "shutdown":
        world.flow.shutdown(world.now)
        cause = TerminateCause.ADMIN_REBOOT
    elif ending == "cdn":
        lns = world.lns[("198.51.100.2", 1701)]
        (tid,) = list(lns.tunnels)
        (sid,) = list(lns.tunnels[tid].sessions)
        lns.close_session(tid, sid, 3, None, "admin", world.now)
        cause = TerminateCause.HOST_REQUEST
    elif ending == "tunnel-lost":
        world.lns_silent.add("198.51.100.2")
        # the LAC's HELLO (60 s idle) is never acked -> tunnel cleared after the schedule
        world.advance(100, step=1.0)
        cause = TerminateCause.LOST_SERVICE
    else:
        # after the splice LCP belongs to the LNS: the LAC only sees these as data
        world.flow.kill(cid, ending, world.now)
        cause = TerminateCause.ADMIN_RESET
    world.pump()
    world.advance(1)
    stops = world.commands_of(AccountStop)
    assert len(stops) == 1, stops
    assert stops[0].terminate_cause == cause
    sent = world.lns_data["198.51.100.2"]
    assert stops[0].counters["input_octets"] == sum(len(d) - 8 for d in sent) >= 102
    assert stops[0].counters["input_packets"] == len(sent)
    assert world.reservations_open == set()
    assert world.flow.calls == {}
    ended = world.commands_of(CallEnded)
    assert len(ended) == 1
    if ending != "padt":
        assert cpe.padt_received
