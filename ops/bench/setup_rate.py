"""Call set-up rate through the broker (issue 8): ``python -m ops.bench.setup_rate``.

``sim subscribers`` (PPPoE/PPP, CHAP+PAP mix) -> the broker daemon -> real FreeRADIUS ->
``sim lns`` (receive window 256, addresses reused), all in namespaces on this machine (see
``ops/bench/_lab.py``). Two runs on the same lab, one after the other:

1. baseline: ``--baseline-count`` subscribers at a low rate (``--baseline-rate``), where
   nothing queues: the broker's CPU per call when it is not loaded;
2. the measured run: ``--subscribers`` at ``--rate`` with ``--outstanding`` setups in flight.

For each: calls/s sustained (first start to last up), p50/p99 set-up latency, success %,
failures by reason, and CPU seconds per call of the broker (set-up only, measured when the
last set-up settled; and set-up + hang-up), of the generator and of the emulator, plus the
broker's resident memory. The ratio measured/baseline per-call CPU does not depend on how
fast (or how shared) the machine is. ``--profile DIR`` samples the three processes with
py-spy during the measured run (collapsed stacks, ``DIR/<process>.txt``, and a top list).
Root only.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ops.bench._lab import LabOptions, ScaleLab, proc_cpu, proc_rss_kb
from ops.lab.netns import poll, stop_process, venv_python


def _spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    spy = str(Path(venv_python()).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
         "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def top_functions(collapsed: Path, n: int = 25) -> list[tuple[str, float, float]]:
    """(function, self %, inclusive %) from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        own[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return []
    return [(f, 100.0 * c / total, 100.0 * incl[f] / total) for f, c in own.most_common(n)]


def print_cprofile(path: Path, n: int = 30) -> None:
    """Own CPU time by broker package and the top functions of a cProfile dump."""
    import pstats

    stats: Any = pstats.Stats(str(path)).stats
    total = sum(v[2] for v in stats.values()) or 1.0
    by_pkg: collections.Counter[str] = collections.Counter()
    for (file, _line, _fn), v in stats.items():
        parts = file.split("/")
        if "broker" in parts:
            i = len(parts) - 1 - parts[::-1].index("broker")
            key = "/".join(parts[i : i + 2]) if i + 2 < len(parts) else "/".join(parts[i:])
        elif "twisted" in parts:
            key = "twisted"
        elif file.startswith("~") or file == "~":
            key = "builtins/C"
        else:
            key = "stdlib/other"
        by_pkg[key] += v[2]
    print(f"--- broker CPU by package (cProfile, own time, total {total:.1f} s)")
    for key, t in by_pkg.most_common(20):
        print(f"{100 * t / total:5.1f} %  {key}")
    print("--- top functions by own CPU time")
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    for (file, line, fn), v in top:
        short = "/".join(file.split("/")[-2:])
        print(f"{100 * v[2] / total:5.1f} % {v[1]:9d} calls  {fn} ({short}:{line})")


def run_load(
    lab: ScaleLab,
    name: str,
    count: int,
    rate: float,
    outstanding: int,
    first_index: int,
    *,
    auth: str = "mixed",
    setup_timeout: float = 60.0,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One ``sim subscribers`` run (set up, then hang up); figures with the CPU deltas."""
    ready = lab.dir / f"{name}.ready.json"
    report_file = lab.dir / f"{name}.json"
    bpid = lab.broker_pid()
    lns = lab.lns[0]
    assert lns is not None
    counters0 = lab.engine_counters()
    cpu0 = (proc_cpu(bpid), proc_cpu(lns.pid))
    t0 = time.monotonic()
    sim = lab.subscribers(name, [
        "--count", str(count), "--rate", str(rate), "--outstanding", str(outstanding),
        "--auth", auth, "--setup-timeout", str(setup_timeout), "--hold", "0",
        "--first-index", str(first_index), "--ready-file", str(ready),
        "--json-out", str(report_file), "--timeout", str(count / rate * 4 + 120),
    ])  # fmt: skip
    spies: list[subprocess.Popen[bytes]] = []
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        poll(lambda: proc_cpu(sim.pid) > 0.5, 30)
        span = count / rate * 0.8
        for who, pid in (("broker", bpid), ("generator", sim.pid), ("emulator", lns.pid)):
            spies.append(_spy(pid, profile / f"{who}.txt", span))
    poll(lambda: ready.exists() or sim.poll() is not None, count / rate * 4 + 150, 0.1)
    cpu_ready = (proc_cpu(bpid), proc_cpu(lns.pid), proc_cpu(sim.pid))
    rss_ready = proc_rss_kb(bpid)
    t_ready = time.monotonic()
    try:
        sim.wait(300)
    finally:
        stop_process(sim)
    for spy in spies:
        try:
            spy.wait(120)
        finally:
            stop_process(spy)
    # the broker clears the last calls shortly after the generator exits
    poll(lambda: lab.control("/status").get("calls", 1) == 0, 30, 0.2)
    cpu1 = (proc_cpu(bpid), proc_cpu(lns.pid))
    counters = {
        k: v - counters0.get(k, 0.0)
        for k, v in sorted(lab.engine_counters().items())
        if v != counters0.get(k, 0.0) and not k.startswith(("splice.", "rawether.", "l2tp."))
    }
    if not report_file.exists():
        raise RuntimeError(f"no report from {name}: {lab.log(name)[-3000:]}")
    report: dict[str, Any] = json.loads(report_file.read_text())
    gen_cpu = 0.0
    for line in lab.log(name).splitlines():
        if line.startswith("sim: cpu "):
            gen_cpu = float(line.split()[2])
    up = max(1, report["up"])
    return {
        "name": name,
        "subscribers": count,
        "rate_asked": rate,
        "outstanding": outstanding,
        "calls_per_s": round(report["setup_rate"], 1),
        "latency_ms": report["latency_ms"],
        "success_pct": round(100.0 * report["up"] / max(1, count), 2),
        "failures": report["failures"],
        "setup_wall_s": round(t_ready - t0, 2),
        "broker_cpu_ms_per_call_setup": round(1000 * (cpu_ready[0] - cpu0[0]) / up, 3),
        "broker_cpu_ms_per_call_total": round(1000 * (cpu1[0] - cpu0[0]) / up, 3),
        "emulator_cpu_ms_per_call_total": round(1000 * (cpu1[1] - cpu0[1]) / up, 3),
        "generator_cpu_ms_per_call_total": round(1000 * gen_cpu / up, 3),
        "broker_rss_kb_at_ready": rss_ready,
        "broker_counters": counters,
    }


def _print(r: dict[str, Any]) -> None:
    lat = r["latency_ms"]

    def ms(k: str) -> str:
        v = lat.get(k)
        return "-" if v is None else f"{v:.1f}"

    print(
        f"{r['name']}: {r['subscribers']} subscribers asked {r['rate_asked']}/s "
        f"(outstanding {r['outstanding']}): {r['calls_per_s']} calls/s, "
        f"p50 {ms('p50')} ms, p99 {ms('p99')} ms, max {ms('max')} ms, "
        f"success {r['success_pct']} %, failures {r['failures'] or '-'}\n"
        f"  CPU ms/call: broker {r['broker_cpu_ms_per_call_setup']} (set-up) / "
        f"{r['broker_cpu_ms_per_call_total']} (set-up + hang-up), generator "
        f"{r['generator_cpu_ms_per_call_total']}, emulator {r['emulator_cpu_ms_per_call_total']};"
        f" broker RSS {r['broker_rss_kb_at_ready']} KiB",
        flush=True,
    )
    if r["failures"]:
        print(f"  broker counters: {r['broker_counters']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=10000)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--outstanding", type=int, default=1500)
    p.add_argument("--auth", choices=("chap", "pap", "mixed"), default="mixed")
    p.add_argument("--baseline-count", type=int, default=300)
    p.add_argument("--baseline-rate", type=float, default=50.0)
    p.add_argument("--profile", type=Path, help="py-spy the measured run into this directory")
    p.add_argument(
        "--cprofile", type=Path, help="cProfile (CPU time) the broker into this file, summarise"
    )
    p.add_argument("--broker-root", type=Path, help="run the broker from this source tree")
    p.add_argument("--json-out", type=Path)
    a = p.parse_args(argv)
    results: list[dict[str, Any]] = []
    opts = LabOptions(
        max_setups=max(2000, a.outstanding + 100), cprofile=a.cprofile, broker_root=a.broker_root
    )
    with ScaleLab(opts) as lab:
        print(f"lab in {lab.dir}", flush=True)
        if a.baseline_count > 0:
            base = run_load(lab, "baseline", a.baseline_count, a.baseline_rate, 100, 0, auth=a.auth)
            _print(base)
            results.append(base)
        main_run = run_load(
            lab, "measured", a.subscribers, a.rate, a.outstanding, 1_000_000,
            auth=a.auth, profile=a.profile,
        )  # fmt: skip
        _print(main_run)
        results.append(main_run)
        if results[0] is not main_run and base["broker_cpu_ms_per_call_total"] > 0:
            ratio = main_run["broker_cpu_ms_per_call_total"] / base["broker_cpu_ms_per_call_total"]
            print(f"broker CPU per call, measured / baseline: {ratio:.2f}")
    if a.profile is not None:
        for who in ("broker", "generator", "emulator"):
            path = a.profile / f"{who}.txt"
            if path.exists():
                print(f"--- py-spy {who} (self %, inclusive %)")
                for fn, own, incl in top_functions(path, 20):
                    print(f"{own:5.1f} {incl:5.1f}  {fn}")
    if a.cprofile is not None and a.cprofile.exists():
        print_cprofile(a.cprofile)
    if a.json_out is not None:
        a.json_out.write_text(json.dumps(results, indent=2))
    ok = all(r["success_pct"] == 100.0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
