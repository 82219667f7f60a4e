#!/usr/bin/env bash
# Issue 28: pat against the static-compare peer over HTTP, in paired
# rounds on pinned cores: the `peers_http_layer` (pat-tower) and `peers_http_middleware` (pat-actix) examples serves
# the same handler behind pat and behind the peer (one worker, core 0);
# wrk (core 1) loads pat and the peer in turn, ROUNDS times (who goes
# first alternates), and each pair's ratio
# (pat's requests per second over the peer's) is taken on its own, so the
# machine's drift between pairs cancels. Prints each framework's median
# ratio with its lowest and highest.
# Usage: scripts/peers-http.sh [ROUNDS [SECONDS]]   (default 10 rounds of 3 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
secs=${2:-3}
for tool in wrk taskset; do
  command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install $tool)"; exit 1; }
done
cargo build --release -q -p pat-tower --example peers_http_layer
cargo build --release -q -p pat-actix --example peers_http_middleware
rate() { # URL TOKEN -> requests per second
  taskset -c 1 wrk -t1 -c32 -d"${secs}s" -H "Authorization: Bearer $2" "$1" \
    | awk '/Requests\/sec/ { print $2 }'
}
for driver in peers_http_layer peers_http_middleware; do
  out=$(mktemp)
  taskset -c 0 "target/release/examples/$driver" >"$out" &
  server=$!
  for _ in $(seq 50); do grep -q '^peer listening' "$out" && break; sleep 0.1; done
  token=$(awk '/^token / { print $2 }' "$out")
  pat="http://$(awk '/^pat listening on / { print $4 }' "$out")/hello"
  peer="http://$(awk '/^peer listening on / { print $4 }' "$out")/hello"
  rate "$pat" "$token" >/dev/null; rate "$peer" "$token" >/dev/null # warm up
  ratios=()
  for i in $(seq "$rounds"); do
    # Who goes first alternates, so a drift within a pair cancels too.
    if [ $((i % 2)) -eq 1 ]; then
      a=$(rate "$pat" "$token"); b=$(rate "$peer" "$token")
    else
      b=$(rate "$peer" "$token"); a=$(rate "$pat" "$token")
    fi
    ratios+=("$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", a / b }')")
    echo "$driver: pat $a req/s, peer $b req/s"
  done
  kill "$server"; wait "$server" 2>/dev/null || true
  printf '%s\n' "${ratios[@]}" | sort -n | awk -v c="$driver" '
    { r[NR] = $1 } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2;
      printf "%s: pat / peer median %.3f (lowest %.3f, highest %.3f, %d pairs)\n", c, m, r[1], r[NR], NR }'
  rm -f "$out"
done
