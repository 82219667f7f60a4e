#!/usr/bin/env bash
# Peak memory (VmHWM) of a reference server whose store holds N tokens
# (default 1,000,000), after every token was used once, with the default
# cache capacity and with a capacity of N; and of `pat-cli token list --all`
# on that store. Installs wrk when it is missing.
#
#   scripts/bench-memory.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cargo build --release -q -p pat-cli -p pat-core -p pat-tower --examples --bins
bin=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db=$work/m.redb
echo "creating $N tokens..."
"$bin/examples/bulk" "$db" "$N" "$work/tokens"
cat > "$work/each.lua" <<LUA
local tokens = {}
for line in io.lines("$work/tokens") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/hello", { ["Authorization"] = "Bearer " .. tokens[(i - 1) % #tokens + 1] })
end
LUA
for capacity in default "$N"; do
  extra=()
  [ "$capacity" != default ] && extra=(--cache-capacity "$capacity")
  "$bin/examples/axum_server" --db "$db" --addr 127.0.0.1:0 --workers 1 --dav-root "$work" "${extra[@]}" > "$work/out" 2>/dev/null &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$work/out" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^listening on //p' "$work/out")
  base=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  # Long enough for every token to be presented at least once.
  secs=$(( N / 20000 + 5 ))
  wrk -t1 -c32 -d"${secs}s" -s "$work/each.lua" "$url" | awk '/Requests\/sec|requests in/'
  peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  echo "server, cache capacity $capacity: $N tokens used once: peak RSS $((peak / 1024)) MiB (at start $((base / 1024)) MiB)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
/usr/bin/time -f "%M" -o "$work/time" "$bin/pat-cli" --db "$db" token list --all > /dev/null
echo "pat-cli token list --all ($N tokens): peak RSS $(( $(cat "$work/time") / 1024 )) MiB"
/usr/bin/time -f "%M" -o "$work/time" "$bin/pat-cli" --db "$db" token list --all --json > /dev/null
echo "pat-cli token list --all --json ($N tokens): peak RSS $(( $(cat "$work/time") / 1024 )) MiB"
