"""Established sessions held by one broker process (issue 8): ``python -m ops.bench.concurrency``.

``--sessions`` subscribers come up through the broker (FreeRADIUS, ``sim lns``; RADIUS offers
``--tunnels`` tunnel identities at equal preference; a tunnel carries at most
``--max-tunnel-sessions`` (<= 65,535, RFC 2661 16-bit session ids), so the broker opens more
tunnels with the same identity as needed: 100,000 on one identity take two) and are held for
``--hold`` seconds while

- every CPE sends an LCP Echo-Request every ``--echo-interval`` seconds through the broker's
  splice to the LNS emulator, which answers: the generator measures the round trip;
- the emulator sends a HELLO on every tunnel every ``--hello-probe`` seconds although data
  flows (``sim lns --hello-probe``) and measures the broker's acknowledgement (the broker
  acknowledges after its ZLB delay, 0.1 s, unless a message carries the ack sooner).

Reported: sessions up, set-up rate, broker RSS idle / with the sessions / KiB per session,
broker CPU per second while holding, echo RTT and HELLO ack percentiles. Baseline (same run,
first): ``--baseline-sessions`` held the same way, so the latency figures under load can be
compared with the unloaded ones. Root only; 100,000 sessions take several minutes here.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from ops.bench._lab import LabOptions, ScaleLab, add_tunnel_args, proc_cpu, proc_rss_kb
from ops.lab.netns import poll, stop_process


def hold_run(
    lab: ScaleLab,
    name: str,
    count: int,
    *,
    rate: float,
    outstanding: int,
    hold: float,
    echo_interval: float,
    first_index: int,
) -> dict[str, Any]:
    ready = lab.dir / f"{name}.ready.json"
    report_file = lab.dir / f"{name}.json"
    bpid = lab.broker_pid()
    rss0 = proc_rss_kb(bpid)
    t0 = time.monotonic()
    sim = lab.subscribers(name, [
        "--count", str(count), "--rate", str(rate), "--outstanding", str(outstanding),
        "--auth", "mixed", "--setup-timeout", "120", "--hold", "-1",
        "--echo-interval", str(echo_interval), "--first-index", str(first_index),
        "--ready-file", str(ready), "--json-out", str(report_file), "--progress", "5",
        "--timeout", str(count / rate * 5 + hold + 600),
    ])  # fmt: skip
    try:
        if not poll(lambda: ready.exists() or sim.poll() is not None, count / rate * 5 + 300, 0.5):
            raise RuntimeError(f"{name}: set-up did not settle: {lab.log(name)[-2000:]}")
        setup_wall = time.monotonic() - t0
        early = json.loads(ready.read_text())
        status = lab.control("/status")
        # let the first echoes and HELLOs of every session pass before sampling
        time.sleep(min(hold / 4, echo_interval))
        rss1 = proc_rss_kb(bpid)
        cpu_a, ta = proc_cpu(bpid), time.monotonic()
        acks: list[dict[str, Any]] = []
        seen = 0.0
        end = ta + hold
        while time.monotonic() < end:
            path = lab.status_path(0)
            try:
                mtime = path.stat().st_mtime
            except OSError:
                mtime = seen
            if mtime != seen:
                seen = mtime
                ack = lab.lns_status(0).get("ack_ms") or {}
                if ack.get("count"):
                    acks.append(ack)
            time.sleep(0.4)
        cpu_b, tb = proc_cpu(bpid), time.monotonic()
        rss2 = proc_rss_kb(bpid)
        t_hang = time.monotonic()
        sim.send_signal(signal.SIGTERM)
        sim.wait(count / 200 + 300)
        teardown = time.monotonic() - t_hang
    finally:
        stop_process(sim)
    poll(lambda: lab.control("/status").get("calls", 1) == 0, 120, 0.5)
    report: dict[str, Any] = json.loads(report_file.read_text())
    up = early["up"]
    return {
        "name": name,
        "sessions_asked": count,
        "sessions_up": up,
        "failures": early["failures"],
        "broker_sessions": status.get("sessions"),
        "tunnels": status.get("tunnels"),
        "setup_rate": round(early["setup_rate"], 1),
        "setup_wall_s": round(setup_wall, 1),
        "latency_ms_p99": early["latency_ms"]["p99"],
        "broker_rss_kb_before": rss0,
        "broker_rss_kb_held": rss1,
        "broker_rss_kb_end_of_hold": rss2,
        "kb_per_session": round((rss1 - rss0) / max(1, up), 2),
        "broker_cpu_s_per_s_holding": round((cpu_b - cpu_a) / max(1e-9, tb - ta), 3),
        "echo_rtt_ms": report.get("echo_rtt_ms", {}),
        "hello_ack_ms": {
            "samples": sum(int(a["count"]) for a in acks),
            "worst_p50": max((a["p50"] for a in acks), default=None),
            "worst_p99": max((a["p99"] for a in acks), default=None),
            "max": max((a["max"] for a in acks), default=None),
        },
        "hang_up_s": round(teardown, 1),
        "downs_while_held": report.get("downs", {}),
    }


def _print(r: dict[str, Any]) -> None:
    e, h = r["echo_rtt_ms"], r["hello_ack_ms"]
    print(
        f"{r['name']}: {r['sessions_up']}/{r['sessions_asked']} up (broker lists "
        f"{r['broker_sessions']} on {r['tunnels']} tunnels), set-up {r['setup_rate']}/s "
        f"in {r['setup_wall_s']} s, failures {r['failures'] or '-'}\n"
        f"  broker RSS {r['broker_rss_kb_before']} -> {r['broker_rss_kb_held']} KiB: "
        f"{r['kb_per_session']} KiB/session; holding costs {r['broker_cpu_s_per_s_holding']} "
        f"CPU-s/s\n"
        f"  CPE LCP echo RTT ms: n={e.get('count')} p50={e.get('p50')} p99={e.get('p99')} "
        f"max={e.get('max')}; HELLO ack ms: n={h['samples']} worst-second p50={h['worst_p50']} "
        f"p99={h['worst_p99']} max={h['max']}\n"
        f"  downs while held: {r['downs_while_held'] or '-'}; hang-up took {r['hang_up_s']} s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100_000)  # the figure
    p.add_argument("--rate", type=float, default=600.0)
    p.add_argument("--outstanding", type=int, default=800)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--echo-interval", type=float, default=30.0)
    p.add_argument("--hello-probe", type=float, default=5.0)
    add_tunnel_args(p)
    p.add_argument("--baseline-sessions", type=int, default=500)
    p.add_argument("--json-out")
    a = p.parse_args(argv)
    opts = LabOptions(
        lns_args=("--receive-window", "256", "--reuse-addresses",
                  "--hello-probe", str(a.hello_probe)),
        max_sessions=a.sessions + 1000,  # PPPoE ids are unique per MAC pair: up to 1,000,000
        max_setups=a.outstanding + 500,
        tunnels_per_lns=a.tunnels,
        max_tunnel_sessions=a.max_tunnel_sessions,
        padt_per_s=a.padt_per_s,
        broker_echo_interval=30.0,
    )  # fmt: skip
    results = []
    with ScaleLab(opts) as lab:
        print(f"lab in {lab.dir}", flush=True)
        for name, count, first in (
            ("baseline", a.baseline_sessions, 0),
            ("measured", a.sessions, 1_000_000),
        ):
            if count <= 0:
                continue
            r = hold_run(
                lab, name, count, rate=a.rate, outstanding=a.outstanding, hold=a.hold,
                echo_interval=a.echo_interval, first_index=first,
            )  # fmt: skip
            _print(r)
            results.append(r)
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0 if all(r["sessions_up"] == r["sessions_asked"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
