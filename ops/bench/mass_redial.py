"""Mass redial after an LNS failure (issue 8): ``python -m ops.bench.mass_redial``.

Two LNS emulators; RADIUS prefers LNS 0 (Tunnel-Preference 0) over LNS 1 (10). ``--sessions``
subscribers come up (all on LNS 0) and are held; then LNS 0 is killed (SIGKILL: no StopCCN,
no CDN). The broker notices on its own (HELLO after ``--hello-interval`` s without input,
then the retransmission schedule ``--retransmit``), clears the tunnels, sends PADT to every
subscriber and locks LNS 0 out; a CPE whose PADT is lost notices by its own LCP echo
(``--echo-interval``, three misses). The subscribers (``sim subscribers --redial-lost``) dial
again at once, limited only by ``--outstanding`` in flight, and come up on LNS 1.

Reported: time from the kill to the broker's detection (first session lost), to all sessions
up again, the redial rate (sessions re-established / s, from the first loss to the last one
up), failures, and the curve of sessions up over time (from the generator's progress lines,
sampled by this script). Baseline (same run): the initial set-up rate of the same subscribers
with the same ``--outstanding``, when nothing else happens. Root only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from ops.bench._lab import (
    LabOptions,
    ScaleLab,
    add_tunnel_args,
    proc_cpu,
    proc_rss_kb,
    progress_lines,
)
from ops.lab.netns import poll, stop_process


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100_000)  # the figure
    p.add_argument("--rate", type=float, default=600.0, help="initial set-up rate")
    p.add_argument("--outstanding", type=int, default=800)
    p.add_argument("--hello-interval", type=float, default=5.0)
    p.add_argument(
        "--echo-interval",
        type=float,
        default=10.0,
        help="CPE LCP echo (through the splice to the LNS): a CPE whose PADT was lost notices",
    )
    p.add_argument("--retransmit", default="1,1,2,2", help="broker's L2TP schedule (s)")
    add_tunnel_args(p)
    p.add_argument("--json-out")
    a = p.parse_args(argv)
    n = a.sessions
    opts = LabOptions(
        lns_count=2,
        hello_interval=a.hello_interval,
        retransmit=tuple(float(x) for x in a.retransmit.split(",")),
        max_sessions=n + 1000,  # PPPoE ids are unique per MAC pair: up to 1,000,000
        max_setups=a.outstanding + 500,
        tunnels_per_lns=a.tunnels,
        max_tunnel_sessions=a.max_tunnel_sessions,
        padt_per_s=a.padt_per_s,
        broker_echo_interval=30.0,
    )
    with ScaleLab(opts) as lab:
        print(f"lab in {lab.dir}", flush=True)
        ready = lab.dir / "redial.ready.json"
        report_file = lab.dir / "redial.json"
        bpid = lab.broker_pid()
        rss0 = proc_rss_kb(bpid)
        sim = lab.subscribers("redial", [
            "--count", str(n), "--rate", str(a.rate), "--outstanding", str(a.outstanding),
            "--auth", "mixed", "--setup-timeout", "120", "--hold", "-1", "--redial-lost",
            "--echo-interval", str(a.echo_interval),
            "--ready-file", str(ready), "--json-out", str(report_file), "--progress", "0.5",
            "--timeout", str(n / a.rate * 10 + 900),
        ])  # fmt: skip
        try:
            limit = n / a.rate * 5 + 300
            if not poll(lambda: ready.exists() or sim.poll() is not None, limit, 0.5):
                raise RuntimeError(f"set-up did not settle: {lab.log('redial')[-2000:]}")
            first = json.loads(ready.read_text())
            rss1 = proc_rss_kb(bpid)
            status0 = lab.control("/status")
            lns0 = lab.lns_status(0)
            print(
                f"initial: {first['up']}/{n} up at {first['setup_rate']:.1f}/s "
                f"(p99 {first['latency_ms']['p99']} ms), on LNS 0: {lns0.get('sessions')}, "
                f"broker tunnels {status0.get('tunnels')}",
                flush=True,
            )
            cpu0 = proc_cpu(bpid)
            target = first["up"]  # subscribers that failed their first set-up do not redial
            t_kill = lab.kill_lns(0)
            curve: list[tuple[float, int]] = []
            t_lost: float | None = None
            t_back: float | None = None
            min_up = target
            deadline = t_kill + 60 + n / 50
            while time.monotonic() < deadline:
                time.sleep(0.5)
                lines = progress_lines(lab.log("redial"))
                if not lines:
                    continue
                now_up = lines[-1][5]
                t = time.monotonic() - t_kill
                curve.append((round(t, 1), now_up))
                min_up = min(min_up, now_up)
                if t_lost is None and now_up < target:
                    t_lost = t
                if t_lost is not None and now_up >= target and min_up < target:
                    t_back = t
                    break
                if sim.poll() is not None:
                    break
            cpu1 = proc_cpu(bpid)
            lns1 = lab.lns_status(1)
            status1 = lab.control("/status")
            sim.send_signal(signal.SIGTERM)
            sim.wait(n / 200 + 300)
        finally:
            stop_process(sim)
        report: dict[str, Any] = json.loads(report_file.read_text())
    redialled = max(0, report["setups"] - first["up"])
    span = (t_back - t_lost) if (t_back is not None and t_lost is not None) else None
    result = {
        "sessions": n,
        "initial_up": first["up"],
        "initial_setup_rate": round(first["setup_rate"], 1),
        "broker_rss_kb_idle": rss0,
        "broker_rss_kb_held": rss1,
        "kb_per_session": round((rss1 - rss0) / max(1, first["up"]), 2),
        "outstanding": a.outstanding,
        "detected_after_s": t_lost,
        "recovered_after_s": t_back,
        "redial_rate": round(redialled / span, 1) if span else None,
        "redialled": redialled,
        "lowest_up": min_up,
        "on_lns1": lns1.get("sessions"),
        "broker_sessions_after": status1.get("sessions"),
        "broker_cpu_ms_per_redial": round(1000 * (cpu1 - cpu0) / max(1, redialled), 3),
        "failures": report["failures"],
        "downs": report["downs"],
        "curve": curve,
    }
    print(
        f"LNS 0 killed: first loss seen after {t_lost} s, all {target} up again after {t_back} s; "
        f"{redialled} redialled at {result['redial_rate']}/s (baseline: initial set-up "
        f"{result['initial_setup_rate']}/s); lowest {min_up} up; LNS 1 holds "
        f"{result['on_lns1']}; broker {result['broker_cpu_ms_per_redial']} CPU-ms per redial; "
        f"failures {report['failures'] or '-'}; downs {report['downs'] or '-'}",
        flush=True,
    )
    step = max(1, len(curve) // 40)
    print(
        f"broker RSS {rss0} -> {rss1} KiB with {first['up']} sessions: "
        f"{result['kb_per_session']} KiB/session"
    )
    print("curve (s after kill: sessions up): " + ", ".join(f"{t}:{u}" for t, u in curve[::step]))
    if a.json_out:
        with open(a.json_out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0 if t_back is not None else 1


if __name__ == "__main__":
    sys.exit(main())
