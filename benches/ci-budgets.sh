#!/usr/bin/env bash
# Instruction-count guard for the hot path (deterministic, unlike wall-clock time).
#
# Runs the gungraun bench `benches/benches/instructions.rs` under valgrind
# (callgrind) and compares each benchmark's instruction count (Ir) with its
# budget in `benches/budgets.toml`. Exits non-zero, naming the bench, its count
# and its budget, when any count exceeds its budget, when a bench has no budget,
# or when a budgeted bench did not run.
#
# Usage: benches/ci-budgets.sh            check against the budgets
#        benches/ci-budgets.sh --suggest  print measured counts and budgets with
#                                         10 % headroom (to paste into budgets.toml)
#
# Needs: valgrind (installed with apt-get when missing and running as root),
# python3 >= 3.11 (tomllib), and gungraun-runner at exactly the version of the
# `gungraun` dev-dependency (installed with `cargo install --locked` when missing;
# that one-time build takes about 2 minutes, the check itself about 1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
budgets="benches/budgets.toml"
mode="check"
case "${1:-}" in
  "") ;;
  --suggest) mode="suggest" ;;
  -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
  *) echo "ci-budgets: error: unknown argument '$1' (try --help)" >&2; exit 64 ;;
esac

say() { echo "ci-budgets: $*" >&2; }

# The runner must match the library version exactly.
version="$(sed -n 's/^gungraun = "=\([0-9.]*\)".*/\1/p' benches/Cargo.toml)"
if [[ -z "$version" ]]; then
  say "error: cannot read the pinned gungraun version (gungraun = \"=X.Y.Z\") from benches/Cargo.toml"
  exit 1
fi

if ! command -v valgrind >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "valgrind missing: installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
  fi
  command -v valgrind >/dev/null 2>&1 || { say "error: valgrind not found (apt-get install valgrind)"; exit 1; }
fi

export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [[ "$(gungraun-runner --version 2>/dev/null || true)" != "gungraun-runner $version" ]]; then
  say "installing gungraun-runner $version (one-time build)"
  cargo install gungraun-runner --version "$version" --locked --quiet
fi

command -v python3 >/dev/null 2>&1 || { say "error: python3 not found"; exit 1; }

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
say "running the gungraun bench (valgrind)"
# JSON lines on stdout, one per benchmark; cargo's own output goes to stderr.
if ! cargo bench --quiet -p policyd-benches --bench instructions -- --output-format=json >"$out"; then
  say "error: the gungraun bench failed to build or run"
  exit 1
fi

python3 - "$out" "$budgets" "$mode" <<'PY'
import json, math, sys, tomllib

results_path, budgets_path, mode = sys.argv[1:4]
counts = {}
with open(results_path) as f:
    for line in f:
        line = line.strip()
        if not line.startswith("{"):
            continue
        summary = json.loads(line)
        # "group::function::id", e.g. hot_path::parse::full_rcpt
        name = f'{summary["group"]}::{summary["function_name"]}::{summary["id"]}'
        profile = next(p for p in summary["profiles"] if p["tool"] == "Callgrind")
        counts[name] = int(profile["data"]["total"]["metrics"]["Ir"]["values"]["new"])

if not counts:
    sys.exit("ci-budgets: error: the gungraun bench reported no benchmark")

if mode == "suggest":
    print("[budgets]")
    for name, ir in sorted(counts.items()):
        budget = int(math.ceil(ir * 1.10 / 10.0) * 10)
        print(f'"{name}" = {budget}  # measured {ir}')
    sys.exit(0)

with open(budgets_path, "rb") as f:
    budgets = tomllib.load(f).get("budgets", {})

failures = []
for name, ir in sorted(counts.items()):
    budget = budgets.get(name)
    if budget is None:
        failures.append(f"{name}: {ir} instructions, no budget in {budgets_path}")
        status = "NO BUDGET"
    elif ir > budget:
        failures.append(f"{name}: {ir} instructions exceed the budget of {budget} "
                        f"(+{(ir - budget) * 100.0 / budget:.1f} %)")
        status = "OVER BUDGET"
    else:
        status = "ok"
    shown = "-" if budget is None else str(budget)
    print(f"ci-budgets: {name:<40} {ir:>8} instructions  budget {shown:>8}  {status}", flush=True)
for name in sorted(set(budgets) - set(counts)):
    failures.append(f"{name}: has a budget but did not run")

if failures:
    for line in failures:
        print(f"ci-budgets: FAIL {line}", file=sys.stderr)
    sys.exit(1)
print(f"ci-budgets: all {len(counts)} benchmarks within their instruction budgets")
PY
