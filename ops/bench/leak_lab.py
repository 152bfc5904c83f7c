"""Memory growth of the real daemon under churn and faults (issue 9): a small soak (FaultLab,
``sim subscribers`` churning with redial, the soak's fault cycle); a first SIGUSR2 starts
tracemalloc in the broker after the warm-up, later ones make it write snapshots at regular
points; the top growth by traceback is printed.

    nice -n 10 .venv/bin/python -m ops.bench.leak_lab --minutes 6 --population 150 --lifetime 15
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.control.client import ControlError
from ops.bench.soak import Faults
from ops.lab.faults import FaultLab
from ops.lab.netns import poll


def snapshot(lab: FaultLab, n: int) -> Path:
    state = lab.dir / "node0" / "state"
    pid = lab.brokers[0].pid
    path = state / f"memory-{pid}-{n}.tracemalloc"
    os.kill(pid, signal.SIGUSR2)
    if not poll(lambda: path.exists() and path.stat().st_size > 0, 60):
        raise RuntimeError("no snapshot written")
    size = -1
    while size != path.stat().st_size:  # written in one go, but be sure it is complete
        size = path.stat().st_size
        time.sleep(0.5)
    return path


def calls_ended(lab: FaultLab) -> int:
    """Calls ended after the splice so far (the control API may be slow under tracemalloc)."""
    for _ in range(5):
        try:
            return int(lab.metric("calls_ended_total"))
        except ControlError:
            time.sleep(1)
    return 0


def compare(a: Path, b: Path, top: int, calls: float | None = None) -> None:
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    sa = tracemalloc.Snapshot.load(str(a)).filter_traces(ignore)
    sb = tracemalloc.Snapshot.load(str(b)).filter_traces(ignore)
    ta = sum(s.size for s in sa.statistics("filename"))
    tb = sum(s.size for s in sb.statistics("filename"))
    per = f" ({(tb - ta) / calls:.1f} B/call over {calls:.0f} calls)" if calls else ""
    print(f"{a.name} -> {b.name}: traced {ta} -> {tb} B, {tb - ta:+d} B{per}")
    print("by file:")
    for st in sb.compare_to(sa, "filename")[:top]:
        print(f"  {st.size_diff:+8d} B {st.count_diff:+6d} blocks  {st.traceback[0].filename}")
    print("by traceback:")
    for st in sb.compare_to(sa, "traceback")[:top]:
        print(f"  {st.size_diff:+d} B {st.count_diff:+d} blocks (now {st.size} B)")
        for line in st.traceback.format()[-10:]:
            print("    " + line)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=90.0, help="seconds before the first snapshot")
    p.add_argument("--snapshots", type=int, default=3)
    p.add_argument("--population", type=int, default=150)
    p.add_argument("--lifetime", type=float, default=15.0)
    p.add_argument("--fault-every", type=float, default=45.0)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--compare", nargs=2, type=Path, help="only compare two snapshot files")
    args = p.parse_args(argv)
    if args.compare:
        compare(args.compare[0], args.compare[1], args.top)
        return 0
    lab = FaultLab(
        impair=("lns-a",), tunnels=10, hello_interval=10.0, interim=60.0,
        lns_args=("--hello-interval", "10", "--echo-interval", "5", "--echo-failures", "3"),
        users=max(args.population, 400), retransmit=(1.0, 2.0, 4.0, 4.0),
    )  # fmt: skip
    duration = args.minutes * 60.0
    gen: Any = None
    faults: Faults | None = None
    snaps: list[tuple[Path, int]] = []
    try:
        lab.start()
        gen, _report = lab.subscribers(
            args.population, rate=50.0, hold=-1, background=True,
            extra=["--churn-mean", str(args.lifetime), "--churn", "padt,power-off,lcp-terminate",
                   "--redial", "--redial-lost", "--redial-failed", "--setup-timeout", "30",
                   "--progress", "0", "--timeout", str(duration + 120), "--seed", "7"],
        )  # fmt: skip
        start = time.monotonic()
        faults = Faults(lab, args.fault_every, start)
        gap = (duration - args.warmup) / max(1, args.snapshots - 1)
        due = [start + args.warmup + k * gap for k in range(args.snapshots)]
        trace_at: float | None = start + args.warmup / 2  # tracemalloc on (first SIGUSR2)
        while due:
            now = time.monotonic()
            if trace_at is not None and now >= trace_at:
                trace_at = None
                os.kill(lab.brokers[0].pid, signal.SIGUSR2)
                print(f"t={now - start:6.1f} tracemalloc started", flush=True)
            label = faults.step(now, now - start)
            if label:
                print(f"t={now - start:6.1f} fault {label}", flush=True)
            if now >= due[0]:
                due.pop(0)
                ended = calls_ended(lab)
                path = snapshot(lab, len(snaps))
                snaps.append((path, ended))
                rss = lab.broker_sample().get("rss_kib")
                print(f"t={now - start:6.1f} snapshot {path.name} calls_ended={ended}"
                      f" rss_kib={rss}", flush=True)  # fmt: skip
            time.sleep(0.2)
    finally:
        if faults is not None:
            faults.finish()
        if gen is not None:
            gen.terminate()
            try:
                gen.wait(10)
            except Exception:  # the lab kills it with its namespace
                gen.kill()
        lab.close()
    for (a, ca), (b, cb) in itertools.pairwise(snaps):
        print()
        compare(a, b, args.top, float(cb - ca) or None)
    if len(snaps) > 2:
        print()
        compare(snaps[0][0], snaps[-1][0], args.top, float(snaps[-1][1] - snaps[0][1]) or None)
    print(f"\nsnapshots kept in {snaps[0][0].parent if snaps else '-'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
