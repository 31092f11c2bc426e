# Shared by the load scripts (sourced, not run): installs wrk, builds YORI and the mock, makes a
# work folder whose processes (PIDs in `pids`) are stopped and which is removed at exit, and
# hands out free loopback ports.
command -v wrk >/dev/null || { scripts/setup; apt-get install -y -qq wrk >/dev/null; }
scripts/setup
cargo build --release --bin yori --example mock_vendor -q
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
machine() { echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024) " MiB"}' /proc/meminfo), $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; }
