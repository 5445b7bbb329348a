#!/usr/bin/env bash
# Reset speed, side by side in one run, alternating, medians (issue: benchmarks):
#   ours    orchestrator reset --force --no-backup (both stores, PostgreSQL)
#   manual  what people run today: psql DROP SCHEMA/CREATE SCHEMA/GRANT on each database,
#           `diesel migration run` for each crate, psql catalog queries for tables and FKs
#   floor   psql -1 replaying each store's concatenated migration SQL (after the drop)
# Usage: bench/reset.sh [ROUNDS]   (PG_URL=postgres://postgres@127.0.0.1:5432 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-15}"
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export PGOPTIONS="-c client_min_messages=warning"
TOOLS="$PWD/bench/.tools"
DIESEL="$TOOLS/bin/diesel"
if [ ! -x "$DIESEL" ]; then
  echo "installing diesel_cli into $TOOLS (once)…" >&2
  cargo install diesel_cli --version '^2.3' --no-default-features --features postgres --root "$TOOLS" >&2
fi
cargo build --release -q -p orchestrator
ORCH="$PWD/target/release/orchestrator"

AUTH_DB=bench_reset_auth APP_DB=bench_reset_app
for db in $AUTH_DB $APP_DB; do
  psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
done
AUTH_URL="$PG/$AUTH_DB" APP_URL="$PG/$APP_DB"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; for db in $AUTH_DB $APP_DB; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done' EXIT
cat auth-db/migrations/postgres/*/up.sql > "$WORK/auth.sql"
cat app-db/migrations/postgres/*/up.sql > "$WORK/app.sql"
DROP="DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;"
CATALOG="SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'public' AND relkind = 'r' ORDER BY 1;
SELECT conrelid::regclass, confrelid::regclass, confdeltype FROM pg_constraint WHERE contype = 'f' ORDER BY 1;"

ours() { (cd "$WORK" && "$ORCH" --auth-url "$AUTH_URL" --app-url "$APP_URL" reset --force --no-backup --format json >/dev/null); }
manual() {
  psql -q "$APP_URL" -c "$DROP" >/dev/null
  psql -q "$AUTH_URL" -c "$DROP" >/dev/null
  "$DIESEL" migration run --migration-dir auth-db/migrations/postgres --database-url "$AUTH_URL" >/dev/null
  "$DIESEL" migration run --migration-dir app-db/migrations/postgres --database-url "$APP_URL" >/dev/null
  psql -q "$AUTH_URL" -c "$CATALOG" >/dev/null
  psql -q "$APP_URL" -c "$CATALOG" >/dev/null
}
floor() {
  psql -q -1 "$APP_URL" -c "$DROP" -f "$WORK/app.sql" >/dev/null
  psql -q -1 "$AUTH_URL" -c "$DROP" -f "$WORK/auth.sql" >/dev/null
}
ms() { local t0 t1; t0=$(date +%s%N); "$@"; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }

ours; manual; floor   # warm up (and prove each works)
: > "$WORK/times"
for i in $(seq 1 "$ROUNDS"); do
  for what in ours manual floor; do
    echo "$what $(ms $what)" >> "$WORK/times"
  done
done
median() { grep "^$1 " "$WORK/times" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
O=$(median ours) M=$(median manual) F=$(median floor)
echo "rounds=$ROUNDS ours_ms=$O manual_ms=$M floor_ms=$F"
awk -v o="$O" -v m="$M" -v f="$F" 'BEGIN { printf "ours/manual=%.2f (target <= 0.5)  ours/floor=%.2f (target <= 1.2)\n", o/m, o/f }'
