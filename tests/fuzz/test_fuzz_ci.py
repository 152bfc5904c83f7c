"""CI tier of the fuzzing (ops/fuzz): every target runs briefly under atheris/libFuzzer and
must not crash, and every seed plus a fixed set of pseudo-random inputs goes through each
target in-process. Longer runs on demand: ``python -m ops.fuzz all --seconds 60``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ops.fuzz import corpus
from ops.fuzz.runner import run_target
from ops.fuzz.targets import TARGETS, load

#: Per target: at most this many seconds of fuzzing (14 targets: under a minute in total).
CI_SECONDS = 3
CI_RUNS = 10_000


@pytest.fixture(scope="module")
def seeds() -> dict[str, list[bytes]]:
    return corpus.build()


def test_every_target_has_seeds(seeds: dict[str, list[bytes]]) -> None:
    assert set(seeds) == set(TARGETS)
    for name in TARGETS:
        assert seeds[name], f"no seed for {name}"


@pytest.mark.parametrize("name", TARGETS)
def test_seeds_and_random_inputs_keep_the_contract(
    name: str, seeds: dict[str, list[bytes]]
) -> None:
    fn = load(name)
    rng = random.Random(f"fuzz-ci-{name}")
    inputs = list(seeds[name])
    for seed in seeds[name]:  # byte flips and truncations of every seed
        for _ in range(20):
            mutated = bytearray(seed)
            if mutated:
                mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
            inputs.append(bytes(mutated[: rng.randint(0, len(mutated))]))
            inputs.append(bytes(mutated))
    inputs += [rng.randbytes(rng.randint(0, 300)) for _ in range(200)]
    for data in inputs:
        fn(data)  # any exception is a broken contract


@pytest.mark.parametrize("name", TARGETS)
def test_fuzz_briefly_without_crash(name: str, tmp_path: Path) -> None:
    result = run_target(
        name,
        CI_SECONDS,
        runs=CI_RUNS,
        seed=1,
        timeout=120,  # per input: generous, the machine may be loaded
        seeds_dir=tmp_path / "seeds",
        work_dir=tmp_path / "work",
        crash_dir=tmp_path / "crashes",
    )
    crashes = {p.name: p.read_bytes().hex() for p in result.crashes}
    assert result.ok, f"{name} crashed: {crashes}\n{result.output_tail}"
    assert result.execs > 0, result.output_tail
