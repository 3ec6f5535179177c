#!/usr/bin/env bash
# Loopback load test: policyd against the no-op reference server.
#
# Builds release binaries, starts `noop-server` and `policyd --action DUNNO`
# (once with --log-level warn, once with --log-level info, i.e. one log line per
# decision, written to a file) on ephemeral loopback ports, then runs `loadgen`
# against each in turn for ROUNDS rounds (interleaved, so drift in the machine's
# load hits all servers alike) and prints, per server, the median req/s and
# latencies over the rounds, and the ratio of policyd's req/s to noop-server's.
#
# Settings (environment): CONNECTIONS (default 32), DURATION seconds per run
# (default 10), ROUNDS (default 3), SEED (default loadgen's), SERVERS (default
# "noop policyd-warn policyd-info").
# Target: policyd-warn >= 80 % of noop-server's req/s at 32 connections.
#
# Everything stays on 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
connections="${CONNECTIONS:-32}"
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
servers="${SERVERS:-noop policyd-warn policyd-info}"
seed_args=()
[[ -n "${SEED:-}" ]] && seed_args=(--seed "$SEED")

say() { echo "load.sh: $*" >&2; }

say "building release binaries"
cargo build --release --quiet -p policyd-benches --bins -p policyd-bin
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME CMD...: start a server with stderr appended to $work/NAME.log, wait
# for its "listening on ADDR" line, and record ADDR in $work/NAME.addr.
start() {
  local name="$1"; shift
  "$@" 2>>"$work/$name.log" &
  local pid=$!
  pids+=("$pid")
  local addr=""
  for _ in $(seq 100); do
    addr="$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$work/$name.log" | head -n1)"
    [[ -n "$addr" ]] && break
    kill -0 "$pid" 2>/dev/null || { say "error: $name exited at start:"; cat "$work/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n "$addr" ]] || { say "error: $name printed no 'listening on' line within 10 s"; exit 1; }
  echo "$addr" >"$work/$name.addr"
  say "$name listening on $addr (pid $pid)"
}

for server in $servers; do
  case "$server" in
    noop) start noop "$bin/noop-server" --listen 127.0.0.1:0 ;;
    policyd-warn) start policyd-warn "$bin/policyd" --listen 127.0.0.1:0 --action DUNNO --log-level warn ;;
    policyd-info) start policyd-info "$bin/policyd" --listen 127.0.0.1:0 --action DUNNO --log-level info ;;
    *) say "error: unknown server '$server' (noop, policyd-warn, policyd-info)"; exit 64 ;;
  esac
done

for round in $(seq "$rounds"); do
  for server in $servers; do
    addr="$(cat "$work/$server.addr")"
    line="$("$bin/loadgen" --target "$addr" --connections "$connections" --duration "$duration" "${seed_args[@]}")" || {
      say "error: loadgen against $server failed"; exit 1; }
    echo "round $round $server $line" | tee -a "$work/results" >&2
    # Keep the decision log of policyd-info from filling the disk (opened in append mode).
    : >"$work/$server.log"
  done
done

echo "load.sh: median of $rounds rounds, $connections connections, ${duration}s each"
python3 - "$work/results" "$servers" <<'PY'
import statistics, sys

path, servers = sys.argv[1], sys.argv[2].split()
runs = {}
for line in open(path):
    fields = line.split()
    server = fields[2]
    kv = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
    runs.setdefault(server, []).append(kv)

def med(server, key):
    return statistics.median(float(r[key]) for r in runs[server])

print(f'{"server":<14} {"req/s":>10} {"p50 us":>9} {"p99 us":>9} {"p99.9 us":>9} {"errors":>7}')
for s in servers:
    errors = sum(int(r["errors"]) for r in runs[s])
    print(f'{s:<14} {med(s, "rps"):>10.0f} {med(s, "p50_us"):>9.1f} {med(s, "p99_us"):>9.1f} '
          f'{med(s, "p999_us"):>9.1f} {errors:>7}')
if "noop" in runs:
    base = med("noop", "rps")
    for s in servers:
        if s != "noop":
            print(f"ratio {s}/noop req/s: {med(s, 'rps') / base:.2f} (target >= 0.80)")
PY
