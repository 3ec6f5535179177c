#!/usr/bin/env bash
# Builds the fuzz corpora, fuzz/corpus/<target>/, from the seeds committed in
# fuzz/seeds/ and the golden request vectors of policy-core
# (policy-core/tests/vectors/*/*.req, valid and malformed alike: a malformed
# request is a good starting point for the framer and the parser; and the
# inputs of policy-core/tests/vectors/actions/*.txt, one action a file); for
# the policy compiler, the golden scenario policies
# (policy-core/tests/scenarios/*/policy.conf) and the ```policy examples of
# docs/policy-language.md, one policy a file.
# The corpora are generated, not committed (.gitignore); running this again
# adds the seeds back without removing what the fuzzer found.
set -euo pipefail
shopt -s nullglob

fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$fuzz_dir")
corpus="$fuzz_dir/corpus"

request_targets=(framer parser stream_chunks)
for target in "${request_targets[@]}"; do
    mkdir -p "$corpus/$target"
    cp "$fuzz_dir"/seeds/requests/* "$corpus/$target/"
    for vector in "$root"/policy-core/tests/vectors/*/*.req; do
        kind=$(basename "$(dirname "$vector")")
        cp "$vector" "$corpus/$target/vector-$kind-$(basename "$vector")"
    done
done
# stream_chunks reads its first five bytes as settings (limits, then four chunk
# sizes): give it each request once more behind such a header (default limits,
# chunks of 1, 7, 16 and 63 bytes), so that the request is fed unshifted.
for seed in "$corpus"/stream_chunks/*; do
    case $(basename "$seed") in chunked-*) continue ;; esac
    { printf '\x00\x00\x06\x0f\x3e'; cat "$seed"; } >"$corpus/stream_chunks/chunked-$(basename "$seed")"
done
mkdir -p "$corpus/action"
cp "$fuzz_dir"/seeds/actions/* "$corpus/action/"
# Action vector files: `<input> TAB <expected>` lines, `#` comments.
for list in "$root"/policy-core/tests/vectors/actions/*.txt; do
    n=0
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -z $line || $line == \#* ]] && continue
        n=$((n + 1))
        printf '%s' "${line%%$'\t'*}" >"$corpus/action/vector-$(basename "$list" .txt)-$n"
    done <"$list"
done

mkdir -p "$corpus/compile"
for policy in "$root"/policy-core/tests/scenarios/*/policy.conf; do
    cp "$policy" "$corpus/compile/scenario-$(basename "$(dirname "$policy")")"
done
# Each ```policy fenced block of the language reference and the
# rate-limiting chapter, one file each.
for doc in "$root"/docs/*.md; do
    awk -v dir="$corpus/compile" -v name="$(basename "$doc" .md)" '
        /^```policy[[:space:]]*$/ { n++; out = sprintf("%s/docs-%s-%02d", dir, name, n); inside = 1; next }
        /^```/ && inside { inside = 0; close(out); next }
        inside { print > out }
    ' "$doc"
done

# State files (policyd --state-file) written by the daemon.
mkdir -p "$corpus/state"
cp "$fuzz_dir"/seeds/state/* "$corpus/state/"

# SPF records (policy-core's RFC 7208 evaluator).
mkdir -p "$corpus/spf"
cp "$fuzz_dir"/seeds/spf/* "$corpus/spf/"

for target in "${request_targets[@]}" action compile state spf; do
    echo "seed corpus $target: $(find "$corpus/$target" -type f | wc -l) files"
done
