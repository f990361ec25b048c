#!/usr/bin/env bash
#
# tests/bench/ingest_ack_latency.sh — how long a provider waits for its 200: the time
# from a signed webhook's due time to mailhook-ingest's answer, which comes only once
# Kafka has acknowledged the record (acks=all, idempotent producer), under a constant
# request rate.
#
# Starts mailhook-ingest with one HMAC source and a raw topic of its own, then has
# suppression_lookup_load (MH_BENCH_REQUEST mode: the same signed request every time,
# open loop, latency from each request's due time) post at RATE requests/s (default
# 1000) for SECONDS_RUN seconds (default 60) over CONNECTIONS keep-alive connections
# (default 16). Prints the percentiles as JSON, then the same for GET /healthz at the
# same rate — the same process without Kafka: the ceiling this machine allows — and the
# p99 difference between the two. Fails only when a request is not answered 200.
# LINGER_MS sets the producer's linger.ms ([kafka] linger.ms; ingest's own default is
# 1 ms, docs/kafka.md, which is most of the median); THREADS sets [ingest] threads.
#
# Kafka: MAILHOOK_KAFKA_BROKERS, else the local stack of deploy/local (started here if it
# is not running, and stopped again). Uses the build in MH_BUILD_DIR (default build/).
# The raw topic it creates is deleted at the end unless KEEP=1.
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../deploy/local/lib.sh"
cd "$MH_ROOT"

RATE=${RATE:-1000}
SECONDS_RUN=${SECONDS_RUN:-60}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-0}

build=$(mh_build_dir)
work=$(mktemp -d "${TMPDIR:-/tmp}/mh-bench.XXXXXX")
topic="mailhook.raw.bench-$$"
ingest_pid=""

# topic_admin create|delete TOPIC (6 partitions, replication 1: the local broker).
topic_admin() {
  "$MH_VENV/bin/python" - "$brokers" "$1" "$2" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
op, topic = sys.argv[2], sys.argv[3]
futures = (admin.create_topics([NewTopic(topic, 6, 1)]) if op == "create"
           else admin.delete_topics([topic]))
for f in futures.values():
    f.result(30)
PY
}

cleanup() {
  local rc=$?
  set +e
  if ((rc != 0)) && [[ -s $work/ingest.log ]]; then mh_tail "$work/ingest.log" 20; fi
  if [[ -n $ingest_pid ]]; then mh_stop_pid "$ingest_pid" 15 mailhook-ingest; fi
  if [[ ${KEEP:-0} != 1 && -n ${brokers:-} ]]; then
    topic_admin delete "$topic" >/dev/null 2>&1
  fi
  if [[ $MH_KAFKA_STARTED == 1 ]]; then mh_kafka_down; fi
  rm -rf "$work"
}
trap cleanup EXIT

[[ -x $build/mailhook-ingest && -x $build/mailhook ]] || mh_die "build mailhook first (missing in $build)"
mh_venv || mh_die "Python venv"
mh_kafka_up
brokers=$(mh_brokers)

port=$("$MH_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secret=$(openssl rand -hex 24)
cat >"$work/bench.ini" <<EOF
[ingest]
listen = 127.0.0.1:$port
threads = $THREADS
raw_topic = $topic
log_level = warn
[worker]
events_topic = $topic.events
dlq_topic = $topic.dlq
suppressions_topic = $topic.suppressions
[postgres]
dsn = postgresql://unused@127.0.0.1:1/unused
[kafka]
bootstrap.servers = $brokers
${LINGER_MS:+linger.ms = $LINGER_MS}
[source.bench]
provider = hmac
tenant = bench
header = x-bench-signature
encoding = hex
secret = $secret
EOF
# Only the raw topic: the others are never written here.
topic_admin create "$topic"

# One signed delivery event, sent as it is every time (ingest publishes every request;
# the duplicates would be a worker's business).
body='{"event":"delivered","message_id":"bench-1","recipient":"bench@example.com","timestamp":"2026-06-15T10:00:00Z"}'
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
printf 'POST /v1/webhooks/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nx-bench-signature: %s\r\nContent-Length: %d\r\n\r\n%s' \
  "$sig" "${#body}" "$body" >"$work/request"

cc -O2 -Wall -Wextra -o "$work/load" tests/bench/suppression_lookup_load.c
"$build/mailhook-ingest" --config "$work/bench.ini" >"$work/ingest.log" 2>&1 &
ingest_pid=$!
for _ in $(seq 1 150); do
  curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || mh_die "mailhook-ingest not ready"

load() { "$work/load" 127.0.0.1 "$port" - - "$RATE" "$1" 1 0 "$CONNECTIONS"; }
mh_log "warming up (10 s at $RATE/s)"
MH_BENCH_REQUEST="$work/request" load 10 >/dev/null
mh_log "measuring: $RATE webhooks/s for $SECONDS_RUN s, $CONNECTIONS connections, ingest threads=$THREADS, linger.ms=${LINGER_MS:-default}"
result=$(MH_BENCH_REQUEST="$work/request" load "$SECONDS_RUN")
echo "webhook:  $result"
base=$(MH_BENCH_BASELINE=1 load "$SECONDS_RUN")
echo "baseline: $base"
"$MH_VENV/bin/python" - "$result" "$base" <<'PY'
import json, sys
r, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"==> ack p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, p99.9 {r['p999_ms']:.3f} ms; "
      f"/healthz p99 {b['p99_ms']:.3f} ms; Kafka's share of the p99: "
      f"{r['p99_ms'] - b['p99_ms']:.3f} ms")
PY
# The ingest's own histogram agrees with what the client saw (its count covers the warm-up).
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^mailhook_ingest_ack_seconds_(count|sum)'
