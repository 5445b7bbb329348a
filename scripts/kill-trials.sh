#!/usr/bin/env bash
# The full crash trials (tests/tests/kill_trials.rs at full size): SIGKILL at random
# moments of `reset --force`, `restore`, `migrate` and `squash` (20 trials each, per
# backend, stores of 200,000 rows), and a PostgreSQL server of the test's own stopped with
# `pg_ctl stop -m immediate` mid-reset and started again (20 trials). After each: the old
# state intact or the new one verified, the next run settles anything in doubt and
# succeeds, and no prepared transaction, journal row, lock, scratch database or staging
# folder is left. Prints one summary line per command and backend.
#   scripts/kill-trials.sh
#   TRIALS=50 ROWS=100000 SERVER_TRIALS=10 scripts/kill-trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export ORCH_KILL_TRIALS="${TRIALS:-20}" ORCH_KILL_ROWS="${ROWS:-200000}" \
  ORCH_SERVER_TRIALS="${SERVER_TRIALS:-20}" ORCH_TEST_REQUIRE_PG="${ORCH_TEST_REQUIRE_PG:-1}"
# One test at a time: the calibrated kill moments assume the machine is not also running
# the other trials.
cargo test --release -p orch-tests --test kill_trials -- --nocapture --test-threads=1 2>&1 \
  | tee /tmp/kill-trials.log | grep -E 'KILL TRIALS|SERVER STOP|test result|panicked'
