"""Run one target under atheris: ``python -m ops.fuzz.driver TARGET [libFuzzer args]``.

The target module and everything it imports from ``broker`` are instrumented for coverage.
This is what the runner (``python -m ops.fuzz``) starts in a subprocess per target.
"""

from __future__ import annotations

import importlib
import sys

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

from ops.fuzz.targets import TARGETS


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        raise SystemExit(f"usage: python -m ops.fuzz.driver TARGET [libFuzzer args]; {TARGETS}")
    name = argv[1]
    with atheris.instrument_imports(include=["broker", "ops.fuzz.targets"]):
        module = importlib.import_module(f"ops.fuzz.targets.{name}")
    atheris.Setup([argv[0], *argv[2:]], module.test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
