"""Run fuzz targets in subprocesses (libFuzzer through atheris) and collect figures.

Each run: seeds from :mod:`ops.fuzz.corpus` in ``ops/fuzz/.corpus/<target>/``, the growing
working corpus in ``ops/fuzz/.work/<target>/`` (both not committed), crash, timeout and
out-of-memory inputs in ``ops/fuzz/crashes/<target>/``. The figures are parsed from
libFuzzer's output; CPU time is the child's user+system time (``os.wait4``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ops.fuzz import corpus

FUZZ_DIR = Path(__file__).resolve().parent
REPO = FUZZ_DIR.parents[1]
WORK_DIR = FUZZ_DIR / ".work"
CRASH_DIR = FUZZ_DIR / "crashes"
_ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")
_STATUS = re.compile(
    r"^#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)"
)
_EXECS = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.M)


@dataclass(frozen=True, slots=True)
class FuzzResult:
    target: str
    returncode: int
    execs: int
    cov: int  #: libFuzzer "cov:" (instrumented edges covered) at the end
    features: int  #: libFuzzer "ft:"
    corpus: int  #: inputs in the working corpus at the end
    wall: float  #: seconds
    cpu: float  #: child user + system seconds
    crashes: tuple[Path, ...]  #: new crash/timeout/oom inputs
    output_tail: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.crashes

    @property
    def execs_per_cpu_s(self) -> float:
        return self.execs / self.cpu if self.cpu > 0 else 0.0

    @property
    def execs_per_wall_s(self) -> float:
        return self.execs / self.wall if self.wall > 0 else 0.0


def _artifacts(folder: Path) -> set[Path]:
    if not folder.is_dir():
        return set()
    return {p for p in folder.iterdir() if p.name.startswith(_ARTIFACT_PREFIXES)}


def run_target(
    target: str,
    seconds: float,
    *,
    runs: int | None = None,
    seed: int | None = None,
    rss_limit_mb: int = 2048,
    timeout: int = 30,
    max_len: int = 4096,
    seeds_dir: Path | None = None,
    work_dir: Path | None = None,
    crash_dir: Path | None = None,
    nice: int = 10,
) -> FuzzResult:
    """Fuzz ``target`` for at most ``seconds`` (and ``runs`` inputs, if given)."""
    seeds = (seeds_dir or corpus.DEFAULT_DIR) / target
    if not seeds.is_dir() or not any(seeds.iterdir()):
        corpus.write(seeds.parent)
    work = (work_dir or WORK_DIR) / target
    work.mkdir(parents=True, exist_ok=True)
    crashes = (crash_dir or CRASH_DIR) / target
    crashes.mkdir(parents=True, exist_ok=True)
    before = _artifacts(crashes)
    args = [
        sys.executable,
        "-m",
        "ops.fuzz.driver",
        target,
        str(work),
        str(seeds),
        f"-max_total_time={max(1, int(seconds))}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-timeout={timeout}",
        f"-max_len={max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    dictionary = seeds.parent / f"{target}.dict"
    if dictionary.is_file():
        args.append(f"-dict={dictionary}")
    if runs is not None:
        args.append(f"-runs={runs}")
    if seed is not None:
        args.append(f"-seed={seed}")
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="0")
    started = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    assert proc.stdout is not None
    output = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    execs = cov = features = size = 0
    for line in output.splitlines():
        m = _STATUS.match(line)
        if m:
            execs, cov, features, size = (int(g) for g in m.groups())
    m_execs = _EXECS.search(output)
    if m_execs:
        execs = int(m_execs.group(1))
    return FuzzResult(
        target=target,
        returncode=proc.returncode,
        execs=execs,
        cov=cov,
        features=features,
        corpus=size,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        crashes=tuple(sorted(_artifacts(crashes) - before)),
        output_tail="\n".join(output.splitlines()[-60:]),
    )


def baseline(
    target: str, seconds: float = 2.0, *, dirs: tuple[Path, ...] = ()
) -> tuple[int, float]:
    """(inputs run, CPU seconds): the target's corpus replayed in this process, without
    coverage instrumentation, for about ``seconds`` of CPU time. Run right after a fuzzing
    run it is the same-run baseline of what instrumentation and libFuzzer cost."""
    from ops.fuzz.targets import load

    folders = dirs or (corpus.DEFAULT_DIR / target, WORK_DIR / target)
    inputs = [p.read_bytes() for d in folders if d.is_dir() for p in sorted(d.iterdir())]
    if not inputs:
        inputs = corpus.build()[target]
    fn = load(target)
    done = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        for data in inputs:
            fn(data)
        done += len(inputs)
    return done, time.process_time() - start
