#!/usr/bin/env bash
# Authenticated against plain throughput of both reference servers, as a new
# user would measure it: release builds, one worker, `wrk -t1 -c32`, the
# server and wrk pinned to different cores, `GET /hello` with credentials
# against `GET /health` of the same server process, alternating (ROUNDS
# rounds of SECONDS_EACH seconds each), medians. Installs wrk when missing.
#
#   scripts/bench-http.sh                          # about 25 minutes
#   ROUNDS=3 SECONDS_EACH=5 scripts/bench-http.sh axum "hard basic"
#
# Cases: hard, sliding, basic (Basic auth), mix (50% invalid tokens: a Lua
# script alternating with a token nobody issued; the script itself costs
# wrk time), and uncached (a second server process with the cache off).
# BENCH_DB=postgres://… measures the PostgreSQL backend instead of a redb
# file (an empty database: tokens are created in it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
SECONDS_EACH=${SECONDS_EACH:-10}
servers=${1:-"axum actix"}
cases=${2:-"hard sliding basic mix uncached"}

command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null || { echo "wrk is missing and could not be installed"; exit 1; }; }
cargo build --release -q -p pat-cli -p pat-core -p pat-tower -p pat-actix --examples --bins
bin=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=${BENCH_DB:-$work/bench.redb}
hard=$($bin/pat-cli --db "$db" token -u alice -e 1d -q)
sliding=$($bin/pat-cli --db "$db" token -u alice -a 1d -q)
basic=$(printf 'alice:%s' "$hard" | base64 -w0)
forged=$("$bin/examples/forge")
cat > "$work/mix.lua" <<LUA
local headers = { "Bearer $hard", "Bearer $forged" }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/hello", { ["Authorization"] = headers[(i % 2) + 1] })
end
LUA

cores=$(nproc)
pin_server=(); pin_wrk=()
if [ "$cores" -ge 2 ] && command -v taskset >/dev/null; then
  pin_server=(taskset -c 0); pin_wrk=(taskset -c 1)
fi
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
rps() { "${pin_wrk[@]}" wrk -t1 -c32 -d"${SECONDS_EACH}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
start_server() { # kind, extra flags...
  local kind=$1; shift
  "${pin_server[@]}" "$bin/examples/${kind}_server" --db "$db" --addr 127.0.0.1:0 --workers 1 \
    --dav-root "$work" "$@" > "$work/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$work/out")
}
one() { # case
  case $1 in
    hard|uncached) rps -H "Authorization: Bearer $hard" "$url/hello" ;;
    sliding) rps -H "Authorization: Bearer $sliding" "$url/hello" ;;
    basic) rps -H "Authorization: Basic $basic" "$url/hello" ;;
    mix) rps -s "$work/mix.lua" "$url/hello" ;;
  esac
}
report() { # server, case, plain values, auth values
  local p a
  p=$(tr ' ' '\n' <<< "$3" | median); a=$(tr ' ' '\n' <<< "$4" | median)
  printf '%-6s %-9s plain %10.0f req/s  authenticated %10.0f req/s  ratio %.3f\n' \
    "$1" "$2" "$p" "$a" "$(echo "$a / $p" | bc -l)"
}

for server in $servers; do
  cached=(); for c in $cases; do [ "$c" != uncached ] && cached+=("$c"); done
  for mode in cached uncached; do
    if [ "$mode" = cached ]; then run=("${cached[@]}"); extra=(); else
      [[ " $cases " == *" uncached "* ]] || continue; run=(uncached); extra=(--cache-capacity 0); fi
    [ "${#run[@]}" -eq 0 ] && continue
    start_server "$server" "${extra[@]}"
    declare -A plain=() auth=()
    for _ in $(seq "$ROUNDS"); do
      for c in "${run[@]}"; do
        plain[$c]="${plain[$c]:-} $(rps "$url/health")"
        auth[$c]="${auth[$c]:-} $(one "$c")"
      done
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    for c in "${run[@]}"; do report "$server" "$c" "${plain[$c]}" "${auth[$c]}"; done
    unset plain auth
  done
done
