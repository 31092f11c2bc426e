#!/usr/bin/env bash
# Memory per device connection: YORI's resident set (VmRSS) at start, after warm-up calls, with
# N idle connections held open (nothing sent), with N kept-alive connections that each made
# one call, and after all are closed. Bounded: N sockets, one call each, 127.0.0.1 only.
#   loadtest/connections.sh [N ...]      (default: 100 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
. loadtest/lib.sh
counts=("${@:-100 1000}"); counts=(${counts[@]})
read -r port mport vport <<<"$(ports 3)"
target/release/examples/mock_vendor --listen "127.0.0.1:$vport" >"$work/mock.log" 2>&1 & pids+=($!)
max=$(( ${counts[-1]} + 100 ))
cat >"$work/yori.conf" <<CONF
listen: 127.0.0.1:$port
metrics: {listen: "127.0.0.1:$mport"}
audit: {database: $work/audit.db}
endpoints:
  - {vendor: openai, upstream: "http://127.0.0.1:$vport"}
limits:
  header_timeout_ms: 600000
  keepalive_timeout_ms: 600000
  max_connections: $max
  max_connections_per_client: $max
server: {threads: 1, pid_file: $work/yori.pid, upgrade_sock: $work/up.sock}
CONF
target/release/yori -c "$work/yori.conf" >"$work/yori.log" 2>&1 & ypid=$!; pids+=($ypid)
wait_up "http://127.0.0.1:$port/health" "$ypid" "$work/yori.log"
machine
echo "# $(date -u +%FT%TZ) loadtest/connections.sh ${counts[*]}; yori pid $ypid, threads 1"
python3 - "$port" "$ypid" "${counts[@]}" <<'PY'
import json, socket, sys, time
port, pid, counts = int(sys.argv[1]), sys.argv[2], [int(n) for n in sys.argv[3:]]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
req = (b"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
def call(s):
    s.sendall(req)
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, rest = got.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        rest += s.recv(65536)
def settle():
    time.sleep(11.0)
    return rss()
base = settle()
for _ in range(50):
    s = socket.create_connection(("127.0.0.1", port)); call(s); s.close()
warm = settle()
print(f"{'state':<38} {'VmRSS KiB':>10} {'per conn KiB':>13}")
print(f"{'started':<38} {base:>10}")
print(f"{'after 50 calls':<38} {warm:>10}")
for n in counts:
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    r = settle()
    print(f"{f'{n} idle connections':<38} {r:>10} {(r - warm) / n:>13.1f}")
    for s in idle: s.close()
    after = settle()
    print(f"{f'  closed again':<38} {after:>10}")
    kept = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port)); call(s); kept.append(s)
    r = settle()
    print(f"{f'{n} kept-alive connections, 1 call each':<38} {r:>10} {(r - warm) / n:>13.1f}")
    for s in kept: s.close()
    after = settle()
    print(f"{f'  closed again':<38} {after:>10}")
PY
