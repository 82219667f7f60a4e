#!/usr/bin/env bash
# Authenticated against plain throughput of both reference servers, as a new
# user would measure it: release builds, one worker, `wrk -t1 -c32`,
# `GET /hello` with credentials against `GET /health`, alternating (ROUNDS
# rounds of SECONDS each side), medians. Installs wrk when it is missing.
#
#   scripts/bench-http.sh                 # everything (about 20 minutes)
#   ROUNDS=3 SECONDS_EACH=5 scripts/bench-http.sh axum hard
#
# Cases: hard, sliding, basic (Basic auth), mix (50% invalid tokens), and
# uncached (the store's cache off). Prints one line per server and case.
# BENCH_DB=postgres://… measures the PostgreSQL backend instead of a redb
# file (an empty database: tokens are created in it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECONDS_EACH=${SECONDS_EACH:-10}
servers=${1:-"axum actix"}
cases=${2:-"hard sliding basic mix uncached"}

command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null || { echo "wrk is missing and could not be installed"; exit 1; }; }
cargo build --release -q -p pat-cli -p pat-tower -p pat-actix --examples --bins
bin=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=${BENCH_DB:-$work/bench.redb}
hard=$($bin/pat-cli --db "$db" token -u alice -e 1d -q)
sliding=$($bin/pat-cli --db "$db" token -u alice -a 1d -q)
basic=$(printf 'alice:%s' "$hard" | base64 -w0)
# 50% invalid: well-formed tokens nobody issued, alternating with the valid one.
forged=$(cargo run -q -p pat-core --example forge 2>/dev/null || true)
cat > "$work/mix.lua" <<LUA
local headers = { "Bearer $hard", "Bearer ${forged:-pat_00000000000000000000000000000000000000}" }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/hello", { ["Authorization"] = headers[(i % 2) + 1] })
end
LUA

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rps() { wrk -t1 -c32 -d"${SECONDS_EACH}s" "$@" | awk '/Requests\/sec/ {print $2}'; }

for server in $servers; do
  for case in $cases; do
    extra=()
    [ "$case" = uncached ] && extra=(--cache-capacity 0)
    "$bin/examples/${server}_server" --db "$db" --addr 127.0.0.1:0 --workers 1 --dav-root "$work" "${extra[@]}" > "$work/out" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
    url=$(sed -n 's/^listening on //p' "$work/out")
    plain=(); auth=()
    for _ in $(seq "$ROUNDS"); do
      plain+=("$(rps "$url/health")")
      case $case in
        hard|uncached) auth+=("$(rps -H "Authorization: Bearer $hard" "$url/hello")") ;;
        sliding) auth+=("$(rps -H "Authorization: Bearer $sliding" "$url/hello")") ;;
        basic) auth+=("$(rps -H "Authorization: Basic $basic" "$url/hello")") ;;
        mix) auth+=("$(rps -s "$work/mix.lua" "$url/hello")") ;;
      esac
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    p=$(printf '%s\n' "${plain[@]}" | median)
    a=$(printf '%s\n' "${auth[@]}" | median)
    printf '%-6s %-9s plain %10.0f req/s  authenticated %10.0f req/s  ratio %.3f\n' \
      "$server" "$case" "$p" "$a" "$(echo "$a / $p" | bc -l)"
  done
done
