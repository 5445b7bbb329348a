#!/usr/bin/env bash
# Every benchmark of BENCHMARKS.md in one command: reset (against the manual procedure
# and the psql floor, status, SQLite, reset against rows with its plot), then verify,
# then repair (against dump, reset and reload).
set -euo pipefail
cd "$(dirname "$0")/.."
bench/reset.sh "${ROUNDS:-11}"
bench/verify.sh
bench/repair.sh "${ROUNDS:-7}"
