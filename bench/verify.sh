#!/usr/bin/env bash
# Benchmarks `orchestrator verify` on PostgreSQL against what a PostgreSQL user would write
# instead (a postgres_fdw anti-join) and against the floor (streaming the same ordered id
# columns out with COPY), alternating the three, and measures verify's peak RSS at the
# given size and at ten times that size. It creates its own databases and drops them.
#
#   bench/verify.sh                      # 300k users, 600k datasets, 7 rounds
#   USERS=30000 DATASETS=60000 RUNS=3 SCALE10=0 bench/verify.sh   # a quick try
#
# Environment: PGHOST (127.0.0.1), PGPORT (5432), PGUSER (postgres), USERS, DATASETS,
# RUNS, SCALE10 (1: also measure RSS at 10x), ICU_LOCALE (en-US: a locale whose order is
# not byte order, as in production; empty for the server default).
set -euo pipefail

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
USERS=${USERS:-300000}
DATASETS=${DATASETS:-600000}
RUNS=${RUNS:-7}
SCALE10=${SCALE10:-1}
ICU_LOCALE=${ICU_LOCALE-en-US}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/orchestrator
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

command -v psql >/dev/null || { echo "psql is needed" >&2; exit 2; }
if [ ! -x /usr/bin/time ]; then
  apt-get install -y time >/dev/null
fi

(cd "$ROOT" && cargo build --release -p orchestrator --quiet)

DBS=()
cleanup() {
  for db in "${DBS[@]}"; do
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  done
}
trap cleanup EXIT

create_db() {
  local db=$1 locale=""
  if [ -n "$ICU_LOCALE" ]; then
    locale="TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '$ICU_LOCALE' LOCALE 'C.UTF-8'"
  fi
  "${PSQL[@]}" -d postgres -c "CREATE DATABASE \"$db\" $locale"
  DBS+=("$db")
}

# A migrated pair with $1 users and $2 datasets; ids look like UUIDs (md5), so neither
# side is stored in id order. 5 datasets name a missing owner, 3 a missing team; half
# of the datasets have no team.
load_pair() {
  local auth=$1 app=$2 users=$3 datasets=$4
  create_db "$auth"
  create_db "$app"
  "$BIN" -q --auth-url "postgres://$PGUSER@$PGHOST:$PGPORT/$auth" \
    --app-url "postgres://$PGUSER@$PGHOST:$PGPORT/$app" migrate >/dev/null
  local teams=$((users / 10))
  "${PSQL[@]}" -d "$auth" <<SQL
INSERT INTO users (id, email) SELECT md5('u' || i), 'user' || i || '@example.com'
  FROM generate_series(1, $users) i;
INSERT INTO teams (id, name, owner_id) SELECT md5('t' || i), 'team ' || i, md5('u' || (i * 10))
  FROM generate_series(1, $teams) i;
VACUUM ANALYZE;
SQL
  "${PSQL[@]}" -d "$app" <<SQL
INSERT INTO datasets (id, owner_id, team_id, name)
  SELECT md5('d' || i), md5('u' || (1 + i % $users)),
         CASE WHEN i % 2 = 0 THEN md5('t' || (1 + i % $teams)) END, 'dataset ' || i
  FROM generate_series(1, $datasets - 8) i;
INSERT INTO datasets (id, owner_id, team_id, name)
  SELECT md5('orphan' || i), md5('gone' || i), NULL, 'orphan' FROM generate_series(1, 5) i;
INSERT INTO datasets (id, owner_id, team_id, name)
  SELECT md5('tless' || i), md5('u1'), md5('gone team' || i), 'orphan team' FROM generate_series(1, 3) i;
VACUUM ANALYZE;
SQL
}

verify_cmd() {
  echo "$BIN -q --auth-url postgres://$PGUSER@$PGHOST:$PGPORT/$1 --app-url postgres://$PGUSER@$PGHOST:$PGPORT/$2 verify"
}

# What a PostgreSQL user would write instead: the auth tables as foreign tables in the
# app database, and an anti-join per reference, counting the orphans only.
setup_fdw() {
  local auth=$1 app=$2
  "${PSQL[@]}" -d "$app" <<SQL
CREATE EXTENSION postgres_fdw;
CREATE SERVER auth_server FOREIGN DATA WRAPPER postgres_fdw
  OPTIONS (host '$PGHOST', port '$PGPORT', dbname '$auth');
CREATE USER MAPPING FOR CURRENT_USER SERVER auth_server OPTIONS (user '$PGUSER');
CREATE SCHEMA auth_fdw;
IMPORT FOREIGN SCHEMA public LIMIT TO (users, teams) FROM SERVER auth_server INTO auth_fdw;
SQL
}

FDW_SQL="SELECT count(*) FROM datasets d WHERE NOT EXISTS (SELECT 1 FROM auth_fdw.users u WHERE u.id = d.owner_id);
SELECT count(*) FROM datasets d WHERE d.team_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM auth_fdw.teams t WHERE t.id = d.team_id);"

# The floor: the same ordered columns verify reads, streamed out with COPY, the two sides
# of each reference at once, one reference after the other (as verify does).
floor_cmd() {
  local auth=$1 app=$2
  cat <<EOF
psql -X -d $app -c 'COPY (SELECT owner_id FROM datasets WHERE owner_id IS NOT NULL ORDER BY owner_id COLLATE "C") TO STDOUT' >/dev/null &
psql -X -d $auth -c 'COPY (SELECT id FROM users ORDER BY id COLLATE "C") TO STDOUT' >/dev/null; wait
psql -X -d $app -c 'COPY (SELECT team_id FROM datasets WHERE team_id IS NOT NULL ORDER BY team_id COLLATE "C") TO STDOUT' >/dev/null &
psql -X -d $auth -c 'COPY (SELECT id FROM teams ORDER BY id COLLATE "C") TO STDOUT' >/dev/null; wait
EOF
}

now_ns() { date +%s%N; }

# Runs a command, returns its wall time in ms; verify exits 1 on the planted orphans.
time_ms() {
  local start end rc=0
  start=$(now_ns)
  bash -c "$1" >/dev/null 2>&1 || rc=$?
  end=$(now_ns)
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ]; then
    echo "command failed ($rc): $1" >&2
    exit 1
  fi
  echo $(((end - start) / 1000000))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

peak_rss_mib() {
  local out
  out=$( { /usr/bin/time -v bash -c "exec $1" >/dev/null; } 2>&1 || true)
  echo "$out" | awk -F: '/Maximum resident set size/ {printf "%.1f", $2 / 1024}'
}

TAG=bench_verify_$$
AUTH=${TAG}_auth APP=${TAG}_app
echo "loading $USERS users and $DATASETS datasets…" >&2
load_pair "$AUTH" "$APP" "$USERS" "$DATASETS"
setup_fdw "$AUTH" "$APP"

VERIFY=$(verify_cmd "$AUTH" "$APP")
FDW="psql -X -q -d $APP -c '$FDW_SQL'"
FLOOR=$(floor_cmd "$AUTH" "$APP")

# Sanity: verify finds exactly the planted orphans.
"$BIN" --format json --auth-url "postgres://$PGUSER@$PGHOST:$PGPORT/$AUTH" \
  --app-url "postgres://$PGUSER@$PGHOST:$PGPORT/$APP" verify |
  grep -E '"(from|orphans)"' >&2 || true

# One warm-up each, then alternate.
time_ms "$VERIFY" >/dev/null; time_ms "$FDW" >/dev/null; time_ms "$FLOOR" >/dev/null
v=() f=() c=()
for _ in $(seq "$RUNS"); do
  v+=("$(time_ms "$VERIFY")")
  f+=("$(time_ms "$FDW")")
  c+=("$(time_ms "$FLOOR")")
done
mv=$(printf '%s\n' "${v[@]}" | median)
mf=$(printf '%s\n' "${f[@]}" | median)
mc=$(printf '%s\n' "${c[@]}" | median)
rss=$(peak_rss_mib "$VERIFY")

echo
echo "## $USERS users, $DATASETS datasets, $RUNS alternating rounds (ms: median; all runs)"
echo "verify           $mv  (${v[*]})"
echo "postgres_fdw     $mf  (${f[*]})"
echo "COPY floor       $mc  (${c[*]})"
awk -v v="$mv" -v f="$mf" -v c="$mc" 'BEGIN {
  printf "verify / fdw     %.2fx (target <= 0.70)\n", v / f
  printf "verify / floor   %.2fx (target <= 1.20)\n", v / c }'
echo "verify peak RSS  $rss MiB (target < 64)"

if [ "$SCALE10" = 1 ]; then
  AUTH10=${TAG}_auth10 APP10=${TAG}_app10
  echo "loading $((USERS * 10)) users and $((DATASETS * 10)) datasets…" >&2
  load_pair "$AUTH10" "$APP10" $((USERS * 10)) $((DATASETS * 10))
  VERIFY10=$(verify_cmd "$AUTH10" "$APP10")
  time_ms "$VERIFY10" >/dev/null
  t10=$(time_ms "$VERIFY10")
  rss10=$(peak_rss_mib "$VERIFY10")
  echo "## $((USERS * 10)) users, $((DATASETS * 10)) datasets"
  echo "verify           $t10 ms (one run after a warm-up)"
  echo "verify peak RSS  $rss10 MiB (target < 64)"
fi
