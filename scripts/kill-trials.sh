#!/usr/bin/env bash
# The full SIGKILL trial: 20 forced resets a backend of stores holding 200,000 rows each,
# each killed at a random moment; after each, the next run must settle and find either the
# old data intact or a clean verified reset. Prints one summary line per backend.
#   scripts/kill-trials.sh            # 20 trials, 200k rows
#   TRIALS=50 ROWS=100000 scripts/kill-trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export ORCH_KILL_TRIALS="${TRIALS:-20}" ORCH_KILL_ROWS="${ROWS:-200000}" ORCH_TEST_REQUIRE_PG="${ORCH_TEST_REQUIRE_PG:-1}"
cargo test --release -p orch-tests --test kill_trials -- --nocapture 2>&1 | tee /tmp/kill-trials.log | grep -E 'KILL TRIALS|test result|panicked'
