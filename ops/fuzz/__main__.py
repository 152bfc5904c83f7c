"""``python -m ops.fuzz``: build corpora, run one or all fuzz targets, replay inputs.

    python -m ops.fuzz list
    python -m ops.fuzz corpus
    python -m ops.fuzz run l2tp_control --seconds 60
    python -m ops.fuzz all --seconds 60
    python -m ops.fuzz replay l2tp_control ops/fuzz/crashes/l2tp_control/crash-...

Exit status 1 when any target crashed (the inputs are listed).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from ops.fuzz import corpus
from ops.fuzz.runner import FuzzResult, baseline, run_target
from ops.fuzz.targets import TARGETS, load


def _print(result: FuzzResult) -> None:
    status = "ok" if result.ok else f"CRASH (exit {result.returncode})"
    print(
        f"{result.target:16} {status:10} execs={result.execs:<9} cov={result.cov:<5} "
        f"ft={result.features:<6} corpus={result.corpus:<5} wall={result.wall:6.1f}s "
        f"cpu={result.cpu:6.1f}s execs/cpu-s={result.execs_per_cpu_s:8.0f} "
        f"execs/wall-s={result.execs_per_wall_s:8.0f}",
        flush=True,
    )
    if not result.ok:
        print(result.output_tail)
        for path in result.crashes:
            print(f"  crash input: {path} ({path.read_bytes().hex()[:200]})")


def _run(targets: list[str], ns: argparse.Namespace) -> int:
    corpus.write()
    failed = 0
    for target in targets:
        result = run_target(
            target,
            ns.seconds,
            runs=ns.runs,
            seed=ns.seed,
            rss_limit_mb=ns.rss_limit_mb,
            timeout=ns.timeout,
            nice=ns.nice,
        )
        _print(result)
        if ns.baseline and result.ok:
            n, cpu = baseline(target, ns.baseline)
            print(f"{'':16} baseline: corpus replayed uninstrumented {n / cpu:8.0f} inputs/cpu-s")
        failed += not result.ok
    return 1 if failed else 0


def _replay(target: str, paths: list[Path]) -> int:
    fn = load(target)
    bad = 0
    for path in paths:
        try:
            fn(path.read_bytes())
        except Exception:
            bad += 1
            print(f"{path}: FAILS")
            traceback.print_exc()
        else:
            print(f"{path}: ok")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.fuzz", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the target names")
    sub.add_parser("corpus", help=f"write the seed corpora to {corpus.DEFAULT_DIR}")
    for name in ("run", "all"):
        p = sub.add_parser(name, help="fuzz one target" if name == "run" else "fuzz every target")
        if name == "run":
            p.add_argument("target", choices=TARGETS)
        p.add_argument("--seconds", type=float, default=60.0, help="per target")
        p.add_argument("--runs", type=int, default=None, help="stop after this many inputs")
        p.add_argument("--seed", type=int, default=None, help="libFuzzer -seed")
        p.add_argument("--rss-limit-mb", type=int, default=2048)
        p.add_argument("--timeout", type=int, default=30, help="seconds per input")
        p.add_argument("--nice", type=int, default=10)
        p.add_argument(
            "--baseline",
            type=float,
            default=0.0,
            help="then replay the corpus uninstrumented for this many CPU seconds",
        )
    p = sub.add_parser("replay", help="run inputs through a target without fuzzing")
    p.add_argument("target", choices=TARGETS)
    p.add_argument("paths", nargs="+", type=Path)
    ns = parser.parse_args(argv)
    if ns.command == "list":
        print("\n".join(TARGETS))
        return 0
    if ns.command == "corpus":
        for name, folder in corpus.write().items():
            print(f"{name:16} {sum(1 for _ in folder.iterdir()):4} seeds in {folder}")
        return 0
    if ns.command == "run":
        return _run([ns.target], ns)
    if ns.command == "all":
        return _run(list(TARGETS), ns)
    return _replay(ns.target, ns.paths)


if __name__ == "__main__":
    sys.exit(main())
