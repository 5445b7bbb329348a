#!/usr/bin/env bash
# Benchmark for `diff` and `squash` (issue 5): side by side, alternating, medians.
#   1. `orchestrator migrate` of the 71-migration fixture vs `diesel migration run` of the
#      same folder, each on a freshly created PostgreSQL database (target: at most 1.0x).
#   2. `orchestrator diff` of a database migrated with that fixture (scratch database
#      created, migrated, introspected and dropped each time).
#   3. `orchestrator squash` of a copy of the fixture, both backends, with its proof.
# Usage: bench/squash.sh [RUNS]    (default 9; env BENCH_PG=postgres://user@host:port)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/common.sh
ROOT=$PWD
RUNS=${1:-9}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
FIXTURE=$ROOT/tests/fixtures/history71
ORCH=${CARGO_TARGET_DIR:-$ROOT/target}/release/orchestrator
DIESEL=$ROOT/bench/.tools/bin/diesel
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cargo build --release -q -p orchestrator
[ -x "$DIESEL" ] || cargo install diesel_cli --no-default-features --features postgres --root bench/.tools

psql_admin() { psql "$PG/postgres" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
fresh() { psql_admin "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; psql_admin "CREATE DATABASE $1 TEMPLATE template0"; }
now_ms() { date +%s%3N; }

# The orchestrator runs in an empty folder: its app store is the default SQLite file there.
orch() { (cd "$WORK" && "$ORCH" -q "$@"); }

: > "$WORK/orch.ms"; : > "$WORK/diesel.ms"; : > "$WORK/diff.ms"; : > "$WORK/sqlite.ms"
for i in $(seq 1 "$RUNS"); do
  # Alternate which tool goes first, so neither always gets the warmer cache.
  order="orch diesel"; [ $((i % 2)) -eq 0 ] && order="diesel orch"
  for tool in $order; do
    fresh bench_squash_$tool
    url="$PG/bench_squash_$tool"
    start=$(now_ms)
    if [ "$tool" = orch ]; then
      orch --auth-url "$url" migrate --store auth --migrations-dir "$FIXTURE" > /dev/null
    else
      "$DIESEL" migration run --database-url "$url" --migration-dir "$FIXTURE/postgres" > /dev/null
    fi
    echo $(( $(now_ms) - start )) >> "$WORK/$tool.ms"
  done
  start=$(now_ms)
  orch --auth-url "$PG/bench_squash_orch" diff --store auth --migrations-dir "$FIXTURE" > /dev/null
  echo $(( $(now_ms) - start )) >> "$WORK/diff.ms"
  rm -f "$WORK/lite.sqlite3"
  start=$(now_ms)
  orch --auth-url "$WORK/lite.sqlite3" migrate --store auth --migrations-dir "$FIXTURE" > /dev/null
  echo $(( $(now_ms) - start )) >> "$WORK/sqlite.ms"
done

rm -rf "$WORK/sq" && mkdir -p "$WORK/sq" && cp -r "$FIXTURE" "$WORK/sq/migrations"
start=$(now_ms)
orch squash --store auth --migrations-dir "$WORK/sq/migrations" --shadow-url "$PG/postgres" > /dev/null
squash_ms=$(( $(now_ms) - start ))
psql_admin "DROP DATABASE IF EXISTS bench_squash_orch WITH (FORCE)"
psql_admin "DROP DATABASE IF EXISTS bench_squash_diesel WITH (FORCE)"

o=$(median < "$WORK/orch.ms"); d=$(median < "$WORK/diesel.ms")
echo "runs: $RUNS (alternating), medians in ms"
echo "postgres migrate 71: orchestrator $o, diesel_cli $d, ratio $(awk -v o="$o" -v d="$d" 'BEGIN {printf "%.2f", o/d}')x"
echo "  orchestrator: $(tr '\n' ' ' < "$WORK/orch.ms")"
echo "  diesel_cli:   $(tr '\n' ' ' < "$WORK/diesel.ms")"
echo "postgres diff (71-migration scratch build + compare): $(median < "$WORK/diff.ms")"
echo "sqlite migrate 71 (orchestrator): $(median < "$WORK/sqlite.ms")"
echo "squash of the fixture, both backends, with proofs (one run): $squash_ms"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(psql "$PG/postgres" -qAt -c 'SHOW server_version')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
