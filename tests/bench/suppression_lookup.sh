#!/usr/bin/env bash
#
# tests/bench/suppression_lookup.sh — "may I send?" latency of mailhook-api with a large
# suppression list, under a constant request rate.
#
# Loads SUPPRESSED addresses (default 1,000,000) into a database of its own (migrated by
# `mailhook migrate`), starts mailhook-api against it, then has suppression_lookup_load
# send GET /v1/suppressions/{address}?tenant=bench at RATE requests/s (default 1000)
# for SECONDS (default 60), HIT_PERCENT (default 50) of them for suppressed addresses.
# Prints the latency percentiles (measured from each request's due time) as JSON, then
# the same for GET /healthz at the same rate (BASELINE=0 skips it) — a server without a
# database, so a tail both share comes from the machine (other processes on the cores),
# not from the lookup — and fails when the lookup's p99 is over P99_BUDGET_MS (default 2).
#
# Kafka and PostgreSQL: MAILHOOK_KAFKA_BROKERS / MAILHOOK_PG_DSN, else the local stack
# of deploy/local (started here if it is not running, and stopped again). Uses the
# build in MH_BUILD_DIR (default build/). Everything it starts it stops; the database
# is dropped unless KEEP=1.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
cd "$MH_ROOT"

SUPPRESSED=${SUPPRESSED:-1000000}
RATE=${RATE:-1000}
SECONDS_RUN=${SECONDS_RUN:-60}
HIT_PERCENT=${HIT_PERCENT:-50}
CONNECTIONS=${CONNECTIONS:-16}
P99_BUDGET_MS=${P99_BUDGET_MS:-2}

build=$(mh_build_dir)
work=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
db="mailhook_bench_$$"
api_pid=""

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -s $work/api.log ]]; then mh_tail "$work/api.log" 20; fi
  if [[ -n $api_pid ]]; then mh_stop_pid "$api_pid" 10 mailhook-api; fi
  if [[ ${KEEP:-0} != 1 && -n ${admin_dsn:-} ]]; then
    psql "$admin_dsn" -XqtAc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1
  fi
  if [[ $MH_KAFKA_STARTED == 1 ]]; then mh_kafka_down; fi
  if [[ $MH_PG_STARTED == 1 ]]; then mh_pg_down; fi
  rm -rf "$work"
}
trap cleanup EXIT

[[ -x $build/mailhook-api && -x $build/mailhook ]] || mh_die "build mailhook first (missing in $build)"
mh_kafka_up
mh_pg_up
admin_dsn=$(mh_pg_dsn)
PATH="$(mh_pg_bin):$PATH"
psql "$admin_dsn" -XqtAc "create database \"$db\"" >/dev/null
dsn=$("$MH_VENV/bin/python" -c 'import sys; from psycopg.conninfo import conninfo_to_dict, make_conninfo; d = conninfo_to_dict(sys.argv[1]); d["dbname"] = sys.argv[2]; print(make_conninfo(**d))' "$admin_dsn" "$db")

port=$("$MH_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(openssl rand -hex 16)
cat >"$work/bench.ini" <<EOF
[postgres]
dsn = $dsn
[kafka]
bootstrap.servers = $(mh_brokers)
[api]
listen = 127.0.0.1:$port
token = $token
maintenance_interval_s = 0
log_level = warn
EOF
export MAILHOOK_PG_DSN=$dsn
"$build/mailhook" --config "$work/bench.ini" migrate >/dev/null

mh_log "loading $SUPPRESSED suppressed addresses"
t0=$SECONDS
psql "$dsn" -Xq <<SQL
INSERT INTO mh_suppressions (tenant, address, state, reason, at, event_id, source)
SELECT 'bench', 'bench-' || n || '@example.com', 'suppressed',
       (ARRAY['bounce', 'complaint', 'unsubscribe', 'manual'])[1 + n % 4],
       now() - make_interval(mins => n % 100000), 'bench-' || n, 'bench'
  FROM generate_series(0, $SUPPRESSED - 1) AS n;
VACUUM ANALYZE mh_suppressions;
-- The load's WAL is flushed now, not by a checkpoint in the middle of the measurement.
CHECKPOINT;
SQL
mh_log "loaded in $((SECONDS - t0))s: $(psql "$dsn" -XqtAc "select pg_size_pretty(pg_total_relation_size('mh_suppressions'))")"

cc -O2 -Wall -Wextra -o "$work/load" tests/bench/suppression_lookup_load.c
"$build/mailhook-api" --config "$work/bench.ini" >"$work/api.log" 2>&1 &
api_pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  sleep 0.1
done

mh_log "warming up (10 s at $RATE/s)"
"$work/load" 127.0.0.1 "$port" "$token" bench "$RATE" 10 "$SUPPRESSED" "$HIT_PERCENT" "$CONNECTIONS" >/dev/null
mh_log "measuring: $RATE requests/s for $SECONDS_RUN s, $HIT_PERCENT% suppressed addresses, $CONNECTIONS connections"
result=$("$work/load" 127.0.0.1 "$port" "$token" bench "$RATE" "$SECONDS_RUN" "$SUPPRESSED" "$HIT_PERCENT" "$CONNECTIONS")
echo "lookup:   $result"
if [[ ${BASELINE:-1} == 1 ]]; then
  # The same rate against /healthz (no PostgreSQL): how much of the tail is the machine's.
  base=$(MH_BENCH_BASELINE=1 "$work/load" 127.0.0.1 "$port" "$token" bench "$RATE" "$SECONDS_RUN" "$SUPPRESSED" "$HIT_PERCENT" "$CONNECTIONS")
  echo "baseline: $base"
fi
p99=$("$MH_VENV/bin/python" -c 'import json, sys; print(json.loads(sys.argv[1])["p99_ms"])' "$result")
if "$MH_VENV/bin/python" -c 'import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)' "$p99" "$P99_BUDGET_MS"; then
  mh_log "p99 ${p99} ms: under the ${P99_BUDGET_MS} ms budget"
else
  mh_err "p99 ${p99} ms: over the ${P99_BUDGET_MS} ms budget"
  exit 1
fi
