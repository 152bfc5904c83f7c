#!/usr/bin/env bash
# The main job: a demo lab on the embedded defaults (in-memory state, local sqlite spool).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/setup.sh
exec .venv/bin/python -m ops.lab.demo "$@"
