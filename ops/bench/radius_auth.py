"""Benchmark: Access-Request round trips per second against FreeRADIUS on loopback.

    .venv/bin/python -m ops.bench.radius_auth [--seconds 5] [--concurrency 256] [--cpu 0]

Starts a lab FreeRADIUS (ops/lab/freeradius.py, PAP user ``bench@bench.example``), then:

1. ``engine``: the sans-I/O RadiusClient alone, no sockets (build Access-Request with
   Message-Authenticator, verify an Access-Accept with Response Authenticator +
   Message-Authenticator, parse its tunnel attributes): the CPU cost per round trip;
2. ``broker``: RadiusUdpAdapter on Twisted's epoll reactor in this one process (pinned to one
   core with ``--cpu``), keeping ``--concurrency`` requests outstanding for ``--seconds``;
3. ``radclient``: FreeRADIUS's own client against the same server, same request count and
   parallelism, for comparison.

Prints one line per figure. Every reply is verified (BlastRADIUS rules); rejects, timeouts
and forged replies are counted and reported.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from broker.radius import packet
from broker.radius.client import (
    AccessAccepted,
    AuthRequest,
    RadiusClient,
    RadiusServer,
)
from broker.radius.constants import Code
from broker.radius.tunnel import TunnelCandidate, encode_tunnel_attributes
from ops.lab.freeradius import FreeRadius, LabClient, free_udp_ports

SECRET = "bench-secret"
USER = "bench@bench.example"
PASSWORD = b"bench"


def bench_request(i: int) -> AuthRequest:
    return AuthRequest(
        USER,
        pap_password=PASSWORD,
        nas_ip="192.0.2.1",
        nas_identifier="bench-lac",
        nas_port_id=f"eth0.{i % 4000}",
        calling_station_id="02:00:00:00:00:01",
    )


def engine_only(count: int) -> float:
    """Round trips per second through the engine alone (no sockets)."""
    server = RadiusServer("r", "127.0.0.1", 1812, SECRET.encode())
    client = RadiusClient([server], sockets=16, rand_bytes=random.Random(1).randbytes)
    lns = TunnelCandidate(0, 3, 1, "198.51.100.99")
    start = time.process_time()
    for i in range(count):
        client.authenticate(i, bench_request(i), 0.0)
        (dg,) = client.datagrams_to_send(0.0)
        req = dg.payload
        auth = req[4:20]
        reply = packet.encode_response(
            Code.ACCESS_ACCEPT,
            req[1],
            encode_tunnel_attributes(lns, SECRET.encode(), auth),
            SECRET.encode(),
            auth,
        )
        client.receive_datagram(reply, dg.addr, dg.socket_index, 0.0)
        event = client.next_event()
        assert isinstance(event, AccessAccepted)
    elapsed = time.process_time() - start
    return count / elapsed


def broker_run(
    port: int, seconds: float, concurrency: int, sockets: int, *, deferreds: bool = True
) -> dict[str, Any]:
    """RadiusUdpAdapter on its own epoll reactor: with ``deferreds`` one Deferred per request
    (``authenticate``), else outcomes through ``on_event`` only (``submit``: the daemon's shape,
    whose call flow owns the RADIUS engine and gets events, no Deferreds)."""
    from twisted.internet.epollreactor import EPollReactor

    from broker.adapters.radius_udp import RadiusUdpAdapter

    reactor = EPollReactor()  # type: ignore[no-untyped-call]
    server = RadiusServer(
        "bench", "127.0.0.1", port, SECRET.encode(), timeout=(2.0, 2.0), dead_time=5.0
    )
    stats = {"accepted": 0, "other": 0, "issued": 0}
    deadline = time.perf_counter() + seconds
    stop = {"flag": False}
    latencies: list[float] = []
    kinds: dict[str, int] = {}

    def done(result: Any) -> None:
        if isinstance(result, AccessAccepted):
            stats["accepted"] += 1
            if stats["accepted"] % 97 == 0:
                latencies.append(result.latency)
        else:
            stats["other"] += 1
            kinds[type(result).__name__] = kinds.get(type(result).__name__, 0) + 1
        if time.perf_counter() >= deadline:
            stop["flag"] = True
        issue()

    def on_event(event: Any) -> None:
        if not deferreds and hasattr(event, "key"):
            done(event)

    adapter = RadiusUdpAdapter(
        RadiusClient([server], sockets=sockets), reactor, "127.0.0.1", on_event=on_event
    )
    adapter.start()

    def issue() -> None:
        if stop["flag"]:
            return
        i = stats["issued"]
        stats["issued"] += 1
        if deferreds:
            adapter.authenticate(bench_request(i)).addCallback(done)
        else:
            adapter.submit(bench_request(i), ("bench", i))

    # Warm up (server threads, caches), then measure.
    for _ in range(concurrency):
        issue()
    start = time.perf_counter()
    cpu_start = time.process_time()
    while not stop["flag"]:
        reactor.iterate(0.01)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    total_done = stats["accepted"] + stats["other"]
    # Drain what is outstanding so nothing is counted twice.
    end = time.perf_counter() + 5
    while (adapter.pending or adapter.engine.in_flight) and time.perf_counter() < end:
        reactor.iterate(0.01)
    adapter.stop()
    latencies.sort()
    return {
        "rate": total_done / elapsed,
        "cpu_rate": total_done / cpu if cpu > 0 else 0.0,
        "accepted": stats["accepted"],
        "other": stats["other"],
        "other_kinds": kinds,
        "elapsed": elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
        "counters": dict(adapter.engine.counters),
    }


def radclient_run(port: int, count: int, parallel: int) -> dict[str, Any]:
    binary = shutil.which("radclient")
    if binary is None:
        return {"rate": 0.0, "error": "radclient not installed"}
    with tempfile.NamedTemporaryFile("w", suffix=".req", delete=False) as f:
        f.write(
            f'User-Name = "{USER}", User-Password = "{PASSWORD.decode()}", '
            'NAS-IP-Address = 192.0.2.1, NAS-Identifier = "bench-lac", '
            "Message-Authenticator = 0x00\n"
        )
        path = f.name
    try:
        start = time.perf_counter()
        proc = subprocess.run(
            [binary, "-q", "-s", "-c", str(count), "-p", str(parallel), "-r", "3", "-t", "3",
             "-f", path, f"127.0.0.1:{port}", "auth", SECRET],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        elapsed = time.perf_counter() - start
    finally:
        os.unlink(path)
    return {
        "rate": count / elapsed,
        "elapsed": elapsed,
        "returncode": proc.returncode,
        "summary": " ".join(proc.stdout.split()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=256)
    ap.add_argument("--sockets", type=int, default=16)
    ap.add_argument("--threads", type=int, default=4, help="FreeRADIUS worker threads")
    ap.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    ap.add_argument("--engine-count", type=int, default=20000)
    ap.add_argument("--skip-radclient", action="store_true")
    args = ap.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(
        f"cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f} "
        f"python={sys.version.split()[0]} cpu-affinity={sorted(os.sched_getaffinity(0))}"
    )
    rate = engine_only(args.engine_count)
    print(
        f"engine: {rate:,.0f} round trips per CPU-second (no sockets: build, verify, parse "
        "tunnels; includes encoding the fake server's reply)"
    )
    with tempfile.TemporaryDirectory(prefix="radius-bench-") as tmp:
        auth_port, acct_port = free_udp_ports(2)
        radius = FreeRadius(
            Path(tmp),
            auth_port=auth_port,
            acct_port=acct_port,
            clients=[LabClient("bench", "127.0.0.1", SECRET)],
            threads=args.threads,
        )
        radius.start()
        try:
            for label, deferreds in (("broker", False), ("broker+Deferreds", True)):
                res = broker_run(
                    radius.auth_port,
                    args.seconds,
                    args.concurrency,
                    args.sockets,
                    deferreds=deferreds,
                )
                c = res["counters"]
                print(
                    f"{label}: {res['rate']:,.0f} Access-Request round trips/s over "
                    f"{res['elapsed']:.1f} s (accepted={res['accepted']} other={res['other']} "
                    f"{res['other_kinds'] or ''} "
                    f"p50={res['p50_ms']:.1f} ms p99={res['p99_ms']:.1f} ms "
                    f"retransmits={c['retransmits']} timeouts={c['timeouts']} "
                    f"forged={c['forged_replies']}) concurrency={args.concurrency}; "
                    f"{res['cpu_rate']:,.0f} per CPU-second of this process"
                )
            if not args.skip_radclient:
                count = max(1000, int(res["accepted"]))
                rc = radclient_run(radius.auth_port, count, args.concurrency)
                print(
                    f"radclient: {rc['rate']:,.0f} round trips/s ({count} requests, "
                    f"-p {args.concurrency}, rc={rc.get('returncode')}) {rc.get('summary', '')}"
                )
        finally:
            radius.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
