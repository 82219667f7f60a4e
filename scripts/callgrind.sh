#!/usr/bin/env bash
# Instructions per cached lookup, counted by callgrind (repeatable on a noisy
# machine, unlike time): each driver runs with N=0 and N=20000 and the
# difference is divided by N. Drivers: pat-core's `hot_path`
# (`Store::authenticate`) and pat-tower's `hot_path_layer` (a request through
# `PatLayer`) and pat-actix's `hot_path_middleware` (a request through
# `PatMiddleware`). Usage: scripts/callgrind.sh [KIND...] (default: hard sliding basic).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
cargo build --release -q -p pat-core --example hot_path
cargo build --release -q -p pat-tower --example hot_path_layer
cargo build --release -q -p pat-actix --example hot_path_middleware
kinds=("$@")
[ ${#kinds[@]} -gt 0 ] || kinds=(hard sliding basic)
n=20000
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 \
    | awk '/Collected :/ { print $NF }'
}
printf '%-20s %-8s %s\n' driver kind instructions/op
for driver in hot_path hot_path_layer hot_path_middleware; do
  for kind in "${kinds[@]}"; do
    base=$(count "target/release/examples/$driver" "$kind" 0)
    full=$(count "target/release/examples/$driver" "$kind" "$n")
    printf '%-20s %-8s %d\n' "$driver" "$kind" $(( (full - base) / n ))
  done
done
