#!/usr/bin/env bash
# Repair speed (issue 18), side by side in one run, alternating, medians:
#   ours    orchestrator repair: the original drift fixed in place
#   replayed the same with --replay: the migrations run in scratch databases
#   manual  what a user would otherwise do to keep the data: back both stores' data up
#           (pg_dump --data-only), reset them (orchestrator reset --force --no-backup),
#           reload the data (pg_restore --data-only --disable-triggers)
# on a PostgreSQL pair holding 100,000 rows a store (ROWS=…), drifted the original way: a
# users table in app (its rows all in auth), a missing column, a wrong ON DELETE, an extra
# foreign key, a changed type, a dropped index. Each round starts from copies of the same
# drifted pair (CREATE DATABASE … TEMPLATE), made outside the timing.
# Usage: bench/repair.sh [ROUNDS]   (PG_URL=postgres://postgres@127.0.0.1:5432 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
ROUNDS="${1:-7}"
ROWS="${ROWS:-100000}"
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export PGOPTIONS="-c client_min_messages=warning"
cargo build --release -q -p orchestrator
ORCH="${CARGO_TARGET_DIR:-$PWD/target}/release/orchestrator"

T_AUTH=bench_repair_auth_t T_APP=bench_repair_app_t AUTH_DB=bench_repair_auth APP_DB=bench_repair_app
WORK=$(mktemp -d)
dropall() { for db in $AUTH_DB $APP_DB $T_AUTH $T_APP; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done; }
trap 'rm -rf "$WORK"; dropall' EXIT
dropall
for db in $T_AUTH $T_APP; do psql -q "$PG/postgres" -c "CREATE DATABASE $db"; done
orch() { (cd "$WORK" && "$ORCH" --auth-url "$PG/$1" --app-url "$PG/$2" "${@:3}"); }

echo "== building the drifted pair ($ROWS rows a store)"
orch $T_AUTH $T_APP migrate >/dev/null
THIRD=$((ROWS / 3))
psql -q "$PG/$T_AUTH" -c "INSERT INTO users (id, email) SELECT 'u' || n, 'u' || n || '@example.com' FROM generate_series(1, $ROWS) n"
psql -v ON_ERROR_STOP=1 -q "$PG/$T_APP" <<SQL
INSERT INTO datasets (id, owner_id, name) SELECT 'd' || n, 'u' || n, 'dataset ' || n FROM generate_series(1, $THIRD) n;
INSERT INTO documents (id, dataset_id, filename, size_bytes) SELECT 'f' || n, 'd' || n, 'file' || n || '.pdf', n FROM generate_series(1, $THIRD) n;
INSERT INTO processing_jobs (id, document_id, attempts) SELECT 'j' || n, 'f' || n, n % 3 FROM generate_series(1, $THIRD) n;
-- The original drift.
CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL);
ALTER TABLE documents DROP COLUMN content_type;
ALTER TABLE documents DROP CONSTRAINT documents_dataset_id_fkey;
ALTER TABLE documents ADD CONSTRAINT documents_dataset_id_fkey FOREIGN KEY (dataset_id) REFERENCES datasets (id);
ALTER TABLE processing_jobs ADD CONSTRAINT jobs_extra_fkey FOREIGN KEY (document_id) REFERENCES documents (id) ON DELETE CASCADE;
ALTER TABLE processing_jobs ALTER COLUMN attempts TYPE bigint;
DROP INDEX datasets_owner_id_idx;
SQL
psql -q "$PG/$T_AUTH" -c "COPY users (id, email) TO STDOUT" | psql -q "$PG/$T_APP" -c "COPY users (id, email) FROM STDIN"
for db in $T_AUTH $T_APP; do psql -q "$PG/$db" -c "VACUUM ANALYZE"; done

fresh() {
  for pair in "$AUTH_DB:$T_AUTH" "$APP_DB:$T_APP"; do
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS ${pair%%:*} WITH (FORCE)" -c "CREATE DATABASE ${pair%%:*} TEMPLATE ${pair##*:}" >/dev/null
  done
}
counts() {
  psql -qAt "$PG/$AUTH_DB" -c "SELECT count(*) FROM users"
  psql -qAt "$PG/$APP_DB" -c "SELECT (SELECT count(*) FROM datasets) || ' ' || (SELECT count(*) FROM documents) || ' ' || (SELECT count(*) FROM processing_jobs) || ' ' || (SELECT COALESCE(sum(attempts), 0) FROM processing_jobs)"
}

ours() { orch $AUTH_DB $APP_DB repair --format json >/dev/null; }
# The same repair with the migrations replayed in scratch databases instead of the
# recorded definitions (what a server of another major version, or --replay, costs).
replayed() { orch $AUTH_DB $APP_DB repair --replay --format json >/dev/null; }
manual() {
  pg_dump -Fc --data-only --exclude-table='__*' -f "$WORK/auth.dump" "$PG/$AUTH_DB"
  pg_dump -Fc --data-only --exclude-table='__*' --exclude-table=users -f "$WORK/app.dump" "$PG/$APP_DB"
  orch $AUTH_DB $APP_DB reset --force --no-backup --format json >/dev/null
  pg_restore --data-only --disable-triggers -d "$PG/$AUTH_DB" "$WORK/auth.dump"
  pg_restore --data-only --disable-triggers -d "$PG/$APP_DB" "$WORK/app.dump"
}

# Both routes once, proven: nothing left to repair, and the same rows kept.
fresh; before=$(counts); ours; orch $AUTH_DB $APP_DB diff >/dev/null; after_ours=$(counts)
fresh; manual; orch $AUTH_DB $APP_DB diff >/dev/null; after_manual=$(counts)
[ "$before" = "$after_ours" ] && [ "$before" = "$after_manual" ] || {
  echo "rows differ: before=[$before] ours=[$after_ours] manual=[$after_manual]" >&2; exit 1; }
echo "both routes leave diff clean and keep every row (auth users, app datasets documents jobs sum(attempts): $(echo $before))"

: > "$WORK/times"
for i in $(seq 1 "$ROUNDS"); do
  for what in ours manual replayed; do
    fresh
    echo "$what $(ms $what)" >> "$WORK/times"
  done
done
O=$(median_of "$WORK/times" ours) M=$(median_of "$WORK/times" manual) R=$(median_of "$WORK/times" replayed)
echo "rounds=$ROUNDS rows_per_store=$ROWS ours_ms=$O manual_ms=$M replayed_ms=$R"
awk -v o="$O" -v m="$M" -v r="$R" 'BEGIN { printf "ours/manual=%.2f (target <= 0.2)  replayed/manual=%.2f\n", o/m, r/m }'
