"""The demo lab (``bash ops/demo.sh``): a wholesale network in namespaces on embedded defaults.

1. builds namespaces: simulated PPPoE subscribers, the broker (memory state, sqlite spool),
   FreeRADIUS, two l2tpns LNSs (retail ISP A and B);
2. brings up 30 subscribers of realm isp-a.example (RADIUS-routed: LNS A preferred, LNS B
   backup) and 20 of isp-b.example (static pool: LNS B); each pings its LNS through the
   splice;
3. kills LNS A and brings up 10 more isp-a subscribers: the broker loses the tunnel, locks
   LNS A out and the new calls go to LNS B;
4. hangs everyone up and checks the accounting (every Start has its Stop);
5. tears everything down and prints a summary. Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from typing import Any

from ops.lab.broker_lab import LNS_A, LNS_B, BrokerLab
from ops.lab.netns import poll, stop_process

HOLD = 25.0


class Demo:
    def __init__(self, keep: bool = False) -> None:
        self.t0 = time.monotonic()
        self.checks: list[tuple[str, bool, str]] = []
        self.keep = keep

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))
        self.say(f"{'PASS' if ok else 'FAIL'}: {name}{' (' + detail + ')' if detail else ''}")

    def run(self) -> int:
        if os.geteuid() != 0:
            print("the demo needs root (network namespaces, raw sockets)", file=sys.stderr)
            return 2
        lab = BrokerLab(retransmit=(1.0, 1.0, 2.0))
        try:
            self.say("building the lab: namespaces, FreeRADIUS, l2tpns LNS A + B, broker ...")
            lab.start()
            self.say(f"lab up in {lab.dir}; broker: {lab.control('/status')}")
            self.phase_bring_up(lab)
            self.phase_failover(lab)
            self.phase_accounting(lab)
        except Exception as exc:  # report, then tear down
            self.check("demo ran to the end", False, f"{type(exc).__name__}: {exc}")
            self.say("broker log tail:\n" + lab.broker_log()[-2500:])
        finally:
            self.say("tearing down the lab")
            lab.close()
            if not self.keep:
                lab.remove()
        failed = [c for c in self.checks if not c[1]]
        print("\n== summary ==")
        for name, ok, detail in self.checks:
            print(f"  {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")
        print(
            f"{len(self.checks) - len(failed)}/{len(self.checks)} checks passed in "
            f"{time.monotonic() - self.t0:.0f} s"
        )
        return 1 if failed else 0

    def phase_bring_up(self, lab: BrokerLab) -> None:
        self.say("bringing up 30 isp-a.example + 20 isp-b.example subscribers, pinging their LNS")
        a = lab.subscribers(
            30,
            user_template="user{i}@isp-a.example",
            ping=LNS_A,
            rate=20,
            hold=HOLD,
            extra=["--ping-count", "3"],
            background=True,
        )
        b = lab.subscribers(
            20,
            user_template="user{i}@isp-b.example",
            ping=LNS_B,
            rate=20,
            hold=HOLD,
            extra=["--ping-count", "3", "--seed", "7"],
            background=True,
        )

        def up() -> int:
            return int(lab.control("/status")["sessions"])

        poll(lambda: up() >= 50, 60, interval=1.0)
        rows = lab.control("/sessions")
        by_lns = collections.Counter((r["realm"], r["lns"]) for r in rows)
        for (realm, lns), n in sorted(by_lns.items()):
            self.say(f"  {n:3d} sessions  realm {realm:15s} -> LNS {lns}")
        self.check("50 subscribers spliced", len(rows) == 50, f"{len(rows)} sessions")
        self.check(
            "isp-a on LNS A (preference 0)", by_lns.get(("isp-a.example", f"{LNS_A}:1701"), 0) == 30
        )
        self.check(
            "isp-b on LNS B (static pool)", by_lns.get(("isp-b.example", f"{LNS_B}:1701"), 0) == 20
        )
        tunnels = lab.control("/tunnels")
        self.say(f"  tunnels: {[(t['lns'], t['sessions']) for t in tunnels]}")
        reports = [self._report(p) for p in (a, b)]
        pings = sum(r.get("pings_received", 0) for r in reports)
        sent = sum(r.get("pings_sent", 0) for r in reports)
        self.check(
            "every subscriber came up",
            all(r.get("up") == r.get("requested") for r in reports),
            " / ".join(f"{r.get('up')}/{r.get('requested')}" for r in reports),
        )
        self.check(
            "pings through the splice answered by the LNSs",
            sent > 0 and pings == sent,
            f"{pings}/{sent} echo replies",
        )

    def phase_failover(self, lab: BrokerLab) -> None:
        self.say("killing LNS A (l2tpns stops answering) and dialling 10 more isp-a subscribers")
        lab.kill_lns("lns-a")
        rep = lab.subscribers(
            10,
            user_template="user{i}@isp-a.example",
            ping=LNS_B,
            rate=5,
            hold=3.0,
            extra=["--seed", "11", "--setup-timeout", "40"],
            timeout=90,
        )
        out = rep.pop("_output", "")
        self.say("  " + "\n  ".join(line for line in out.splitlines()[-6:]))
        self.check(
            "new isp-a calls came up after LNS A died", rep.get("up") == 10, f"{rep.get('up')}/10"
        )
        self.check(
            "and reached LNS B (their pings answered by LNS B)",
            rep.get("pings_received", 0) == rep.get("pings_sent", -1) > 0,
        )
        lns = {row["address"]: row for row in lab.control("/lns")}
        a = lns.get(f"{LNS_A}:1701", {})
        self.say(
            f"  show lns: {[(r['name'], r['sessions'], r['locked_out']) for r in lns.values()]}"
        )
        self.check("LNS A locked out", bool(a.get("locked_out")))

    def phase_accounting(self, lab: BrokerLab) -> None:
        self.say("waiting for the accounting spool to drain")
        poll(lambda: lab.control("/status")["calls"] == 0, 30, interval=0.5)
        poll(lambda: lab.control("/status")["spool_depth"] == 0, 30, interval=0.5)
        records = lab.accounting()
        kinds = collections.Counter(r.get("Acct-Status-Type") for r in records)
        self.say(f"  accounting records at FreeRADIUS: {dict(kinds)}")
        starts = {r["Acct-Session-Id"] for r in records if r.get("Acct-Status-Type") == "Start"}
        stops = {r["Acct-Session-Id"] for r in records if r.get("Acct-Status-Type") == "Stop"}
        self.check("60 accounting Starts", len(starts) == 60, f"{len(starts)}")
        self.check(
            "every Start has its Stop",
            starts == stops,
            f"{len(stops)} Stops, missing {len(starts - stops)}",
        )
        causes = collections.Counter(
            r.get("Acct-Terminate-Cause") for r in records if r.get("Acct-Status-Type") == "Stop"
        )
        self.say(f"  terminate causes: {dict(causes)}")

    def _report(self, handle: Any) -> dict[str, Any]:
        proc, path = handle
        try:
            text, _ = proc.communicate(timeout=HOLD + 90)
        finally:
            stop_process(proc)
        import json

        if not path.exists():
            raise RuntimeError(f"sim subscribers wrote no report: {text.decode()[-2000:]}")
        report: dict[str, Any] = json.loads(path.read_text())
        return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the lab directory (logs)")
    args = parser.parse_args(argv)
    return Demo(keep=args.keep).run()


if __name__ == "__main__":
    raise SystemExit(main())
