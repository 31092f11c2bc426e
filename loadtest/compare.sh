#!/usr/bin/env bash
# Direct-to-mock vs through YORI, side by side in one run, as ratios.
#   loadtest/compare.sh            # 10 s per run, 50 connections, YORI on 1 thread, policies + audit on
#   DURATION=30 CONNS=100 THREADS=2 loadtest/compare.sh
#   POLICIES=off loadtest/compare.sh   # same, with no policy evaluated
# Shows, for 1 KB chat POSTs against the mock vendor:
#   - saturation: requests/s and p50/p99 for JSON and streamed chats, direct, through nginx as a
#     bare reverse proxy (the yardstick), through YORI's plain listener (/openai prefix) and
#     through its TLS listener (keep-alive, and a new TLS handshake per request);
#   - a fixed 200 req/s run (10 connections), direct vs YORI: p50/p99 and the overhead (difference);
#   - time to the first streamed event (examples/ttfb.rs, 200 sequential streams), direct vs YORI;
#   - YORI's peak RSS, and audit rows written vs requests answered.
# Installs wrk if missing. Traffic goes to 127.0.0.1 only; every process started is stopped by
# PID. Results (with machine and commands) go to loadtest/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}; CONNS=${CONNS:-50}; THREADS=${THREADS:-1}; WRK_THREADS=${WRK_THREADS:-1}
POLICIES=${POLICIES:-on}   # off: no policy evaluated (policies.enabled: []), to price the shipped set
command -v nginx >/dev/null || apt-get install -y -qq nginx-light >/dev/null || echo "nginx not installable: its row is skipped" >&2
. loadtest/lib.sh
read -r MOCK YORI METRICS NGINX TLS < <(ports 5)
cargo build --release --example ttfb -q
target/release/examples/mock_vendor --listen 127.0.0.1:$MOCK --threads 1 >"$work/mock.log" 2>&1 & pids+=($!)
cat >"$work/yori.conf" <<CONF
listen: 127.0.0.1:$YORI
metrics:
  listen: 127.0.0.1:$METRICS
tls:
  listen: 127.0.0.1:$TLS
  ca_dir: $work/ca
endpoints:
  - vendor: openai
    domain: localhost            # the TLS run's SNI (wrk resolves it to 127.0.0.1)
    upstream: http://127.0.0.1:$MOCK
$( [ "$POLICIES" = off ] && printf 'policies:\n  enabled: []' )
audit:
  database: $work/audit.db
server:
  threads: $THREADS
  pid_file: $work/yori.pid
  upgrade_sock: $work/upgrade.sock
  grace_period_seconds: 1
  graceful_shutdown_timeout_seconds: 2
CONF
RUST_LOG=warn target/release/yori -c "$work/yori.conf" >"$work/yori.log" 2>&1 & YPID=$!; pids+=($YPID)
if command -v nginx >/dev/null; then
  # nginx as a bare reverse proxy to the same mock (inspects nothing): the yardstick
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  upstream mock { server 127.0.0.1:$MOCK; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location /openai/ {
      proxy_pass http://mock/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host api.openai.com;
      proxy_buffering off;
    }
  }
}
NGX
  nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
fi
wait_up "http://127.0.0.1:$YORI/health" "$YPID" "$work/yori.log"
for _ in $(seq 100); do curl -sf -o /dev/null -X POST "http://127.0.0.1:$MOCK/v1/chat/completions" -d '{}' && break; sleep 0.1; done

run() { # name url stream host [extra wrk args...]
  local name=$1 url=$2 stream=$3 host=$4; shift 4
  LT_STREAM=$stream LT_HOST=$host wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s loadtest/post.lua "$@" "$url" >"$work/$name.txt"
  report "$name"
}
report() {
  local rps p50 p95 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt"); p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  p95=$(awk '$1=="p95_us" {printf "%.2fms", $2/1000}' "$work/$1.txt")
  printf '%-22s %12s req/s   p50 %9s   p95 %9s   p99 %9s  %s\n' "$1" "$rps" "$p50" "$p95" "$p99" "$(grep -h 'Non-2xx\|Socket errors' "$work/$1.txt" | tr -s ' ' | tr '\n' ' ')"
  echo "$rps" >"$work/$1.rps"
}
to_us() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n*1000; else print n*1000000 }'; }
fixed() { # name url host: 200 req/s from 10 connections for DURATION
  LT_DELAY_MS=50 LT_STREAM=0 LT_HOST=$3 wrk -t1 -c10 -d"${DURATION}s" --latency -s loadtest/post.lua "$2" >"$work/$1.txt"
  report "$1"
}
out="loadtest/results/compare-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# loadtest/compare.sh  $(date -u +%FT%TZ)"
  machine
  echo "# wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency -s loadtest/post.lua; yori server.threads=$THREADS, policies $POLICIES, audit on; mock 1 thread; all on the same cores"
  echo "## saturation"
  run direct-json "http://127.0.0.1:$MOCK/v1/chat/completions" 0 api.openai.com
  command -v nginx >/dev/null && run nginx-json "http://127.0.0.1:$NGINX/openai/v1/chat/completions" 0 ""
  run yori-json "http://127.0.0.1:$YORI/openai/v1/chat/completions" 0 ""
  run yori-tls-json "https://localhost:$TLS/v1/chat/completions" 0 ""
  run yori-tls-handshakes "https://localhost:$TLS/v1/chat/completions" 0 "" -H "Connection: close"
  run direct-stream "http://127.0.0.1:$MOCK/v1/chat/completions" 1 api.openai.com
  run yori-stream "http://127.0.0.1:$YORI/openai/v1/chat/completions" 1 ""
  echo "## fixed rate: 200 req/s (wrk -t1 -c10, each connection pausing 50 ms), ${DURATION}s"
  fixed direct-200rps "http://127.0.0.1:$MOCK/v1/chat/completions" api.openai.com
  fixed yori-200rps "http://127.0.0.1:$YORI/openai/v1/chat/completions" ""
  for q in 50 95 99; do
    if [ "$q" = 95 ]; then
      d=$(awk '$1=="p95_us" {print $2}' "$work/direct-200rps.txt"); y=$(awk '$1=="p95_us" {print $2}' "$work/yori-200rps.txt")
    else
      d=$(to_us "$(awk -v q="$q%" '$1==q {print $2}' "$work/direct-200rps.txt")")
      y=$(to_us "$(awk -v q="$q%" '$1==q {print $2}' "$work/yori-200rps.txt")")
    fi
    awk -v q="$q" -v d="$d" -v y="$y" 'BEGIN {printf "overhead at 200 req/s  p%s: %.0f us (yori %.0f us - direct %.0f us)\n", q, y-d, y, d}'
  done
  echo "## first streamed event (examples/ttfb.rs: 200 streams one after another, new connection each, mock pacing 5 ms)"
  read -r d50 d95 d99 dmax dn < <(target/release/examples/ttfb "127.0.0.1:$MOCK" /v1/chat/completions api.openai.com 200)
  read -r y50 y95 y99 ymax yn < <(target/release/examples/ttfb "127.0.0.1:$YORI" /openai/v1/chat/completions 127.0.0.1 200)
  echo "direct  first event p50 ${d50} us  p95 ${d95} us  p99 ${d99} us  (n=$dn)"
  echo "yori    first event p50 ${y50} us  p95 ${y95} us  p99 ${y99} us  (n=$yn)"
  echo "first-event overhead p50 $((y50 - d50)) us  p95 $((y95 - d95)) us  p99 $((y99 - d99)) us"
  [ -f "$work/nginx-json.rps" ] && awk -v a="$(cat "$work/yori-json.rps")" -v b="$(cat "$work/nginx-json.rps")" 'BEGIN {printf "ratio yori/nginx  json   %.2f\n", a/b}'
  for k in json stream; do
    awk -v a="$(cat "$work/yori-$k.rps")" -v b="$(cat "$work/direct-$k.rps")" -v k="$k" 'BEGIN {printf "ratio yori/direct %-6s %.2f\n", k, a/b}'
  done
  awk -v a="$(cat "$work/yori-tls-json.rps")" -v b="$(cat "$work/yori-json.rps")" 'BEGIN {printf "ratio yori tls/plain json %.2f\n", a/b}'
  echo "yori peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$YPID/status)"
  sent=$(( $(awk '/requests in/ {s+=$1} END {print s}' "$work"/yori-*.txt) + yn ))  # wrk runs + ttfb streams
  kill -TERM "$YPID"; for _ in $(seq 100); do kill -0 "$YPID" 2>/dev/null || break; sleep 0.1; done
  echo "audit rows written: $(sqlite3 "$work/audit.db" 'SELECT COUNT(*) FROM audit_events') for $sent requests completed by wrk (wrk cuts in-flight requests at the end of each run)"
  echo "yori errors in wrk output: $(grep -h 'Non-2xx\|Socket errors' "$work"/yori-*.txt | tr '\n' ' ' || true)"
  echo "yori log warnings/errors: $(grep -c 'WARN\|ERROR' "$work/yori.log" || true)"
} | tee "$out"
echo "written: $out"
