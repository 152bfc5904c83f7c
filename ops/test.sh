#!/usr/bin/env bash
# The test command: set-up, lint, strict typing, then every test tier (unit, property,
# integration in network namespaces with real servers). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/setup.sh
echo "== ruff"; .venv/bin/ruff check broker tests ops
echo "== mypy --strict broker"; .venv/bin/mypy --strict broker
echo "== pytest"; exec .venv/bin/python -m pytest "$@"
