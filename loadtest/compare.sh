#!/usr/bin/env bash
# Side by side in one run, against the same mock vendor: direct, nginx (1 worker, a bare reverse
# proxy), a bare Pingora passthrough (examples/bare_proxy.rs: the limit of YORI's own stack) and
# YORI (observe mode, policies and audit on), each proxy with THREADS worker threads.
#   loadtest/compare.sh                     # 10 s per run, 50 connections, THREADS=1
#   THREADS=2 DURATION=20 loadtest/compare.sh
#   POLICIES=off loadtest/compare.sh        # same, with no policy evaluated
# Shows, for ~1 KB chat POSTs:
#   - saturation (wrk -t1 -cCONNS): requests/s, p50/p99, and each proxy's CPU time per request
#     (utime+stime from /proc/PID/stat before and after the run, all its threads), for JSON and
#     streamed chats; YORI over its TLS listener too (keep-alive, and a handshake per request);
#   - a fixed 200 req/s, latency-corrected (examples/fixed_rate.rs: a request's latency counts
#     from when it was due), p50/p90/p99 and YORI's overhead over direct and over bare Pingora;
#     beside it the older wrk Lua fixed-rate figure (which omits delayed requests);
#   - the time to the first streamed event (examples/ttfb.rs), direct, bare Pingora, YORI;
#   - YORI's peak RSS, audit rows written vs requests answered, and its in-situ policy
#     evaluation median (yori_policy_evaluation_seconds) beside policy_bench's, same run.
# Installs wrk (and nginx) if missing. Traffic goes to 127.0.0.1 only; every process started is
# stopped by PID. Results (with the machine and the commands) go to loadtest/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}; CONNS=${CONNS:-50}; THREADS=${THREADS:-1}; WRK_THREADS=${WRK_THREADS:-1}
POLICIES=${POLICIES:-on}   # off: no policy evaluated (policies.enabled: []), to price the shipped set
command -v nginx >/dev/null || apt-get install -y -qq nginx-light >/dev/null || echo "nginx not installable: its row is skipped" >&2
. loadtest/lib.sh
read -r MOCK YORI METRICS NGINX TLS BARE < <(ports 6)
cargo build --release --example ttfb --example bare_proxy --example fixed_rate --example policy_bench -q
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
target/release/examples/bare_proxy --listen 127.0.0.1:$BARE --upstream 127.0.0.1:$MOCK --threads "$THREADS" >"$work/bare.log" 2>&1 & BPID=$!; pids+=($BPID)
NPID=""
if command -v nginx >/dev/null; then
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<NGX
worker_processes $THREADS;
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
  nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' & NPID=$!; pids+=($NPID)
fi
wait_up "http://127.0.0.1:$YORI/health" "$YPID" "$work/yori.log"
for _ in $(seq 100); do curl -sf -o /dev/null -X POST "http://127.0.0.1:$MOCK/v1/chat/completions" -d '{}' && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf -o /dev/null -X POST "http://127.0.0.1:$BARE/v1/chat/completions" -d '{}' && break; sleep 0.1; done

# CPU clock ticks used so far by the process PID, all its threads (and, for nginx, its workers).
# /proc/PID/stat's fields are counted after the `(comm)` field, which may hold spaces.
cpu_ticks() {
  local t=0 p c
  for p in "$@"; do
    [ -n "$p" ] || continue
    for c in "$p" $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      t=$((t + $(sed 's/.*) //' /proc/"$c"/stat 2>/dev/null | awk '{print $12+$13}' || echo 0)))
    done
  done
  echo "$t"
}
TICK=$(getconf CLK_TCK)
run() { # name url stream host pid [extra wrk args...]
  local name=$1 url=$2 stream=$3 host=$4 pid=$5; shift 5
  local c0 c1
  c0=$(cpu_ticks $pid)
  LT_STREAM=$stream LT_HOST=$host wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s loadtest/post.lua "$@" "$url" >"$work/$name.txt"
  c1=$(cpu_ticks $pid)
  local n; n=$(awk '/requests in/ {print $1}' "$work/$name.txt")
  [ -n "$pid" ] && awk -v a="$c0" -v b="$c1" -v n="$n" -v t="$TICK" 'BEGIN { if (n > 0) printf "%.1f\n", (b-a)/t*1e6/n }' >"$work/$name.cpu"
  report "$name"
}
report() {
  local rps p50 p99 cpu=""
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/$1.txt"); p99=$(awk '$1=="99%" {print $2}' "$work/$1.txt")
  [ -s "$work/$1.cpu" ] && cpu="cpu $(cat "$work/$1.cpu") us/req"
  printf '%-22s %10s req/s  p50 %9s  p99 %9s  %-18s %s\n' "$1" "$rps" "$p50" "$p99" "$cpu" "$(grep -h 'Non-2xx\|Socket errors' "$work/$1.txt" | tr -s ' ' | tr '\n' ' ')"
  echo "$rps" >"$work/$1.rps"
}
ratio() { awk -v a="$(cat "$work/$1.rps")" -v b="$(cat "$work/$2.rps")" -v l="$3" 'BEGIN {printf "ratio %-28s %.2f\n", l, a/b}'; }
fixed() { # name url host: latency-corrected 200 req/s
  read -r p50 p90 p99 p999 max sent ok errors < <(target/release/examples/fixed_rate "$2" 200 "$DURATION" 10 "$3")
  printf '%-22s 200 req/s  p50 %6s us  p90 %6s us  p99 %6s us  p99.9 %6s us  (%s sent, %s ok, %s errors)\n' "$1" "$p50" "$p90" "$p99" "$p999" "$sent" "$ok" "$errors"
  echo "$p50 $p90 $p99" >"$work/$1.fixed"
}
over() { # a b label: percentiles of a minus b
  read -r a50 a90 a99 <"$work/$1.fixed"; read -r b50 b90 b99 <"$work/$2.fixed"
  echo "overhead $3: p50 $((a50 - b50)) us  p90 $((a90 - b90)) us  p99 $((a99 - b99)) us"
}
# median of a Prometheus histogram, interpolated in its buckets (as histogram_quantile does)
hist_median() {
  curl -s "http://127.0.0.1:$METRICS/metrics" | awk -v m="$1" '
    index($0, m "_bucket{le=") == 1 { split($0, a, "\""); le[n] = a[2]; split($0, b, " "); c[n] = b[2]; n++ }
    END { total = c[n-1]; if (total == 0) { print "n/a"; exit }; half = total / 2; lo = 0; prev = 0
          for (i = 0; i < n; i++) { if (c[i] >= half) { hi = le[i]; printf "%.1f us (n=%d)", (lo + (hi - lo) * (half - prev) / (c[i] - prev)) * 1e6, total; exit }
                                   lo = le[i]; prev = c[i] } }'
}
out="loadtest/results/compare-$(date -u +%Y%m%dT%H%M%SZ)-t$THREADS.txt"
{
  echo "# loadtest/compare.sh  $(date -u +%FT%TZ)  THREADS=$THREADS DURATION=$DURATION CONNS=$CONNS POLICIES=$POLICIES"
  machine
  echo "# wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s --latency -s loadtest/post.lua; yori server.threads=$THREADS, observe mode, policies $POLICIES, audit on; bare_proxy --threads $THREADS; nginx worker_processes $THREADS; mock 1 thread; all on the same cores"
  echo "## saturation (cpu: the proxy's own CPU time per request, all its threads)"
  run direct-json "http://127.0.0.1:$MOCK/v1/chat/completions" 0 api.openai.com ""
  [ -n "$NPID" ] && run nginx-json "http://127.0.0.1:$NGINX/openai/v1/chat/completions" 0 "" "$NPID"
  run bare-json "http://127.0.0.1:$BARE/v1/chat/completions" 0 api.openai.com "$BPID"
  run yori-json "http://127.0.0.1:$YORI/openai/v1/chat/completions" 0 "" "$YPID"
  run yori-tls-json "https://localhost:$TLS/v1/chat/completions" 0 "" "$YPID"
  run yori-tls-handshakes "https://localhost:$TLS/v1/chat/completions" 0 "" "$YPID" -H "Connection: close"
  run direct-stream "http://127.0.0.1:$MOCK/v1/chat/completions" 1 api.openai.com ""
  run bare-stream "http://127.0.0.1:$BARE/v1/chat/completions" 1 api.openai.com "$BPID"
  run yori-stream "http://127.0.0.1:$YORI/openai/v1/chat/completions" 1 "" "$YPID"
  ratio yori-json bare-json "yori/bare json"
  ratio yori-stream bare-stream "yori/bare stream"
  [ -n "$NPID" ] && ratio yori-json nginx-json "yori/nginx json"
  [ -n "$NPID" ] && ratio bare-json nginx-json "bare/nginx json"
  ratio yori-json direct-json "yori/direct json"
  ratio yori-tls-json yori-json "yori tls/plain json"
  echo "## fixed 200 req/s, latency-corrected (examples/fixed_rate.rs, 10 connections, ${DURATION}s)"
  fixed direct-200 "http://127.0.0.1:$MOCK/v1/chat/completions" api.openai.com
  fixed bare-200 "http://127.0.0.1:$BARE/v1/chat/completions" api.openai.com
  fixed yori-200 "http://127.0.0.1:$YORI/openai/v1/chat/completions" ""
  over yori-200 direct-200 "yori - direct"
  over yori-200 bare-200 "yori - bare  "
  echo "## fixed 200 req/s, wrk Lua delay() (omits delayed requests; the figure reported before)"
  lua() { # name url host
    LT_DELAY_MS=50 LT_STREAM=0 LT_HOST=$3 wrk -t1 -c10 -d"${DURATION}s" --latency -s loadtest/post.lua "$2" >"$work/$1-lua.txt"
    echo "$1-lua  p50 $(awk '$1=="50%" {print $2}' "$work/$1-lua.txt")  p99 $(awk '$1=="99%" {print $2}' "$work/$1-lua.txt")"
  }
  lua direct "http://127.0.0.1:$MOCK/v1/chat/completions" api.openai.com
  lua yori "http://127.0.0.1:$YORI/openai/v1/chat/completions" ""
  echo "## first streamed event (examples/ttfb.rs: 200 streams one after another, a new connection each, mock pacing 5 ms)"
  read -r d50 d95 d99 _ dn < <(target/release/examples/ttfb "127.0.0.1:$MOCK" /v1/chat/completions api.openai.com 200)
  read -r b50 b95 b99 _ bn < <(target/release/examples/ttfb "127.0.0.1:$BARE" /v1/chat/completions api.openai.com 200)
  read -r y50 y95 y99 _ yn < <(target/release/examples/ttfb "127.0.0.1:$YORI" /openai/v1/chat/completions 127.0.0.1 200)
  echo "direct  first event p50 ${d50} us  p95 ${d95} us  p99 ${d99} us  (n=$dn)"
  echo "bare    first event p50 ${b50} us  p95 ${b95} us  p99 ${b99} us  (n=$bn)"
  echo "yori    first event p50 ${y50} us  p95 ${y95} us  p99 ${y99} us  (n=$yn)"
  echo "first event, yori - bare: p50 $((y50 - b50)) us  p95 $((y95 - b95)) us  p99 $((y99 - b99)) us"
  echo "## policies"
  echo "in situ (yori_policy_evaluation_seconds, every request above): median $(hist_median yori_policy_evaluation_seconds)"
  target/release/examples/policy_bench 20000 >"$work/policy-bench.txt"
  echo "policy_bench (same machine, same minute): $(head -1 "$work/policy-bench.txt" | tr -s " ")"
  echo "## memory and the audit log"
  echo "yori peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$YPID/status)"
  sent=$(( $(awk '/requests in/ {s+=$1} END {print s}' "$work"/yori-*.txt) + yn ))
  kill -TERM "$YPID"; for _ in $(seq 100); do kill -0 "$YPID" 2>/dev/null || break; sleep 0.1; done
  echo "audit rows written: $(sqlite3 "$work/audit.db" 'SELECT COUNT(*) FROM audit_events') for $sent requests completed by wrk and ttfb, plus $((200 * DURATION)) latency-corrected ones (wrk cuts in-flight requests at the end of each run)"
  echo "yori log warnings/errors: $(grep -c 'WARN\|ERROR' "$work/yori.log" || true)"
} | tee "$out"
echo "written: $out"
