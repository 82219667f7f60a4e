#!/usr/bin/env bash
# Durable writes as an operator sees them: wall time of `pat-cli token`
# (create) and `pat-cli token revoke`, directly on the file and through a
# running server's admin socket; the median of RUNS runs (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
cargo build --release -q -p pat-cli -p pat-tower --examples --bins
bin=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=$work/c.redb

median_ms() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2) / 1e6}'; }
timed() { local s e; s=$(date +%s%N); "$@" > "$work/last"; e=$(date +%s%N); echo $((e - s)); }

measure() {
  local how=$1 creates=() revokes=() id
  for _ in $(seq "$RUNS"); do
    creates+=("$(timed "$bin/pat-cli" --db "$db" token -u alice -e 1h --json)")
    id=$(sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' "$work/last")
    revokes+=("$(timed "$bin/pat-cli" --db "$db" token revoke "$id")")
  done
  printf '%-22s create %6s ms   revoke %6s ms   (median of %s)\n' "$how" \
    "$(printf '%s\n' "${creates[@]}" | median_ms)" "$(printf '%s\n' "${revokes[@]}" | median_ms)" "$RUNS"
}

"$bin/pat-cli" --db "$db" token -u seed -e 1h -q > /dev/null
measure "direct (file)"
"$bin/examples/axum_server" --db "$db" --addr 127.0.0.1:0 --dav-root "$work" > "$work/out" 2>/dev/null &
for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
measure "via the admin socket"
