#!/usr/bin/env bash
# bench/ws_deflate.sh - permessage-deflate in one run: WebSocket echo and a 10,000-subscriber
# pub/sub fan-out, each with compression on and off, iodine against uvicorn + websockets (its
# default compression: websockets agrees to permessage-deflate whenever a client offers it).
#
# Usage:  bench/ws_deflate.sh                        (defaults below, about 1.5 min)
#         DURATION=3 SUBS=2000 bench/ws_deflate.sh   (quick iteration)
#
# Messages are SIZE bytes of JSON-like text (ws_load -j: a list of small objects, what an
# application sends; random letters would not compress like real traffic). "on" means ws_load
# offers "permessage-deflate; client_max_window_bits" (what browsers offer), compresses every
# message it sends and inflates and checks every compressed one it gets; "off" means it offers
# nothing. wire B/msg = bytes the load generator read from its sockets over the whole run per
# message received (frame headers and the few handshake bytes included).
#
# Every server runs ONE worker process pinned to CPU $SERVER_CPU; ws_load runs single-threaded
# on CPU $LOAD_CPU. The machine this ran on is shared: see the load average printed with the
# results, and treat single runs as indicative.
#
# Environment (defaults in brackets):
#   DURATION [5]  measured seconds per case      WARMUP [1]   unrecorded seconds first
#   CONNS [50]    echo connections               SIZE [1024]  message bytes
#   SUBS [10000]  fan-out subscribers            WINDOW [16]  fan-out messages in flight
#   SERVER_CPU [1]  LOAD_CPU [0]  IODINE [.venv/bin/iodine]  PEERS_VENV [bench/.venv-peers]
#   OUT [bench/results/ws-deflate-latest.md]
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-50}
SIZE=${SIZE:-1024}
SUBS=${SUBS:-10000}
WINDOW=${WINDOW:-16}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
OUT=${OUT:-$HERE/results/ws-deflate-latest.md}
WS_LOAD=$ROOT/build/ws_load
LOGDIR=$HERE/results/logs/ws-deflate
for v in DURATION WARMUP CONNS SIZE SUBS WINDOW SERVER_CPU LOAD_CPU; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "ws_deflate.sh: $v must be a whole number" >&2; exit 2; }
done
# every load loop is bounded in count and time
(( DURATION >= 1 && DURATION <= 120 && CONNS >= 1 && CONNS <= 5000 )) || { echo "ws_deflate.sh: DURATION 1..120, CONNS 1..5000" >&2; exit 2; }
(( SUBS >= 1 && SUBS <= 20000 && SIZE >= 32 && SIZE <= 1048576 )) || { echo "ws_deflate.sh: SUBS 1..20000, SIZE 32..1 MiB" >&2; exit 2; }
mkdir -p "$LOGDIR" "$(dirname "$OUT")" "$ROOT/build"
log() { printf '[ws_deflate %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ ! -x $WS_LOAD || $HERE/ws_load.c -nt $WS_LOAD ]]; then
    log "building $WS_LOAD"
    cc -O2 -std=c11 -Wall -Wextra -o "$WS_LOAD" "$HERE/ws_load.c" -lz
fi
[[ -x $IODINE ]] || { echo "ws_deflate.sh: $IODINE missing (make install)" >&2; exit 1; }
PEERS=1
if ! "$PEERS_VENV/bin/python" -c 'import uvicorn, uvloop, httptools, websockets' 2>/dev/null; then
    log "no uvicorn + websockets in $PEERS_VENV (python3 -m venv $PEERS_VENV && $PEERS_VENV/bin/pip install 'uvicorn[standard]' uvloop httptools websockets): peer skipped"
    PEERS=0
fi

SID=""
stop_server() {
    [[ -n $SID ]] || return 0
    kill -TERM -- "-$SID" 2>/dev/null || true
    for _ in $(seq 50); do pgrep -s "$SID" >/dev/null 2>&1 || break; sleep 0.1; done
    kill -KILL -- "-$SID" 2>/dev/null || true
    SID=""
}
trap stop_server EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

start_server() {   # start_server NAME CMD...: own session, pinned; waits for a verified echo
    local name=$1; shift
    local pidfile=$LOGDIR/.$name.pid
    rm -f "$pidfile"
    (cd "$ROOT" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
        taskset -c "$SERVER_CPU" "$@" >"$LOGDIR/$name.log" 2>&1 </dev/null) &
    for _ in $(seq 100); do [[ -s $pidfile ]] && break; sleep 0.05; done
    SID=$(cat "$pidfile")
    for _ in $(seq 600); do
        "$WS_LOAD" -q -m probe -C 1 "ws://127.0.0.1:$PORT/" && return 0
        sleep 0.05
    done
    log "$name did not answer an echo in 30 s"; tail -n 20 "$LOGDIR/$name.log" >&2; return 1
}

RESULTS=()
measure() {   # measure LABEL KIND ws_load-args...: one run, JSON kept, a line for the table
    local label=$1 kind=$2; shift 2
    local raw=$LOGDIR/$(echo "$label" | tr ' +/' '___').json pids
    pids=$(pgrep -s "$SID" | paste -sd, -)
    timeout -k 5 $((DURATION + WARMUP + 120)) taskset -c "$LOAD_CPU" "$WS_LOAD" --json \
        --server-pid "$pids" -d "$DURATION" -w "$WARMUP" "$@" >"$raw" 2>"$raw.err" || true
    if ! grep -q '"rate"' "$raw"; then log "$label: ws_load failed"; cat "$raw.err" >&2; RESULTS+=("$label|$kind|failed"); return; fi
    RESULTS+=("$label|$kind|$raw")
    log "$label: $(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print("%.0f/s, server %.2f us/msg (%.0f%% of its core), wire %.0f B/msg, errors %d" % (d["rate"], d["server_cpu_us_per_msg"], d["server_cpu_pct"], d["wire_in_per_msg"], d["errors"]["total"]))' "$raw")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# echo: iodine
PORT=$(free_port)
start_server iodine-echo "$IODINE" examples/echo.py -p "$PORT" -b 127.0.0.1 -t 1
measure "iodine echo, deflate off" echo -c "$CONNS" -s "$SIZE" -j "ws://127.0.0.1:$PORT/"
measure "iodine echo, deflate on" echo -c "$CONNS" -s "$SIZE" -j -z "ws://127.0.0.1:$PORT/"
stop_server

# echo: uvicorn + websockets (default compression)
if ((PEERS)); then
    PORT=$(free_port)
    start_server uvicorn-echo "$PEERS_VENV/bin/uvicorn" echo_asgi:app --app-dir "$HERE/apps" --host 127.0.0.1 \
        --port "$PORT" --workers 1 --loop uvloop --http httptools --ws websockets --no-access-log --log-level warning
    measure "uvicorn + websockets echo, deflate off" echo -c "$CONNS" -s "$SIZE" -j "ws://127.0.0.1:$PORT/"
    measure "uvicorn + websockets echo, deflate on" echo -c "$CONNS" -s "$SIZE" -j -z "ws://127.0.0.1:$PORT/"
    stop_server
fi

# fan-out: iodine, SUBS subscribers, one publisher
PORT=$(free_port)
start_server iodine-fanout "$IODINE" bench/apps/pubsub_wsgi.py -p "$PORT" -b 127.0.0.1 -t 1
measure "iodine fan-out to $SUBS, deflate off" fanout -m fanout -c "$SUBS" -s "$SIZE" -j --window "$WINDOW" -C 120 "ws://127.0.0.1:$PORT/sub"
measure "iodine fan-out to $SUBS, deflate on" fanout -m fanout -c "$SUBS" -s "$SIZE" -j -z --window "$WINDOW" -C 120 "ws://127.0.0.1:$PORT/sub"
stop_server
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

TABLE=$(python3 - "${RESULTS[@]}" <<'PY'
import json, sys
rows = [r.split("|", 2) for r in sys.argv[1:]]
print("| case | messages/s (echo) or deliveries/s (fan-out) | server CPU µs/msg | server core busy % | ws_load core busy % | wire B/msg received | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for label, kind, raw in rows:
    if raw == "failed":
        print(f"| {label} | failed | | | | | |"); continue
    d = json.load(open(raw))
    print(f"| {label} | {d['rate']:.0f} | {d['server_cpu_us_per_msg']:.2f} | {d['server_cpu_pct']:.0f} "
          f"| {d['client_cpu_pct']:.0f} | {d['wire_in_per_msg']:.0f} | {d['errors']['total']} |")
PY
)
{
    echo "# permessage-deflate benchmark"
    echo
    echo "Generated by \`bench/ws_deflate.sh\` at $START (one run per case, ${DURATION} s after ${WARMUP} s warm-up;"
    echo "$CONNS echo connections, closed loop; fan-out to $SUBS subscribers with $WINDOW messages in flight;"
    echo "$SIZE-byte JSON-like text messages). Load average before / after: $LOAD_BEFORE / $LOAD_AFTER"
    echo "(a shared 2-core machine: indicative only)."
    echo
    echo "$TABLE"
    echo
    echo "Server core busy % well under 100 means the server was not the bottleneck: on a loaded machine a"
    echo "closed loop waits on the scheduler, and server CPU µs/msg is then the steadier figure."
    echo
    echo "Commands: \`DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS SIZE=$SIZE SUBS=$SUBS WINDOW=$WINDOW bench/ws_deflate.sh\`;"
    echo "servers: \`iodine examples/echo.py -t 1\`, \`uvicorn echo_asgi:app --ws websockets --loop uvloop --http httptools\`,"
    echo "\`iodine bench/apps/pubsub_wsgi.py -t 1\`, each pinned with \`taskset -c $SERVER_CPU\`; load:"
    echo "\`taskset -c $LOAD_CPU build/ws_load -c $CONNS -s $SIZE -j [-z]\` and \`build/ws_load -m fanout -c $SUBS -s $SIZE -j [-z] --window $WINDOW\`."
    echo "Raw JSON per case: bench/results/logs/ws-deflate/."
} >"$OUT"
echo
echo "$TABLE"
log "load average before/after: $LOAD_BEFORE / $LOAD_AFTER; report: ${OUT#$ROOT/}"
