"""Cost of the accounting spool alarm checks (issue 9 item 4), no root, about a minute.

    python -m ops.bench.spool_alarm [--sizes 50000,500000] [--reps 200]

Fills a :class:`broker.accounting.spool.Spool` (``sync="interval"``) to each size and times the
three reads the accounting service makes once a second for its alarms: the cheap upper bound
(``depth_upper_bound``), the exact ``COUNT(*)`` (``depth``, read only when the bound reaches the
clear level) and ``statvfs`` (``free_bytes``). The exact count is the same-run baseline the
cheap bound is compared with. Prints CPU and wall milliseconds per call.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from broker.accounting.spool import Spool
from broker.radius.accounting import AcctRecord


def timed(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(reps):
        fn()
    c1, w1 = time.process_time(), time.perf_counter()
    return 1e3 * (c1 - c0) / reps, 1e3 * (w1 - w0) / reps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.bench.spool_alarm")
    p.add_argument("--sizes", default="50000,500000")
    p.add_argument("--reps", type=int, default=200)
    a = p.parse_args(argv)
    sizes = sorted(int(x) for x in a.sizes.split(","))
    with tempfile.TemporaryDirectory() as d:
        spool = Spool(Path(d) / "spool.sqlite", sync="interval")
        have = 0
        print(f"{'records':>9}  {'read':<18} {'ms CPU':>8} {'ms wall':>8}")
        for n in sizes:
            for start in range(have, n, 10_000):
                spool.append_many(
                    [
                        AcctRecord(
                            f"r{i}",
                            3,
                            (("Acct-Session-Id", f"s{i}"), ("User-Name", "user@isp-a.example")),
                            1.0,
                        )
                        for i in range(start, min(n, start + 10_000))
                    ]
                )
            have = n
            for name, fn in (
                ("depth_upper_bound", spool.depth_upper_bound),
                ("depth (COUNT)", spool.depth),
                ("free_bytes", spool.free_bytes),
            ):
                cpu, wall = timed(fn, a.reps)
                print(f"{n:>9}  {name:<18} {cpu:>8.3f} {wall:>8.3f}")
        spool.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
