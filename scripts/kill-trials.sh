#!/usr/bin/env bash
# The full crash trials (tests/tests/e2e/kill_trials.rs at full size): SIGKILL at random
# moments of `reset --force`, `restore`, `migrate` and `squash` (20 trials each, per
# backend, stores of 200,000 rows), and a PostgreSQL server of the test's own stopped with
# `pg_ctl stop -m immediate` mid-reset and started again (20 trials, on a server with
# max_prepared_transactions = 0 and on one with 64). After each kill: the commands that
# only read change nothing and report the interrupted run; once the next writing command
# has settled it, both stores hold the old contents or both the new (checksums of every
# table), never mixed, never emptied; no prepared transaction, journal row, lock, scratch
# database or staging folder is left.
#
# The shared-server trials run once per server configuration: by default the two
# clusters .ci/run sets up, 127.0.0.1:5432 with max_prepared_transactions = 0 (no
# two-phase commit) and 127.0.0.1:5433 with 64. SQLite does not depend on the server, so
# it runs in the first pass only, as does the server-stop trial (it starts servers with
# both settings itself). Prints one summary line per command, backend and configuration.
#   scripts/kill-trials.sh
#   TRIALS=50 ROWS=100000 SERVER_TRIALS=10 scripts/kill-trials.sh
#   PG_URLS="postgres://postgres@db0/postgres postgres://postgres@db64/postgres" scripts/kill-trials.sh
#   ONLY="reset restore" scripts/kill-trials.sh    # only the trials whose names hold these words
set -euo pipefail
cd "$(dirname "$0")/.."
export ORCH_KILL_TRIALS="${TRIALS:-20}" ORCH_KILL_ROWS="${ROWS:-200000}" \
  ORCH_SERVER_TRIALS="${SERVER_TRIALS:-20}" ORCH_TEST_REQUIRE_PG="${ORCH_TEST_REQUIRE_PG:-1}"
read -r -a urls <<<"${PG_URLS:-postgres://postgres@127.0.0.1:5432/postgres postgres://postgres@127.0.0.1:5433/postgres}"

# Each server's configuration, checked before the hours of trials start: both must
# answer, and together they must cover max_prepared_transactions = 0 and > 0.
settings=()
for url in "${urls[@]}"; do
  if ! mpt=$(psql "$url" -Atc 'show max_prepared_transactions' 2>/dev/null); then
    echo "error: $url does not answer; .ci/run sets up both test clusters (5432 and 5433)" >&2
    exit 2
  fi
  settings+=("$mpt")
done
printf '%s\n' "${settings[@]}" | grep -qx 0 || {
  echo "error: no server with max_prepared_transactions = 0 among: ${urls[*]}" >&2
  exit 2
}
printf '%s\n' "${settings[@]}" | grep -qvx 0 || {
  echo "error: no server with max_prepared_transactions > 0 among: ${urls[*]}" >&2
  exit 2
}

# The trials are the `kill_trials::` area of the one end-to-end test binary; ONLY's words
# choose among them by name (a bare word would also match other areas' tests).
mapfile -t trials < <(cargo test --release -q -p orch-tests --test e2e -- --list kill_trials:: 2>/dev/null |
  sed -n 's/: test$//p' | grep -E "${ONLY:+$(tr ' ' '|' <<<"$ONLY")}" || true)
((${#trials[@]})) || { echo "error: no kill trial matches ONLY=${ONLY:-}" >&2; exit 2; }

log=/tmp/kill-trials.log
: >"$log"
status=0
for i in "${!urls[@]}"; do
  url=${urls[$i]}
  echo "=== pass $((i + 1)) of ${#urls[@]}: $url (max_prepared_transactions=${settings[$i]})" | tee -a "$log"
  run=("${trials[@]}")
  backends=
  if ((i > 0)); then
    backends=postgres
    # (--exact makes --skip exact too, so the server-stop trial leaves the list instead.)
    mapfile -t run < <(printf '%s\n' "${trials[@]}" | grep -v '^kill_trials::server_stop::')
  fi
  ((${#run[@]})) || continue
  # One test at a time: the calibrated kill moments assume the machine is not also running
  # the other trials.
  set +e
  ORCH_TEST_PG_URL="$url" ORCH_TEST_BACKENDS="$backends" \
    cargo test --release -p orch-tests --test e2e -- --exact "${run[@]}" --nocapture --test-threads=1 2>&1 \
    | tee -a "$log" | grep -E '^=== |KILL TRIALS|SERVER STOP|READER FINDING|test result|panicked|mixed|emptied'
  # cargo's status, not grep's, says whether the pass failed; the next pass runs anyway.
  codes=("${PIPESTATUS[@]}")
  set -e
  [ "${codes[0]}" -eq 0 ] || status=1
done
echo "full log: $log"
exit "$status"
