#!/usr/bin/env bash
# Reset speed, side by side in one run, alternating, medians (issue: benchmarks):
#   ours    orchestrator reset --force --no-backup (both stores, PostgreSQL)
#   manual  what people run today: psql DROP SCHEMA/CREATE SCHEMA/GRANT on each database,
#           `diesel migration run` for each crate, psql catalog queries for tables and FKs
#   floor   psql -1 replaying each store's concatenated migration SQL (after the drop)
#   sqlite  the embedded default's reset, absolute; status against two `psql -c 'select 1'`
#   scale   reset --force (backup included) of stores holding 0 … 1M rows each, with its
#           breakdown, written to bench/results/reset-scale.csv and plotted to
#           bench/results/reset-vs-rows.png
# Usage: bench/reset.sh [ROUNDS]   (PG_URL=postgres://postgres@127.0.0.1:5432 by default;
#        SCALE_ROWS="0 100000 300000 1000000" to choose the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
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
ORCH="${CARGO_TARGET_DIR:-$PWD/target}/release/orchestrator"

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

ours; manual; floor   # warm up (and prove each works)
: > "$WORK/times"
steal_mark
for i in $(seq 1 "$ROUNDS"); do
  for what in ours manual floor; do
    echo "$what $(ms $what)" >> "$WORK/times"
  done
done
O=$(median_of "$WORK/times" ours) M=$(median_of "$WORK/times" manual) F=$(median_of "$WORK/times" floor)
echo "rounds=$ROUNDS ours_ms=$O manual_ms=$M floor_ms=$F cpu_steal_permille=$(steal_since_mark)"
awk -v o="$O" -v m="$M" -v f="$F" 'BEGIN { printf "ours/manual=%.2f (target <= 0.5)  ours/floor=%.2f (target <= 1.2)\n", o/m, o/f }'

echo "== status against two psql 'select 1' connections"
# Migrated by this tool, so status reports stores that need nothing (it exits 1 on stores
# that do, which the floor's replay leaves without this tool's bookkeeping).
ours >/dev/null
: > "$WORK/times2"
status() { (cd "$WORK" && "$ORCH" --auth-url "$AUTH_URL" --app-url "$APP_URL" status --format json >/dev/null); }
two_selects() { psql -qAtc 'select 1' "$AUTH_URL" >/dev/null; psql -qAtc 'select 1' "$APP_URL" >/dev/null; }
for i in $(seq 1 "$ROUNDS"); do
  echo "status $(ms status)" >> "$WORK/times2"
  echo "selects $(ms two_selects)" >> "$WORK/times2"
done
S=$(median_of "$WORK/times2" status) Q=$(median_of "$WORK/times2" selects)
awk -v s="$S" -v q="$Q" 'BEGIN { printf "status_ms=%d two_psql_select1_ms=%d ratio=%.2f\n", s, q, s/q }'

echo "== SQLite (embedded default) reset --force --no-backup, absolute"
LITE="$WORK/lite"; mkdir -p "$LITE"
(cd "$LITE" && "$ORCH" migrate >/dev/null)
: > "$WORK/times3"
for i in $(seq 1 "$ROUNDS"); do
  echo "lite $(ms bash -c "cd '$LITE' && '$ORCH' reset --force --no-backup >/dev/null")" >> "$WORK/times3"
done
echo "sqlite_reset_ms=$(grep '^lite ' "$WORK/times3" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"

echo "== reset --force (backup included) against rows per store"
mkdir -p bench/results
CSV=bench/results/reset-scale.csv
echo "rows_per_store,total_ms,lock_ms,guard_ms,backup_ms,rebuild_ms,drop_ms,migrate_ms,verify_ms,commit_ms" > "$CSV"
for rows in ${SCALE_ROWS:-0 100000 300000 1000000}; do
  ours >/dev/null   # empty, migrated
  if [ "$rows" -gt 0 ]; then
    psql -q "$AUTH_URL" -c "INSERT INTO users (id, email) SELECT 'u' || n, 'u' || n || '@example.com' FROM generate_series(1, $rows) n"
    psql -q "$APP_URL" -c "INSERT INTO datasets (id, owner_id, name) SELECT 'd' || n, 'u' || n, 'dataset ' || n FROM generate_series(1, $rows) n"
    psql -q "$AUTH_URL" -c "VACUUM ANALYZE" ; psql -q "$APP_URL" -c "VACUUM ANALYZE"
  fi
  json=$(cd "$WORK" && "$ORCH" --auth-url "$AUTH_URL" --app-url "$APP_URL" reset --force --backup-dir "$WORK/backups" --format json)
  rm -rf "$WORK/backups"
  echo "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin); t = r["timings_ms"]; rows = int(sys.argv[1])
# Per-store phases run in parallel; the slower store sets the pace.
ph = {k: max(s["outcome"]["phases"][k] for s in r["stores"]) for k in ("drop", "migrate", "verify", "commit")}
print(",".join(str(x) for x in [rows, t["total"], t["lock"], t["guard"], t["backup"], t["rebuild"], ph["drop"], ph["migrate"], ph["verify"], ph["commit"]]))
' "$rows" >> "$CSV"
done
column -s, -t < "$CSV"
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib >/dev/null 2>&1 || echo "matplotlib unavailable: no plot" >&2
python3 - "$CSV" bench/results/reset-vs-rows.png <<'PY' || true
import csv, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = list(csv.DictReader(open(sys.argv[1])))
x = [int(r["rows_per_store"]) for r in rows]
fig, ax = plt.subplots(figsize=(7, 4))
bottom = [0] * len(rows)
for key, label in [("lock_ms", "lock+settle"), ("guard_ms", "guard"), ("backup_ms", "backup"), ("rebuild_ms", "drop+migrate+verify+commit")]:
    vals = [int(r[key]) / 1000 for r in rows]
    ax.bar([str(v) for v in x], vals, bottom=bottom, label=label)
    bottom = [b + v for b, v in zip(bottom, vals)]
ax.set_xlabel("rows per store (users in auth, datasets in app)")
ax.set_ylabel("seconds")
ax.set_title("orchestrator reset --force (PostgreSQL, backup included)")
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print("plot:", sys.argv[2])
PY
