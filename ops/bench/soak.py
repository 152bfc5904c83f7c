"""Soak: steady churn through the lab with faults injected periodically (issue 9 item 5).

    python -m ops.bench.soak --minutes 60            # the full soak (not in CI)
    python -m ops.bench.soak --minutes 3             # smoke

Builds :class:`ops.lab.faults.FaultLab` (broker, FreeRADIUS, two ``sim lns`` LNSs, the LNS A
link behind the userspace netem relay), runs ``sim subscribers`` with a population that churns
(exponential lifetimes, PADT / power-off / LCP Terminate, redial, redial after a lost session)
and, every ``--fault-every`` seconds, the next fault of the cycle:

    lns-kill     SIGKILL LNS A, restart it 10 s later
    netem        20 % loss + 25 % reordering on LNS A's link for 15 s
    radius       FreeRADIUS stopped for 8 s, then started
    lns-freeze   SIGSTOP LNS A for 10 s, then SIGCONT

Every ``--sample`` seconds it records the broker's RSS, open fds, threads and CPU time, its
calls, sessions, tunnels and spool depth, and the LNSs' sessions, in ``soak.csv``; at the end
it plots them (``soak.png``, matplotlib: optional, ``pip install matplotlib``) and checks the
series stay flat after the warm-up (first ``--warmup`` fraction of the run):

- RSS: fitted growth over the run < max(10 % of the mean, 8 MiB);
- open fds: fitted growth over the run < 10 and max - min < 40;
- tunnels <= 2 x Tunnel-Assignment-IDs + 2; sessions <= 2 x population (a powered-off
  CPE redials at once while its old session waits for the LNS keepalive);
- after the load stops: no call left on the broker, spool depth back to 0 within 90 s.

Exit status 0 when every criterion holds. Not run in CI (it takes ``--minutes``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ops.lab.faults import FaultLab
from ops.lab.netns import poll, stop_process

FIELDS = (
    "t", "rss_kib", "fds", "threads", "cpu_s", "calls", "sessions", "tunnels", "spool_depth",
    "lns_sessions", "lns_ipcp_up", "fault",
)  # fmt: skip


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


class Faults:
    """The fault cycle; ``step(now)`` starts or ends faults when due; returns a label."""

    CYCLE = ("lns-kill", "netem", "radius", "lns-freeze")

    def __init__(self, lab: FaultLab, every: float, start: float) -> None:
        self.lab = lab
        self.every = every
        self.next_at = start + every
        self.index = 0
        self.undo: tuple[float, Callable[[], None]] | None = None
        self.log: list[tuple[float, str]] = []

    def step(self, now: float, t: float) -> str:
        label = ""
        if self.undo is not None and now >= self.undo[0]:
            self.undo[1]()
            self.undo = None
            label = "end"
        if self.undo is None and now >= self.next_at:
            kind = self.CYCLE[self.index % len(self.CYCLE)]
            self.index += 1
            self.next_at = now + self.every
            self._start(kind, now)
            self.log.append((t, kind))
            label = kind
        return label

    def _start(self, kind: str, now: float) -> None:
        lab = self.lab
        sim = lab.sims["lns-a"]
        if kind == "lns-kill":
            sim.kill()
            self.undo = (now + 10, sim.start)
        elif kind == "netem":
            lab.impair("lns-a", loss=0.2, reorder=0.25, delay=0.005, jitter=0.003)
            self.undo = (now + 15, lambda: (lab.impairments["lns-a"].set(), None)[1])
        elif kind == "radius":
            assert lab.radius is not None
            radius = lab.radius
            radius.stop()
            self.undo = (now + 8, radius.start)
        elif kind == "lns-freeze":
            sim.freeze()
            self.undo = (now + 10, sim.thaw)

    def finish(self) -> None:
        if self.undo is not None:
            self.undo[1]()
            self.undo = None


def sample(lab: FaultLab, t: float, fault: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FIELDS, "")
    row.update(t=round(t, 1), fault=fault)
    row.update({k: v for k, v in lab.broker_sample().items() if k in FIELDS})
    try:
        st = lab.control("/status")
        row.update(
            calls=st["calls"], sessions=st["sessions"], tunnels=st["tunnels"],
            spool_depth=st["spool_depth"],
        )  # fmt: skip
    except Exception as exc:  # the control API is best effort while faults run
        print(f"soak: status failed: {exc}", file=sys.stderr)
    ipcp, sessions = lab.lns_totals()
    row.update(lns_sessions=sessions, lns_ipcp_up=ipcp)
    return row


def check(rows: list[dict[str, Any]], warmup: float, population: int, tunnels: int) -> list[str]:
    """The flatness criteria; returns lines 'PASS ...' / 'FAIL ...'."""
    out: list[str] = []
    if not rows:
        return ["FAIL no samples"]
    start = rows[int(len(rows) * warmup)]["t"]
    steady = [r for r in rows if r["t"] >= start and r["rss_kib"] != "" and r["fds"] != ""]
    if len(steady) < 3:
        return ["FAIL fewer than 3 samples after the warm-up"]
    ts = [float(r["t"]) for r in steady]
    span = ts[-1] - ts[0]
    rss = [float(r["rss_kib"]) for r in steady]
    fds = [float(r["fds"]) for r in steady]
    growth = slope(ts, rss) * span
    limit = max(0.10 * sum(rss) / len(rss), 8 * 1024)
    out.append(
        f"{'PASS' if growth < limit else 'FAIL'} RSS fitted growth {growth / 1024:+.1f} MiB over "
        f"{span / 60:.1f} min (limit {limit / 1024:.1f} MiB; min {min(rss) / 1024:.1f}, "
        f"max {max(rss) / 1024:.1f} MiB)"
    )
    fgrowth = slope(ts, fds) * span
    ok = fgrowth < 10 and max(fds) - min(fds) < 40
    out.append(
        f"{'PASS' if ok else 'FAIL'} open fds fitted growth {fgrowth:+.1f} over the run, "
        f"range {min(fds):.0f}..{max(fds):.0f} (limits +10, range < 40)"
    )
    tun = [int(r["tunnels"]) for r in rows if r["tunnels"] != ""]
    ses = [int(r["sessions"]) for r in rows if r["sessions"] != ""]
    tmax = 2 * tunnels + 2
    out.append(
        f"{'PASS' if tun and max(tun) <= tmax else 'FAIL'} tunnels max "
        f"{max(tun) if tun else '-'} (limit {tmax})"
    )
    out.append(
        f"{'PASS' if ses and max(ses) <= 2 * population else 'FAIL'} sessions max "
        f"{max(ses) if ses else '-'} (limit {2 * population})"
    )
    return out


def plot(rows: list[dict[str, Any]], faults: list[tuple[float, str]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: matplotlib not installed, no plot (pip install matplotlib)", file=sys.stderr)
        return False

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(float(r["t"]) / 60, float(r[key])) for r in rows if r[key] != ""]
        return [p[0] for p in pts], [p[1] for p in pts]

    panels = (
        ("broker RSS (MiB)", [("rss_kib", 1 / 1024, "RSS")]),
        ("open fds / threads", [("fds", 1.0, "fds"), ("threads", 1.0, "threads")]),
        ("calls", [("sessions", 1.0, "broker sessions"), ("lns_sessions", 1.0, "LNS sessions"),
                   ("tunnels", 1.0, "tunnels")]),
        ("spool depth", [("spool_depth", 1.0, "records")]),
    )  # fmt: skip
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 10), sharex=True)
    for ax, (title, lines) in zip(axes, panels, strict=True):
        for key, scale, label in lines:
            xs, ys = series(key)
            ax.plot(xs, [y * scale for y in ys], label=label, linewidth=1)
        for t, _kind in faults:
            ax.axvline(t / 60, color="grey", alpha=0.3, linewidth=0.8)
        ax.set_ylabel(title)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title("l2tp-broker soak: churn with periodic faults (grey: fault starts)")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--population", type=int, default=300, help="subscribers (churning)")
    p.add_argument("--lifetime", type=float, default=30.0, help="mean session lifetime, s")
    p.add_argument("--rate", type=float, default=50.0, help="max setups started per second")
    p.add_argument("--tunnels", type=int, default=10, help="Tunnel-Assignment-IDs per LNS")
    p.add_argument("--fault-every", type=float, default=60.0)
    p.add_argument("--sample", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of samples ignored")
    p.add_argument("--out", type=Path, default=Path("soak-out"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    duration = args.minutes * 60.0
    lab = FaultLab(
        impair=("lns-a",), tunnels=args.tunnels, hello_interval=10.0, interim=60.0,
        lns_args=("--hello-interval", "10", "--echo-interval", "5", "--echo-failures", "3"),
        users=max(args.population, 400), retransmit=(1.0, 2.0, 4.0, 4.0),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    verdict: list[str] = []
    t0 = time.monotonic()
    gen = None
    faults: Faults | None = None
    try:
        lab.start()
        gen, report_path = lab.subscribers(
            args.population, rate=args.rate, hold=-1, background=True,
            extra=["--churn-mean", str(args.lifetime), "--churn", "padt,power-off,lcp-terminate",
                   "--redial", "--redial-lost", "--redial-failed", "--setup-timeout", "30",
                   "--progress", "0",
                   "--timeout", str(duration + 120), "--seed", "7"],
        )  # fmt: skip
        start = time.monotonic()
        faults = Faults(lab, args.fault_every, start)
        with (args.out / "soak.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=FIELDS)
            writer.writeheader()
            next_sample = start
            while (now := time.monotonic()) < start + duration:
                label = faults.step(now, now - start)
                if now >= next_sample:
                    next_sample += args.sample
                    row = sample(lab, now - start, label)
                    rows.append(row)
                    writer.writerow(row)
                    fh.flush()
                    print(
                        f"soak t={row['t']:>7} rss={row['rss_kib']} fds={row['fds']} "
                        f"sessions={row['sessions']} tunnels={row['tunnels']} "
                        f"spool={row['spool_depth']} lns={row['lns_sessions']} {label}",
                        flush=True,
                    )
                time.sleep(0.2)
        faults.finish()
        gen_report = lab.hang_up(gen, report_path)
        gen = None
        verdict = check(rows, args.warmup, args.population, args.tunnels)
        drained = poll(lambda: lab.sessions() == [], 90, interval=1.0)
        verdict.append(f"{'PASS' if drained else 'FAIL'} no call left on the broker after the load")
        spool = poll(lambda: lab.control("/status")["spool_depth"] == 0, 90, interval=1.0)
        verdict.append(f"{'PASS' if spool else 'FAIL'} spool drained after the load")
        cpu = lab.broker_sample().get("cpu_s", 0.0)
        summary = {
            "minutes": args.minutes,
            "setups": gen_report.get("setups"),
            "failures": gen_report.get("failures"),
            "downs": gen_report.get("downs"),
            "churned": gen_report.get("churned"),
            "faults": [k for _t, k in faults.log],
            "broker_cpu_s": cpu,
            "setups_per_broker_cpu_s": round(gen_report.get("setups", 0) / cpu, 1) if cpu else None,
            "verdict": verdict,
        }
        (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    finally:
        if faults is not None:
            faults.finish()
        if gen is not None:
            stop_process(gen)
        lab.close()
        lab.remove()
    if plot(rows, faults.log if faults else [], args.out / "soak.png"):
        print(f"soak: plot {args.out / 'soak.png'}")
    print(f"soak: {len(rows)} samples in {args.out / 'soak.csv'}, {time.monotonic() - t0:.0f} s")
    for line in verdict:
        print(f"soak: {line}")
    return 0 if verdict and all(v.startswith("PASS") for v in verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
