#!/usr/bin/env bash
# bench/workers.sh - how evenly do workers share connections: one shared
# listening socket (our default) or SO_REUSEPORT (--reuseport)?
#
# Usage:  bench/workers.sh      (WORKERS=2, DURATION=10 s, CONNS=50 per run)
#
# For each mode it runs wrk twice against `iodine -w $WORKERS`:
#   keep-alive:  CONNS long-lived connections (the split is decided at accept)
#   new conns:   "Connection: close" on every request (the kernel picks a
#                worker for each request)
# and reports req/s and each worker's share. wrk runs on all cores with the
# server here (2 cores: the split, not the rate, is the point).
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
WORKERS=${WORKERS:-2}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
OUT=${OUT:-$HERE/results/workers-latest.md}
PORT=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}

run_mode() { # mode flags...
    local mode=$1; shift
    local log; log=$(mktemp)
    "$IODINE" "$HERE/apps/pid_wsgi.py" -p "$PORT" -b 127.0.0.1 -w "$WORKERS" -q "$@" 2>"$log" &
    local pid=$!
    for _ in $(seq 100); do curl -s "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
    for close in 0 1; do
        local label=keep-alive; ((close)) && label="new conns"
        local out
        out=$(CLOSE=$close wrk -t 1 -c "$CONNS" -d "${DURATION}s" -s "$HERE/pids.lua" "http://127.0.0.1:$PORT/")
        local rps shares
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        shares=$(awk '/^PID/ {printf "%s%.1f%%", sep, $4; sep=" / "}' <<<"$out")
        echo "| $mode | $label | $rps | $shares |" >> "$OUT.tmp"
    done
    kill -TERM "$pid"; wait "$pid" || true
    rm -f "$log"
}

{
    echo "# Workers: shared socket vs SO_REUSEPORT"
    echo
    echo "$(date -u +%F) on $(nproc) cores ($(uname -r)), $WORKERS workers, wrk -c $CONNS -d ${DURATION}s;"
    echo "command: \`bench/workers.sh\`. Share = each worker's part of the responses."
    echo
    echo "| socket | connections | req/s | share per worker |"
    echo "|---|---|---:|---|"
} > "$OUT.tmp"
run_mode shared
run_mode reuseport --reuseport
mv "$OUT.tmp" "$OUT"
cat "$OUT"
