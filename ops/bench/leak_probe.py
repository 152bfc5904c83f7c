"""Find what grows in the call flow under churn (issue 9): drive the pure call flow in memory
(tests.support.callflow_harness World) with the soak's mix of endings and faults, then compare
tracemalloc snapshots after N, 2N, 3N rounds by traceback, counting only broker/ allocations.

    nice -n 10 .venv/bin/python -m ops.bench.leak_probe --rounds 60 --top 15
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.l2tp.config import TunnelConfig
from broker.l2tp.endpoint import L2tpEndpoint
from broker.pppoe.discovery import PppoeSessionKey
from broker.radius.tunnel import TunnelCandidate
from tests.support.callflow_harness import (
    IFACE,
    TUNNEL_SECRET,
    Cpe,
    World,
    lns_tunnel,
    write_policies,
)

LNS_A = "198.51.100.2"
LNS_B = "198.51.100.3"
USERS: dict[str, tuple[str, list[TunnelCandidate] | None]] = {
    f"u{i}@isp-a.example": (f"pw{i}", [lns_tunnel(1, LNS_A, 0), lns_tunnel(2, LNS_B, 0)])
    for i in range(64)
}


def structure_sizes(w: World) -> dict[str, int]:
    """Sizes of the containers that hold per-call state, for the report."""
    f = w.flow
    out: dict[str, int] = {}

    def walk(prefix: str, obj: Any) -> None:
        names = getattr(obj, "__dict__", None) or {
            n: getattr(obj, n) for n in getattr(type(obj), "__slots__", ()) if hasattr(obj, n)
        }
        for name, value in names.items():
            if isinstance(value, dict | set | list):
                out[f"{prefix}.{name}"] = len(value)

    walk("flow", f)
    walk("discovery", f.e.discovery)
    walk("radius", f.e.radius)
    walk("l2tp", f.e.l2tp)
    walk("splice", w.splice)
    walk("store", w.store)
    return out


class Churn:
    def __init__(self, world: World, per_round: int) -> None:
        self.w = world
        self.per_round = per_round
        self.round = 0
        self.user = 0

    def one_round(self) -> None:
        w = self.w
        r = self.round
        self.round += 1
        # a fault every 5th round, as the soak does every 60 s: LNS death (restart with fresh
        # state), RADIUS stopped, LNS frozen (silent), with calls in flight
        fault = ("lns_restart", "radius_down", "lns_silent", "none", "none")[r % 5]
        if fault == "radius_down":
            w.radius_down = True
        elif fault == "lns_silent":
            w.lns_silent.add(LNS_B)
        cpes = []
        for _ in range(self.per_round):
            name = f"u{self.user % 64}@isp-a.example"
            self.user += 1
            cpes.append(w.add_cpe(name, USERS[name][0]))
        w.advance(3)
        if fault == "lns_restart":
            # SIGKILL + restart: the LNS forgets every tunnel; the broker learns by StopCCN /
            # retransmit exhaustion / stale messages
            w.lns[(LNS_A, 1701)] = L2tpEndpoint(
                rand_bytes=w.rng.randbytes,
                lns_config=TunnelConfig(host_name="lns", secret=TUNNEL_SECRET),
            )
        w.advance(9)
        w.radius_down = False
        w.lns_silent.clear()
        w.advance(20)
        # endings: PADT, LCP Terminate, power-off (silent CPE, echo loss)
        for i, cpe in enumerate(cpes):
            how = i % 3
            if cpe.state != "ppp":
                continue
            if how == 0:
                w.cpe_padt(cpe)
                continue
            if how == 1:
                cpe.client.terminate(w.now)
            else:
                cpe.state = "off"  # powered off: nothing more is sent or answered
            # the harness's LNS speaks no PPP: do what a real LNS does on LCP Terminate or
            # echo loss, clear the call with a CDN
            self._lns_clears(cpe)
        w.advance(60)
        for cpe in cpes:
            w.cpes.pop(cpe.mac, None)
        w.log.clear()
        for v in w.lns_data.values():
            v.clear()
        w.advance(40)  # StopCCN hold, lockout probes, idle tunnels

    def _lns_clears(self, cpe: Cpe) -> None:
        w = self.w
        cid = w.flow._by_key.get(PppoeSessionKey(IFACE, cpe.mac, cpe.session_id))
        call = w.flow.calls.get(cid) if cid is not None else None
        if call is None or call.tunnel is None or call.peer_session_id is None:
            return
        ep = w.lns.get(call.tunnel.peer)
        if ep is not None and call.tunnel.peer_tunnel_id is not None:
            ep.close_session(call.tunnel.peer_tunnel_id, call.peer_session_id, 2, None, "", w.now)


def broker_filter() -> list[tracemalloc.Filter]:
    return [tracemalloc.Filter(True, "*/broker/*")]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=40, help="rounds per phase (N)")
    ap.add_argument("--per-round", type=int, default=12)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        w = World(write_policies(Path(tmp) / "pol"), users=USERS)
        churn = Churn(w, args.per_round)
        for _ in range(5):  # warm-up (caches, first tunnels)
            churn.one_round()
        tracemalloc.start(args.frames)
        gc.collect()
        snaps = [tracemalloc.take_snapshot().filter_traces(broker_filter())]
        sizes = [structure_sizes(w)]
        for _phase in range(3):
            for _ in range(args.rounds):
                churn.one_round()
            gc.collect()
            snaps.append(tracemalloc.take_snapshot().filter_traces(broker_filter()))
            sizes.append(structure_sizes(w))
        calls = args.rounds * args.per_round
        for i in range(1, len(snaps)):
            total = sum(s.size for s in snaps[i].statistics("filename"))
            base = sum(s.size for s in snaps[0].statistics("filename"))
            print(f"after {i}N ({i * calls} calls): broker/ heap {total} B, +{total - base} B"
                  f" ({(total - base) / (i * calls):.1f} B/call)")  # fmt: skip
        print("\ncontainers that changed size (warm, N, 2N, 3N):")
        for key in sorted(sizes[-1]):
            seq = [s.get(key, 0) for s in sizes]
            if len(set(seq)) > 1:
                print(f"  {key}: {seq}")
        print(f"\ntop growth 1N -> 3N by traceback ({2 * calls} calls):")
        for stat in snaps[3].compare_to(snaps[1], "traceback")[: args.top]:
            if stat.size_diff <= 0:
                continue
            print(f"  +{stat.size_diff} B +{stat.count_diff} blocks")
            for line in stat.traceback.format()[-8:]:
                print("    " + line)
        print("flow counters:", dict(sorted(w.flow.counters.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
