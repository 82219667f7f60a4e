#!/usr/bin/env bash
# Issue 28: what pat adds to a request beside what its peers add, in
# instructions counted by callgrind (repeatable on a noisy machine): each
# guard over the same trivial handler and request, minus the bare handler
# (`bare`). Tower: tower-http's static bearer compare (`static`), a
# hand-written SHA-256 lookup in a papaya map (`digest`), the same with
# each token's deadline checked (`digest_expiry`), pat (`hard`,
# `sliding`, `basic`). actix-web: actix-web-httpauth's bearer with a static
# compare (`static`), pat. See pat-tower/examples/common/peers.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)"; exit 1; }
cargo build --release -q -p pat-tower --example hot_path_layer
cargo build --release -q -p pat-actix --example hot_path_middleware
n=20000
per_op() {
  local base full
  base=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 0 2>&1 | awk '/Collected :/ { print $NF }')
  full=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" "$n" 2>&1 | awk '/Collected :/ { print $NF }')
  echo $(( (full - base) / n ))
}
printf '%-22s %-8s %12s %12s\n' driver guard instr/op added
for spec in "hot_path_layer:bare static digest digest_expiry hard sliding basic" \
            "hot_path_middleware:bare static hard sliding basic"; do
  driver=${spec%%:*}
  bare=0
  for kind in ${spec#*:}; do
    ops=$(per_op "target/release/examples/$driver" "$kind")
    [ "$kind" = bare ] && bare=$ops
    printf '%-22s %-8s %12d %12d\n' "$driver" "$kind" "$ops" $(( ops - bare ))
  done
done
