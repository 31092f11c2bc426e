#!/usr/bin/env bash
# Direct-to-mock vs through YORI, side by side in one run, as ratios.
#   loadtest/compare.sh            # 10 s per run, 50 connections, YORI on 1 thread
#   DURATION=30 CONNS=100 THREADS=2 loadtest/compare.sh
#   POLICIES=off loadtest/compare.sh   # same, with no policy evaluated
# Shows: requests/s and p50/p99 latency (nginx as a bare reverse proxy too, for JSON) for 1 KB JSON chat POSTs and for streamed chats, direct to
# the mock vendor and through YORI (explicit /openai prefix), the ratios, and YORI's peak RSS.
# Installs wrk if missing. Traffic goes to 127.0.0.1 only; every process started is stopped by
# PID. Results (with machine and commands) go to loadtest/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}; CONNS=${CONNS:-50}; THREADS=${THREADS:-1}; WRK_THREADS=${WRK_THREADS:-1}
POLICIES=${POLICIES:-on}   # off: no policy evaluated (policies.enabled: []), to price the shipped set
command -v wrk >/dev/null || { scripts/setup; apt-get install -y -qq wrk >/dev/null; }
command -v nginx >/dev/null || apt-get install -y -qq nginx-light >/dev/null || echo "nginx not installable: its row is skipped" >&2
scripts/setup
cargo build --release --bin yori --example mock_vendor -q
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
MOCK=$(port); YORI=$(port); METRICS=$(port); NGINX=$(port)
target/release/examples/mock_vendor --listen 127.0.0.1:$MOCK --threads 1 >"$work/mock.log" 2>&1 & pids+=($!)
cat >"$work/yori.conf" <<CONF
listen: 127.0.0.1:$YORI
metrics:
  listen: 127.0.0.1:$METRICS
endpoints:
  - vendor: openai
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
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$YORI/health" >/dev/null && curl -sf -o /dev/null -X POST "http://127.0.0.1:$MOCK/v1/chat/completions" -d '{}' && break; sleep 0.1; done

run() { # name url stream host
  LT_STREAM=$3 LT_HOST=$4 wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s loadtest/post.lua "$2" >"$work/$1.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt"); p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  printf '%-22s %12s req/s   p50 %9s   p99 %9s\n' "$1" "$rps" "$p50" "$p99"
  echo "$rps" >"$work/$1.rps"
}
out="loadtest/results/compare-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# loadtest/compare.sh  $(date -u +%FT%TZ)"
  echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo), $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "# wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency -s loadtest/post.lua; yori server.threads=$THREADS, policies $POLICIES, audit on; mock 1 thread; all on the same cores"
  run direct-json "http://127.0.0.1:$MOCK/v1/chat/completions" 0 api.openai.com
  command -v nginx >/dev/null && run nginx-json "http://127.0.0.1:$NGINX/openai/v1/chat/completions" 0 ""
  run yori-json "http://127.0.0.1:$YORI/openai/v1/chat/completions" 0 ""
  run direct-stream "http://127.0.0.1:$MOCK/v1/chat/completions" 1 api.openai.com
  run yori-stream "http://127.0.0.1:$YORI/openai/v1/chat/completions" 1 ""
  [ -f "$work/nginx-json.rps" ] && awk -v a="$(cat "$work/yori-json.rps")" -v b="$(cat "$work/nginx-json.rps")" 'BEGIN {printf "ratio yori/nginx  json   %.2f\n", a/b}'
  for k in json stream; do
    awk -v a="$(cat "$work/yori-$k.rps")" -v b="$(cat "$work/direct-$k.rps")" -v k="$k" 'BEGIN {printf "ratio yori/direct %-6s %.2f\n", k, a/b}'
  done
  echo "yori peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$YPID/status)"
  sent=$(awk '/requests in/ {s+=$1} END {print s}' "$work"/yori-*.txt)
  kill -TERM "$YPID"; for _ in $(seq 100); do kill -0 "$YPID" 2>/dev/null || break; sleep 0.1; done
  echo "audit rows written: $(sqlite3 "$work/audit.db" 'SELECT COUNT(*) FROM audit_events') for $sent requests completed by wrk (wrk cuts in-flight requests at the end of each run)"
  echo "yori errors in wrk output: $(grep -h 'Non-2xx\|Socket errors' "$work"/yori-*.txt | tr '\n' ' ' || true)"
} | tee "$out"
echo "written: $out"
