"""PADI flood against the DiscoveryServer engine (no sockets, fake clock).

N PADIs from random source MACs arrive at ``--rate`` per simulated second. Measured:
memory growth of the engine (tracemalloc, after vs before, plus peak), the PADO count
against the configured global cap (pado_per_s x duration + burst), the rate-limit table
size, and engine throughput. A 10k run is the baseline; the 100k run must stay flat.

    .venv/bin/python -m ops.bench.pppoe_padi_flood [--count 100000] [--rate 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
import tracemalloc
from dataclasses import dataclass

from broker.pppoe import Code, DiscoveryConfig, DiscoveryPacket, DiscoveryServer, Tag, TagType
from broker.pppoe import encode_discovery as encode
from broker.wire import MacAddress

BROADCAST = MacAddress(b"\xff" * 6)


@dataclass
class Result:
    count: int
    sim_seconds: float
    pado: int
    pado_limit: float
    grown_bytes: int
    peak_bytes: int
    rate_table: int
    wall_seconds: float
    counters: dict[str, int]


def run(
    count: int, rate: float, config: DiscoveryConfig, seed: int = 1, trace: bool = True
) -> Result:
    rng = random.Random(seed)
    server = DiscoveryServer(config, rand_bytes=rng.randbytes)
    # Pre-build the frames outside the measured region (they are the attacker's memory).
    macs = [
        MacAddress(bytes([rng.randrange(0, 256) & 0xFE | 0x02]) + rng.randbytes(5))
        for _ in range(count)
    ]
    frames = [
        encode(
            DiscoveryPacket(
                Code.PADI, 0, (Tag(TagType.SERVICE_NAME), Tag(TagType.HOST_UNIQ, rng.randbytes(8)))
            )
        )
        for _ in range(count)
    ]
    gc.collect()
    if trace:
        tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    pado = 0
    t0 = time.perf_counter()
    now = 1000.0
    step = 1.0 / rate
    for mac, frame in zip(macs, frames, strict=True):
        server.receive_discovery("eth1", mac, BROADCAST, frame, now)
        pado += len(server.frames_to_send())
        now += step
    wall = time.perf_counter() - t0
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    if trace:
        tracemalloc.stop()
    sim = count * step
    return Result(
        count=count,
        sim_seconds=sim,
        pado=pado,
        pado_limit=config.pado_per_s * sim + max(1.0, config.pado_per_s),
        grown_bytes=after - before,
        peak_bytes=peak - before,
        rate_table=len(server._padi_rates.table),
        wall_seconds=wall,
        counters=dict(server.counters),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--baseline", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=20_000.0, help="PADIs per simulated second")
    args = ap.parse_args(argv)
    config = DiscoveryConfig(ac_name="bench", cookie_secret=b"b" * 32)
    if args.baseline < config.rate_table_size:
        print(
            f"note: baseline below rate_table_size ({config.rate_table_size}): memory is only "
            "flat once the bounded per-MAC table is full"
        )
    results = [run(args.baseline, args.rate, config), run(args.count, args.rate, config)]
    print(
        f"config: pado_per_s={config.pado_per_s} rate_table_size={config.rate_table_size} "
        f"padi_per_mac_per_s={config.padi_per_mac_per_s} burst={config.padi_burst}; "
        f"flood {args.rate:.0f} PADI/s (simulated clock)"
    )
    for r in results:
        print(
            f"{r.count:>7} PADIs over {r.sim_seconds:6.2f} s: PADO {r.pado} "
            f"(limit {r.pado_limit:.0f}), pado_rate_limited "
            f"{r.counters.get('pado_rate_limited', 0)}, "
            f"memory grown {r.grown_bytes / 1024:.0f} KiB "
            f"(peak {r.peak_bytes / 1024:.0f} KiB), rate table {r.rate_table} entries, "
            f"{r.count / r.wall_seconds:,.0f} PADI/s engine throughput (tracemalloc on)"
        )
    fast = run(args.count, args.rate, config, trace=False)
    print(
        f"throughput without tracemalloc: {fast.count / fast.wall_seconds:,.0f} PADI/s "
        f"({fast.wall_seconds:.2f} s for {fast.count})"
    )
    base, big = results
    ok = True
    for r in results:
        if r.pado > r.pado_limit:
            print(f"FAIL: {r.pado} PADOs > limit {r.pado_limit:.0f}")
            ok = False
    ratio = big.grown_bytes / max(base.grown_bytes, 1)
    print(
        f"memory growth {args.count} vs {args.baseline}: x{ratio:.2f} "
        f"for x{args.count / args.baseline:.0f} the PADIs"
    )
    if ratio > 2.0:
        print("FAIL: memory grows with the number of PADIs")
        ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
