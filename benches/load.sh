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
# "noop policyd-warn policyd-info", plus "policyd-dns-cached
# policyd-dns-uncached" when /usr/sbin/unbound is installed), DNS_DEADLINE
# (default 500ms: the --dns-deadline of the DNS variants).
# Target: policyd-warn >= 80 % of noop-server's req/s at 32 connections.
#
# DNS variants (issue 11), each policyd with a policy of 5 DNS-list tests in a
# score item whose threshold is never reached (nothing decides: DUNNO), at
# --log-level warn:
#   policyd-dns-cached    its lists answered by a local unbound started here
#                         (static zones: every query of the mix is answered,
#                         a listing or NXDOMAIN with the SOA, TTLs of an hour),
#                         so after loadgen's warm-up every answer is in
#                         policyd's cache. The script checks it: the unbound
#                         of these lists counts no query during the measured
#                         runs (unbound-control stats). Target: >= 80 % of
#                         noop-server's req/s.
#   policyd-dns-uncached  the same lists from a second unbound with every TTL
#                         0 (answers and negative answers): nothing can be
#                         cached, each request sends its 5 queries. Its p99
#                         is reported against the deadline.
#   policyd-dns-dead      (not in the default set) one list whose server never
#                         answers, --dns-skip-after at its maximum so the list
#                         is never skipped: every request waits the deadline;
#                         p99 shows the deadline holds under load.
#
# State variants (issue 13), each policyd with one limit (per client address,
# counting recipients, never reached) and one greylist (most of the mix is
# deferred as first attempts; each request is a greylist step all the same),
# at --log-level warn, when redis-server is installed:
#   policyd-state-local   both items in the daemon's own tables
#   policyd-state-redis   both items in a redis-server started here (no
#                         persistence, loopback); the script reports Redis's
#                         script calls per decision (its commandstats): the
#                         round trips a decision makes.
#
# Everything stays on 127.0.0.1; every server started here is stopped on exit.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
connections="${CONNECTIONS:-32}"
duration="${DURATION:-10}"
rounds="${ROUNDS:-3}"
dns_deadline="${DNS_DEADLINE:-500ms}"
unbound_bin=/usr/sbin/unbound
redis_bin=/usr/bin/redis-server
default_servers="noop policyd-warn policyd-info"
[[ -x "$unbound_bin" ]] && default_servers="$default_servers policyd-dns-cached policyd-dns-uncached"
[[ -x "$redis_bin" ]] && default_servers="$default_servers policyd-state-local policyd-state-redis"
servers="${SERVERS:-$default_servers}"
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

# The client addresses of loadgen's mix (benches/src/lib.rs), as DNS lists
# see them (reversed), and the lists that list them (answer).
mix_names=(
  "47.113.0.203"                                                      # FULL_RCPT, END_OF_MESSAGE
  "4.3.2.1"                                                           # SHORT_2X_RCPT
  "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2"  # IPV6_RCPT
  "77.2.0.192"                                                        # SASL_RCPT
)
# "LIST NAME ANSWER": the listings; every other name is NXDOMAIN.
listings=(
  "1 77.2.0.192 127.0.0.2"
  "1 4.3.2.1 127.0.0.2"
  "2 47.113.0.203 127.0.0.3"
  "3 5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.7.6.5.4.3.2.1.8.b.d.0.1.0.0.2 127.0.0.2"
  "5 77.2.0.192 127.0.0.4"
)
dns_lists=5

# free_port: a loopback port free for UDP and TCP (unbound binds both).
free_port() {
  python3 -c 'import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0)); p = u.getsockname()[1]
t = socket.socket(); t.bind(("127.0.0.1", p)); print(p)'
}

# dns_ready PORT NAME: wait (10 s at most) until the server on PORT answers a
# query for NAME: an event, each try waiting 100 ms for its answer.
dns_ready() {
  python3 - "$1" "$2" <<'PY'
import socket, sys, time
port, name = int(sys.argv[1]), sys.argv[2]
q = b"\x5e\xed\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\x00\x00\x01\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
end = time.monotonic() + 10
while time.monotonic() < end:
    s.sendto(q, ("127.0.0.1", port))
    try:
        if s.recv(512)[:2] == b"\x5e\xed": sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY
}

# start_unbound NAME PREFIX TTL: an unbound answering the lists PREFIX1.bench
# .. PREFIX5.bench from static zones whose records and negative answers have
# TTL seconds; records its port in $work/NAME.port.
start_unbound() {
  local name="$1" prefix="$2" ttl="$3"
  local dir="$work/$name" port
  mkdir -p "$dir"
  port="$(free_port)"
  {
    printf 'server:\n  interface: 127.0.0.1@%s\n  port: %s\n  do-ip6: no\n' "$port" "$port"
    printf '  do-daemonize: no\n  chroot: ""\n  username: ""\n  directory: "%s"\n' "$dir"
    printf '  pidfile: "%s/unbound.pid"\n  use-syslog: no\n  logfile: ""\n  verbosity: 0\n' "$dir"
    printf '  num-threads: 1\n  so-reuseport: no\n  module-config: "iterator"\n'
    printf '  access-control: 127.0.0.0/8 allow\n'
    for n in $(seq "$dns_lists"); do
      local zone="$prefix$n.bench"
      printf '  local-zone: "%s." static\n' "$zone"
      # SOA TTL and MINIMUM: the negative TTL (RFC 2308).
      printf '  local-data: "%s. %s IN SOA ns.%s. admin.%s. 1 3600 600 86400 %s"\n' \
        "$zone" "$ttl" "$zone" "$zone" "$ttl"
      for listing in "${listings[@]}"; do
        read -r list lname answer <<<"$listing"
        [[ "$list" == "$n" ]] && printf '  local-data: "%s.%s. %s IN A %s"\n' "$lname" "$zone" "$ttl" "$answer"
      done
    done
    printf 'remote-control:\n  control-enable: yes\n  control-interface: "%s/control.sock"\n' "$dir"
    printf '  control-use-cert: no\n'
  } >"$dir/unbound.conf"
  "$unbound_bin" -d -c "$dir/unbound.conf" 2>>"$work/$name.log" &
  pids+=("$!")
  dns_ready "$port" "2.0.0.127.${prefix}1.bench" || {
    say "error: $name (unbound) does not answer:"; cat "$work/$name.log" >&2; exit 1; }
  echo "$port" >"$work/$name.port"
  say "$name (unbound, TTL $ttl) answering on 127.0.0.1:$port (pid ${pids[-1]})"
}

# queries NAME: the queries the unbound NAME has received so far.
queries() {
  unbound-control -c "$work/$1/unbound.conf" stats_noreset | sed -n 's/^total.num.queries=//p'
}

# dns_policy PREFIX: a policy of 5 DNS-list tests in a score item that never
# decides (five lists give at most 5).
dns_policy() {
  local prefix="$1" n
  for n in $(seq "$dns_lists"); do echo "dnsbl l$n { zone \"$prefix$n.bench\" }"; done
  echo "score bench {"
  for n in $(seq "$dns_lists"); do echo "    add 1 if client_address in dnsbl l$n as \"l$n\""; done
  echo "    above 100 REJECT \"5.7.1 never\""
  echo "}"
  echo "default DUNNO"
}

# A datagram socket that never reads: policyd-dns-dead's server.
start_black_hole() {
  python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True); time.sleep(86400)' >"$work/hole.port" &
  pids+=("$!")
  for _ in $(seq 100); do [[ -s "$work/hole.port" ]] && return; sleep 0.1; done
  say "error: the black hole did not start"; exit 1
}

# state_policy BACKEND: one limit and one greylist kept in BACKEND.
state_policy() {
  echo "backend $1"
  echo "limit per-client { key client_address count recipients max 1000000000 per 1h }"
  echo "greylist grey { delay 5m }"
  echo "default DUNNO"
}

# start_redis: a redis-server on a free loopback port, no persistence; its
# port in $work/redis.port.
start_redis() {
  local port
  port="$(free_port)"
  "$redis_bin" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --protected-mode no --daemonize no --dir "$work" >>"$work/redis.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 100); do
    [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] && break
    sleep 0.1
  done
  [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]] || {
    say "error: redis-server does not answer:"; cat "$work/redis.log" >&2; exit 1; }
  echo "$port" >"$work/redis.port"
  say "redis-server answering on 127.0.0.1:$port (pid ${pids[-1]})"
}

# script_calls: the scripts Redis has run so far (EVALSHA and EVAL).
script_calls() {
  redis-cli -p "$(cat "$work/redis.port")" info commandstats |
    sed -n 's/^cmdstat_\(evalsha\|eval\):calls=\([0-9]*\),.*/\2/p' | awk '{n += $1} END {print n + 0}'
}

for server in $servers; do
  case "$server" in
    noop) start noop "$bin/noop-server" --listen 127.0.0.1:0 ;;
    policyd-warn) start policyd-warn "$bin/policyd" --listen 127.0.0.1:0 --action DUNNO --log-level warn ;;
    policyd-info) start policyd-info "$bin/policyd" --listen 127.0.0.1:0 --action DUNNO --log-level info ;;
    policyd-dns-cached | policyd-dns-uncached)
      [[ -x "$unbound_bin" ]] || { say "error: $server needs unbound ($unbound_bin): apt-get install unbound"; exit 1; }
      if [[ "$server" == policyd-dns-cached ]]; then prefix=c ttl=3600; else prefix=u ttl=0; fi
      start_unbound "unbound-$prefix" "$prefix" "$ttl"
      dns_policy "$prefix" >"$work/$server.conf"
      start "$server" "$bin/policyd" --listen 127.0.0.1:0 --log-level warn --config "$work/$server.conf" \
        --dns-server "127.0.0.1:$(cat "$work/unbound-$prefix.port")" --dns-deadline "$dns_deadline" ;;
    policyd-dns-dead)
      start_black_hole
      printf 'dnsbl l1 { zone "dead.bench" }\nrule r { if client_address in dnsbl l1 then REJECT }\ndefault DUNNO\n' \
        >"$work/$server.conf"
      start "$server" "$bin/policyd" --listen 127.0.0.1:0 --log-level error --config "$work/$server.conf" \
        --dns-server "127.0.0.1:$(cat "$work/hole.port")" --dns-deadline "$dns_deadline" \
        --dns-skip-after 1000000 ;;
    policyd-state-local)
      state_policy local >"$work/$server.conf"
      start "$server" "$bin/policyd" --listen 127.0.0.1:0 --log-level warn --config "$work/$server.conf" ;;
    policyd-state-redis)
      [[ -x "$redis_bin" ]] || { say "error: $server needs redis-server ($redis_bin): apt-get install redis-server"; exit 1; }
      start_redis
      state_policy redis >"$work/$server.conf"
      start "$server" "$bin/policyd" --listen 127.0.0.1:0 --log-level warn --config "$work/$server.conf" \
        --redis "redis://127.0.0.1:$(cat "$work/redis.port")/" --redis-pool 32 ;;
    *) say "error: unknown server '$server' (noop, policyd-warn, policyd-info, policyd-dns-cached, policyd-dns-uncached, policyd-dns-dead, policyd-state-local, policyd-state-redis)"; exit 64 ;;
  esac
done

# Warm policyd-dns-cached's cache (every name of the mix, on every list),
# then note how many queries its unbound has had: the measured runs must add
# none.
if [[ " $servers " == *" policyd-dns-cached "* ]]; then
  "$bin/loadgen" --target "$(cat "$work/policyd-dns-cached.addr")" --connections 4 --requests 400 \
    --warmup-requests 0 "${seed_args[@]}" >/dev/null
  cached_queries_before="$(queries unbound-c)"
  say "policyd-dns-cached warmed up: its unbound answered $cached_queries_before queries"
fi

for round in $(seq "$rounds"); do
  for server in $servers; do
    addr="$(cat "$work/$server.addr")"
    # Every request to policyd-dns-dead waits the deadline: one warm-up
    # request per connection, not loadgen's default 100.
    warmup_args=()
    [[ "$server" == policyd-dns-dead ]] && warmup_args=(--warmup-requests 1)
    [[ "$server" == policyd-state-redis ]] && calls_before="$(script_calls)"
    line="$("$bin/loadgen" --target "$addr" --connections "$connections" --duration "$duration" \
      "${seed_args[@]}" "${warmup_args[@]}")" || {
      say "error: loadgen against $server failed"; exit 1; }
    if [[ "$server" == policyd-state-redis ]]; then
      # Round trips: the scripts Redis ran during the run (warm-up included)
      # per request answered, warm-up included too.
      line="$line redis_calls=$(( $(script_calls) - calls_before ))"
    fi
    echo "round $round $server $line" | tee -a "$work/results" >&2
    # Keep the decision log of policyd-info from filling the disk (opened in append mode).
    : >"$work/$server.log"
  done
done

if [[ " $servers " == *" policyd-dns-cached "* ]]; then
  cached_queries_after="$(queries unbound-c)"
  if [[ "$cached_queries_after" != "$cached_queries_before" ]]; then
    say "error: policyd-dns-cached sent $((cached_queries_after - cached_queries_before)) DNS queries while measured: its answers were not all cached"
    exit 1
  fi
  echo "load.sh: policyd-dns-cached: every answer from the cache (its unbound got no query while measured)"
fi
[[ " $servers " == *" policyd-dns-"* ]] && echo "load.sh: DNS variants' --dns-deadline: $dns_deadline"
echo "load.sh: median of $rounds rounds, $connections connections, ${duration}s each"
python3 - "$work/results" "$servers" "$dns_deadline" <<'PY'
import statistics, sys

path, servers, deadline = sys.argv[1], sys.argv[2].split(), sys.argv[3]
runs = {}
for line in open(path):
    fields = line.split()
    server = fields[2]
    kv = dict(f.split("=", 1) for f in fields[3:] if "=" in f)
    runs.setdefault(server, []).append(kv)

def med(server, key):
    return statistics.median(float(r[key]) for r in runs[server])

def deadline_us(text):
    if text.endswith("ms"):
        return float(text[:-2]) * 1000
    return float(text.rstrip("s")) * 1e6

print(f'{"server":<20} {"req/s":>10} {"p50 us":>9} {"p99 us":>9} {"p99.9 us":>9} {"errors":>7}')
for s in servers:
    errors = sum(int(r["errors"]) for r in runs[s])
    print(f'{s:<20} {med(s, "rps"):>10.0f} {med(s, "p50_us"):>9.1f} {med(s, "p99_us"):>9.1f} '
          f'{med(s, "p999_us"):>9.1f} {errors:>7}')
# The targets: policyd-warn and policyd-dns-cached at >= 80 % of the no-op
# server's req/s; the uncached DNS variants' p99 within the deadline.
if "noop" in runs:
    base = med("noop", "rps")
    for s in servers:
        if s != "noop":
            target = " (target >= 0.80)" if s in ("policyd-warn", "policyd-dns-cached") else ""
            print(f"ratio {s}/noop req/s: {med(s, 'rps') / base:.2f}{target}")
# What the DNS tests cost on their own: the same daemon without them.
if "policyd-warn" in runs and "policyd-dns-cached" in runs:
    print(f"ratio policyd-dns-cached/policyd-warn req/s: "
          f"{med('policyd-dns-cached', 'rps') / med('policyd-warn', 'rps'):.2f}")
if "policyd-state-local" in runs and "policyd-state-redis" in runs:
    print(f"ratio policyd-state-redis/policyd-state-local req/s: "
          f"{med('policyd-state-redis', 'rps') / med('policyd-state-local', 'rps'):.2f}")
if "policyd-state-redis" in runs:
    # loadgen's warm-up: 100 requests per connection, not in `requests`.
    per = [float(r["redis_calls"]) / (float(r["requests"]) + 100 * float(r["connections"]))
           for r in runs["policyd-state-redis"]]
    print(f"policyd-state-redis: Redis script calls per request (2 stateful items): "
          f"{statistics.median(per):.3f}")
for s in servers:
    if s in ("policyd-dns-uncached", "policyd-dns-dead"):
        p99, limit = med(s, "p99_us"), deadline_us(deadline)
        print(f"{s} p99 {p99:.0f} us / deadline {limit:.0f} us = {p99 / limit:.3f}")
PY
