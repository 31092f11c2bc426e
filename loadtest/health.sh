#!/usr/bin/env bash
# The original brief's runs against YORI's /health, bounded:
#   loadtest/health.sh        # ab -n 3000 -c 50, then wrk -t4 -c100 -d30s (DURATION to change)
# Shows the plain request rate of the listener (no vendor involved). Installs ab and wrk if
# missing; starts YORI on the built-in default but on 127.0.0.1 and temp paths; stops it by PID;
# writes loadtest/results/health-*.txt with the machine and commands.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
command -v ab >/dev/null || apt-get install -y -qq apache2-utils >/dev/null
. loadtest/lib.sh
read -r P M < <(ports 2)
printf 'listen: 127.0.0.1:%s\nmetrics:\n  listen: 127.0.0.1:%s\naudit:\n  database: %s/audit.db\nserver:\n  pid_file: %s/pid\n  upgrade_sock: %s/up\n  grace_period_seconds: 1\n' "$P" "$M" "$work" "$work" "$work" >"$work/y.conf"
RUST_LOG=warn target/release/yori -c "$work/y.conf" 2>"$work/log" & YPID=$!; pids+=($YPID)
wait_up "http://127.0.0.1:$P/health" "$YPID" "$work/log"
out="loadtest/results/health-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "# loadtest/health.sh $(date -u +%FT%TZ); $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "## ab -n 3000 -c 50 http://127.0.0.1:$P/health"
  ab -n 3000 -c 50 "http://127.0.0.1:$P/health" 2>&1 | grep -E 'Requests per second|Failed requests|50%|99%'
  echo "## wrk -t4 -c100 -d${DURATION}s --latency http://127.0.0.1:$P/health"
  wrk -t4 -c100 -d"${DURATION}s" --latency "http://127.0.0.1:$P/health" | grep -E 'Requests/sec|50%|99%|Non-2xx|Socket'
  echo "yori peak RSS: $(awk '/VmHWM/ {print $2 " " $3}' /proc/$YPID/status)"
} | tee "$out"
