#!/usr/bin/env bash
# The production deploy of a squashed history, end to end, with a binary that has no
# source tree beside it (issue 15):
#   1. a database migrated with the current (long) history, by the current binary;
#   2. a copy of the workspace squashes auth and app (both backends), and is built;
#   3. the built binary is copied to an empty folder and run from there:
#      - on the database of step 1: the baseline is recognised and marked, nothing re-run;
#      - on a fresh database: the baseline is applied;
#      - `verify` passes on both.
# Takes a release build of the copy (several minutes on 2 cores). PostgreSQL at PG_URL.
# Usage: scripts/deploy-squashed.sh     (PG_URL=postgres://postgres@127.0.0.1:5432)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
export PGOPTIONS="-c client_min_messages=warning"
WORK=$(mktemp -d)
DBS=(dep_old_auth dep_old_app dep_new_auth dep_new_app)
cleanup() {
  for db in "${DBS[@]}"; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
for db in "${DBS[@]}"; do psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"; done
step() { printf '\n== %s\n' "$1"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "1. the old history, applied by the current binary"
cargo build --release -q -p orchestrator
OLD="${CARGO_TARGET_DIR:-$ROOT/target}/release/orchestrator"
(cd "$WORK" && "$OLD" --auth-url "$PG/dep_old_auth" --app-url "$PG/dep_old_app" migrate -q)

step "2. a copy of the workspace, squashed and built"
mkdir -p "$WORK/ws"
git ls-files -z | (cd "$ROOT" && xargs -0 tar cf -) | tar xf - -C "$WORK/ws"
for store in auth app; do
  (cd "$WORK/ws" && "$OLD" squash --store "$store" --shadow-url "$PG/postgres")
done
for store in auth app; do
  for backend in postgres sqlite; do
    n=$(find "$WORK/ws/$store-db/migrations/$backend" -mindepth 1 -maxdepth 1 -type d | wc -l)
    [ "$n" = 1 ] || fail "$store/$backend holds $n migrations after the squash"
  done
done
git -C "$ROOT" diff --quiet -- auth-db/migrations app-db/migrations || fail "the squash wrote into $ROOT"
(cd "$WORK/ws" && CARGO_TARGET_DIR="$WORK/target" cargo build --release -q -p orchestrator)

step "3. the squashed binary, alone in an empty folder"
mkdir -p "$WORK/deploy"
cp "$WORK/target/release/orchestrator" "$WORK/deploy/"
rm -rf "$WORK/ws" "$WORK/target"
NEW="$WORK/deploy/orchestrator"
cd "$WORK/deploy"
out=$("$NEW" --auth-url "$PG/dep_old_auth" --app-url "$PG/dep_old_app" --format json migrate)
echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
for s in r["stores"]:
    name, applied = s["store"], s["applied"]
    assert s.get("baseline_recognised"), f"{name}: baseline not recognised: {s}"
    assert applied == [], f"{name}: re-ran {applied}"
print("old database: baseline recognised and marked on both stores, nothing re-run")'
"$NEW" --auth-url "$PG/dep_old_auth" --app-url "$PG/dep_old_app" verify -q || fail "verify on the old database"
"$NEW" --auth-url "$PG/dep_new_auth" --app-url "$PG/dep_new_app" migrate -q
"$NEW" --auth-url "$PG/dep_new_auth" --app-url "$PG/dep_new_app" verify -q || fail "verify on the fresh database"
echo "fresh database: baseline applied, verify passes"
echo "deploy of a squashed history: ok"
