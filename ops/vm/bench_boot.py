"""Boot-time and command-latency figures of the VM lab (``python -m ops.vm.bench_boot``).

Boots ``--runs`` guests one after the other (one NIC on a namespace bridge each) and reports,
per boot, the wall time to a ready agent and the CPU time qemu used for it (user + system),
then the mean round trip of ``--commands`` trivial guest commands, with the host's load average
as the context. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence

from ops.lab.netns import Netns, bridge
from ops.vm.guest import Guest


def measure(runs: int, commands: int) -> dict[str, object]:
    boots: list[dict[str, float]] = []
    latency: list[float] = []
    with Netns("vmb") as ns:
        br = bridge(ns, [], "192.0.2.1/24")
        for i in range(runs):
            with Guest(f"bench{i}", ns, nics=[(br, None)]) as g:
                boots.append(
                    {"wall_s": round(g.boot_seconds or 0.0, 2),
                     "qemu_cpu_s": round(g.boot_cpu_seconds or 0.0, 2)}
                )  # fmt: skip
                cpu0, t0 = g.cpu_seconds(), time.monotonic()
                for _ in range(commands):
                    g.run("true").check()
                wall = time.monotonic() - t0
                latency.append(wall / commands)
                boots[-1]["cmd_cpu_ms"] = round(1000 * (g.cpu_seconds() - cpu0) / commands, 1)
    return {
        "boots": boots,
        "boot_wall_median_s": statistics.median(b["wall_s"] for b in boots),
        "boot_qemu_cpu_median_s": statistics.median(b["qemu_cpu_s"] for b in boots),
        "command_round_trip_ms": round(1000 * statistics.mean(latency), 1),
        "loadavg": os.getloadavg(),
        "host_cpus": os.cpu_count(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.vm.bench_boot", description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--commands", type=int, default=20)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.runs, args.commands), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
