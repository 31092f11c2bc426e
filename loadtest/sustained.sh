#!/usr/bin/env bash
# The brief's floor, on the real path: 50 req/s of 1 KB chat POSTs (a third of them streamed) for
# 60 s through YORI on one thread with policies and audit on, then a graceful stop.
#   loadtest/sustained.sh                 # 60 s at 50 req/s
#   DURATION=20 RATE=200 loadtest/sustained.sh
# Shows: requests/s held, p50/p95/p99 latency, errors, YORI's peak RSS, and audit rows written vs
# requests answered (every answered request must have its row after SIGTERM). Installs wrk if
# missing. Traffic goes to 127.0.0.1 only; processes are stopped by PID. Results go to
# loadtest/results/sustained-*.txt with the machine and command.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}; RATE=${RATE:-50}; CONNS=${CONNS:-10}
. loadtest/lib.sh
read -r MOCK YORI METRICS < <(ports 3)
target/release/examples/mock_vendor --listen 127.0.0.1:$MOCK --threads 1 >"$work/mock.log" 2>&1 & pids+=($!)
cat >"$work/yori.conf" <<CONF
listen: 127.0.0.1:$YORI
metrics:
  listen: 127.0.0.1:$METRICS
endpoints:
  - vendor: openai
    upstream: http://127.0.0.1:$MOCK
audit:
  database: $work/audit.db
server:
  threads: 1
  pid_file: $work/yori.pid
  upgrade_sock: $work/upgrade.sock
  grace_period_seconds: 2
  graceful_shutdown_timeout_seconds: 5
CONF
RUST_LOG=warn target/release/yori -c "$work/yori.conf" >"$work/yori.log" 2>&1 & YPID=$!; pids+=($YPID)
wait_up "http://127.0.0.1:$YORI/health" "$YPID" "$work/yori.log"
# a third of the requests stream: three wrk processes share the rate (JSON twice, stream once)
pause=$(( CONNS * 1000 * 3 / RATE ))
out="loadtest/results/sustained-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# loadtest/sustained.sh  $(date -u +%FT%TZ)"
  machine
  echo "# ${RATE} req/s for ${DURATION}s: 3 x wrk -t1 -c$CONNS with LT_DELAY_MS=$pause (2 JSON, 1 streamed); yori threads=1, policies + audit on"
  for k in json1 json2 stream; do
    s=0; [ "$k" = stream ] && s=1
    LT_DELAY_MS=$pause LT_STREAM=$s wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s loadtest/post.lua \
      "http://127.0.0.1:$YORI/openai/v1/chat/completions" >"$work/$k.txt" &
  done
  wait  # the three wrk runs (this block runs in its own subshell)
  for k in json1 json2 stream; do
    printf '%-7s %s req/s  p50 %s  p95 %sus  p99 %s  %s\n' "$k" "$(awk '/Requests\/sec/ {print $2}' "$work/$k.txt")" \
      "$(awk '$1=="50%" {print $2}' "$work/$k.txt")" "$(awk '$1=="p95_us" {print $2}' "$work/$k.txt")" "$(awk '$1=="99%" {print $2}' "$work/$k.txt")" \
      "$(grep -h 'Non-2xx\|Socket errors' "$work/$k.txt" | tr -s ' ' | tr '\n' ' ')"
  done
  total=$(awk '/requests in/ {s+=$1} END {print s}' "$work"/json1.txt "$work"/json2.txt "$work"/stream.txt)
  awk -v n="$total" -v d="$DURATION" 'BEGIN {printf "held: %.1f req/s over %d s (%d requests)\n", n/d, d, n}'
  curl -s "http://127.0.0.1:$METRICS/metrics" >"$work/metrics.txt"
  awk '/^yori_overhead_seconds_(sum|count)/ {v[$1]=$2} END {for (k in v) if (k ~ /count/) c=v[k]; else s=v[k]; if (c>0) printf "yori_overhead_seconds mean: %.0f us over %d exchanges\n", s/c*1e6, c}' "$work/metrics.txt"
  echo "yori peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$YPID/status)"
  kill -TERM "$YPID"; for _ in $(seq 100); do kill -0 "$YPID" 2>/dev/null || break; sleep 0.1; done
  rows=$(sqlite3 "$work/audit.db" 'SELECT COUNT(*) FROM audit_events')
  echo "audit rows written: $rows for $total requests wrk completed (wrk cuts at most $((3 * CONNS)) in flight at its end)"
  echo "yori warnings/errors in its log: $(grep -c 'WARN\|ERROR' "$work/yori.log" || true)"
} | tee "$out"
echo "written: $out"
