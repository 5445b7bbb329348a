#!/usr/bin/env bash
# The write-fence trials at full size (tests/tests/e2e/writers.rs): a writer commits a row
# every 10 ms into auth's `verifications` throughout `reset --force` of a store holding
# ROWS rows (default 1,000,000), TRIALS times (default 10) per backend; every row whose
# commit returned must be in the reset's backup or in the new database. PostgreSQL runs
# once per URL in PG_URLS (by default the two clusters .ci/run sets up: 5432 with
# max_prepared_transactions = 0, 5433 with 64); SQLite in the first pass only.
#   scripts/writer-trials.sh
#   TRIALS=3 ROWS=200000 PG_URLS="postgres://postgres@127.0.0.1:5432/postgres" scripts/writer-trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export WRITER_TRIALS="${TRIALS:-10}" WRITER_ROWS="${ROWS:-1000000}" ORCH_TEST_REQUIRE_PG=1
read -r -a urls <<<"${PG_URLS:-postgres://postgres@127.0.0.1:5432/postgres postgres://postgres@127.0.0.1:5433/postgres}"
status=0
for i in "${!urls[@]}"; do
  url=${urls[$i]}
  mpt=$(psql "$url" -Atc 'show max_prepared_transactions')
  echo "=== pass $((i + 1)) of ${#urls[@]}: $url (max_prepared_transactions=$mpt)"
  backends=
  ((i > 0)) && backends=postgres
  set +e
  ORCH_TEST_PG_URL="$url" ORCH_TEST_BACKENDS="$backends" \
    cargo test --release -p orch-tests --test e2e -- writers:: --nocapture 2>&1 \
    | grep -E 'WRITER TRIAL|test result|panicked|lost:'
  codes=("${PIPESTATUS[@]}")
  set -e
  [ "${codes[0]}" -eq 0 ] || status=1
done
exit "$status"
