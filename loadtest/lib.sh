# Shared by the load scripts (sourced, not run): installs wrk, builds YORI and the mock, makes a
# work folder whose processes (PIDs in `pids`) are stopped and which is removed at exit, and
# hands out free loopback ports and waits for a service to answer.
command -v wrk >/dev/null || { scripts/setup; apt-get install -y -qq wrk >/dev/null; }
scripts/setup
cargo build --release --bin yori --example mock_vendor -q
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
# N distinct free ports at once (asking one at a time can hand out the same port twice)
ports() { python3 -c 'import socket,sys;s=[socket.socket() for _ in range(int(sys.argv[1]))];[x.bind(("127.0.0.1",0)) for x in s];print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"; }
# waits for URL to answer; stops the script, with the log, if process PID dies or it never does
wait_up() { # url pid log
  for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; kill -0 "$2" 2>/dev/null || break; sleep 0.1; done
  echo "not serving: $1" >&2; cat "$3" >&2; exit 1
}
machine() { echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo), $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; }
