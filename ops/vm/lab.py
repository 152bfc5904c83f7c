"""Boot the VM lab by hand: ``python -m ops.vm.lab --help`` (root; run from /work/main).

``boot``     one guest (Debian 6.1 kernel, host root over 9p) with ``--nics N`` NICs on a bridge
             in a new lab namespace (192.0.2.1/24 on the bridge), then a ``vm>`` prompt: each
             line runs in the guest with ``sh`` (stdout+stderr printed, then the exit code).
``interop``  the interop lab of the tests: broker (userspace data plane) + FreeRADIUS + l2tpns
             in namespaces, one guest with xl2tpd/pppd LNSs and ``--clients N`` pppd clients;
             then the same prompt (``ip netns exec c1 ping 203.0.113.129``, ...).

Both print the console log, the share directory (same path in guest and host) and the lab
namespace; Ctrl-D (or ``--exec CMD``, repeatable, to run commands and exit) powers off and
tears everything down.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ops.lab.netns import Netns, bridge
from ops.vm.guest import Guest


def _repl(guest: Guest, commands: Sequence[str], timeout: float) -> int:
    if commands:
        rc = 0
        for cmd in commands:
            r = guest.run(cmd, timeout=timeout)
            sys.stdout.write(r.out)
            print(f"[exit {r.rc}]")
            rc = rc or r.rc
        return rc
    print("vm> lines run in the guest with sh; Ctrl-D powers off.", flush=True)
    while True:
        try:
            line = input("vm> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line.strip():
            continue
        try:
            r = guest.run(line, timeout=timeout)
        except Exception as exc:
            print(f"error: {exc}")
            continue
        sys.stdout.write(r.out)
        print(f"[exit {r.rc}]")


def _describe(guest: Guest, ns: str | None) -> None:
    print(f"guest {guest.name} up in {guest.boot_seconds:.1f} s")
    print(f"  console log : {guest.console_path}")
    print(f"  share       : {guest.share}  (same path in the guest)")
    if ns:
        print(f"  namespace   : {ns}  (ip netns exec {ns} ...; taps {', '.join(guest.taps)})")
    print("  python API  : Guest(...).run(cmd) -- see ops/vm/__init__.py", flush=True)


def cmd_boot(args: argparse.Namespace) -> int:
    with Netns("vmlab") as ns:
        br = bridge(ns, [], "192.0.2.1/24")
        guest = Guest(
            args.name, ns, nics=[(br, None)] * args.nics, memory=args.memory, cpus=args.cpus
        )
        t0 = time.monotonic()
        with guest:
            print(f"booted in {time.monotonic() - t0:.1f} s")
            _describe(guest, ns.name)
            return _repl(guest, args.exec or (), args.timeout)


def cmd_interop(args: argparse.Namespace) -> int:
    from ops.vm.interop import InteropLab

    lab = InteropLab(memory=args.memory)
    try:
        lab.start()
        assert lab.guest is not None and lab.lac is not None
        _describe(lab.guest, lab.lac.name)
        print(f"  lab dir     : {lab.dir}  (broker log node0/broker.log)")
        realms = ["isp-x.example", "isp-y.example", "isp-a.example"]
        specs = [(f"c{i + 1}", f"user{i + 1}@{realms[i % 3]}", "chap") for i in range(args.clients)]
        if specs:
            lab.start_clients(specs)
            for name, user, _ in specs:
                s = lab.client_session(name, 180)
                print(f"  {name}: {user} -> {s.ifname} {s.local} peer {s.remote}")
        return _repl(lab.guest, args.exec or (), args.timeout)
    finally:
        lab.close()
        if not args.keep_dir:
            lab.remove()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ops.vm.lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("boot", "one guest with NICs on a lab namespace bridge, then a prompt"),
        ("interop", "broker + FreeRADIUS + l2tpns + guest with xl2tpd and pppd clients"),
    ):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--memory", type=int, default=768, help="guest MiB (default 768)")
        sp.add_argument("--exec", action="append", metavar="CMD", help="run CMD, then exit")
        sp.add_argument("--timeout", type=float, default=120.0, help="per command, seconds")
        if name == "boot":
            sp.add_argument("--name", default="vmlab")
            sp.add_argument("--nics", type=int, default=1)
            sp.add_argument("--cpus", type=int, default=1)
        else:
            sp.add_argument("--clients", type=int, default=3)
            sp.add_argument("--keep-dir", action="store_true", help="keep the lab directory")
    args = p.parse_args(argv)
    return cmd_boot(args) if args.command == "boot" else cmd_interop(args)


if __name__ == "__main__":
    sys.exit(main())
