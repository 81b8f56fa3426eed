#!/usr/bin/env bash
# bench/ws.sh - WebSocket echo benchmark: iodine vs uvicorn (websockets, websockets-sansio,
# wsproto) and granian (ASGI), closed loop, measured with bench/ws_load.c.
#
# Usage:  bench/ws.sh                       (full run: RUNS=3 x 10 s x 100 connections x 32 B per server)
#         DURATION=3 RUNS=1 bench/ws.sh     (quick iteration)
#         SERVERS="iodine granian" bench/ws.sh
#
# Every server runs ONE worker process, pinned to CPU $SERVER_CPU (default 1); the load
# generator runs single-threaded, pinned to CPU $LOAD_CPU (default 0).
#
# Environment overrides (defaults in brackets):
#   DURATION [10]  measured seconds per run       CONNS [100]  WebSocket connections
#   RUNS [3]       runs per server (medians)      SIZE [32]    message bytes (text)
#   WARMUP [2]     seconds of unrecorded load per server before its runs
#   RUN_WARMUP [1] unrecorded seconds at the start of every run (ws_load -w)
#   THREADS [1]    ws_load threads (-T)
#   SERVERS ["iodine uvicorn-websockets uvicorn-sansio uvicorn-wsproto granian"]
#   IODINE [/work/main/.venv/bin/iodine]   PEERS_VENV [bench/.venv-peers]
#   SERVER_CPU [1]  LOAD_CPU [0]  READY_TIMEOUT [30]
#   FOREIGN_WARN [10]  flag a run when other processes took >= this % of a benchmark core
#   RETRIES [2]    re-run a flagged run up to this many times (after RETRY_PAUSE [5] s); the least
#                  disturbed try counts
#   WS_LOAD [build/ws_load]  (rebuilt from bench/ws_load.c when missing or older)
#   OUT [bench/results/ws-latest.md]
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

DURATION=${DURATION:-10}; DURATION=${DURATION%s}
CONNS=${CONNS:-100}
SIZE=${SIZE:-32}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-2}; WARMUP=${WARMUP%s}
RUN_WARMUP=${RUN_WARMUP:-1}; RUN_WARMUP=${RUN_WARMUP%s}
THREADS=${THREADS:-1}
SERVERS=${SERVERS:-"iodine uvicorn-websockets uvicorn-sansio uvicorn-wsproto granian"}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}
FOREIGN_WARN=${FOREIGN_WARN:-10}
RETRIES=${RETRIES:-2}
RETRY_PAUSE=${RETRY_PAUSE:-5}
WS_LOAD=${WS_LOAD:-$ROOT/build/ws_load}
OUT=${OUT:-$HERE/results/ws-latest.md}

for v in DURATION CONNS SIZE RUNS WARMUP RUN_WARMUP THREADS SERVER_CPU LOAD_CPU READY_TIMEOUT FOREIGN_WARN RETRIES RETRY_PAUSE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "ws.sh: $v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
# every load loop is bounded: at most 5 min per run, 20 runs, 20k connections
(( DURATION >= 1 && DURATION <= 300 )) || { echo "ws.sh: DURATION must be 1..300 s" >&2; exit 2; }
(( RUNS >= 1 && RUNS <= 20 )) || { echo "ws.sh: RUNS must be 1..20" >&2; exit 2; }
(( CONNS >= 1 && CONNS <= 20000 )) || { echo "ws.sh: CONNS must be 1..20000" >&2; exit 2; }
(( SIZE <= 1048576 )) || { echo "ws.sh: SIZE must be <= 1 MiB" >&2; exit 2; }
(( WARMUP <= 60 && RUN_WARMUP <= 60 )) || { echo "ws.sh: WARMUP/RUN_WARMUP must be <= 60 s" >&2; exit 2; }
(( THREADS >= 1 && THREADS <= 8 )) || { echo "ws.sh: THREADS must be 1..8" >&2; exit 2; }
(( RETRIES <= 5 && RETRY_PAUSE <= 60 )) || { echo "ws.sh: RETRIES must be <= 5, RETRY_PAUSE <= 60" >&2; exit 2; }

CLK_TCK=$(getconf CLK_TCK)
LOGDIR=$HERE/results/logs/ws    # gitignored scratch: server logs, raw ws_load JSON
mkdir -p "$LOGDIR" "$(dirname "$OUT")"

log() { printf '[ws.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- cleanup
SIDS=()          # session ids of servers we started (each server runs in its own session)
LOAD_PID=""      # the running ws_load (via timeout)

stop_server() {  # stop_server SID: TERM the whole session, KILL what is left after 5 s
    local sid=$1 pids i
    pids=$(pgrep -s "$sid" 2>/dev/null || true)
    [[ -n $pids ]] || return 0
    kill -TERM -- "-$sid" 2>/dev/null || true
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        pids=$(pgrep -s "$sid" 2>/dev/null || true)
        [[ -z $pids ]] && break
        sleep 0.1
    done
    if [[ -n $pids ]]; then
        kill -KILL -- "-$sid" 2>/dev/null || true
        kill -KILL $pids 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$? s
    trap - EXIT
    trap '' INT TERM HUP PIPE
    [[ -z $LOAD_PID ]] || kill -TERM "$LOAD_PID" 2>/dev/null || true
    for s in "${SIDS[@]}"; do stop_server "$s"; done
    SIDS=()
    wait 2>/dev/null || true
    exit "$rc"
}
trap cleanup EXIT
trap 'trap "" PIPE; log "interrupted" || true; exit 130' INT
trap 'trap "" PIPE; log "terminated" || true; exit 143' TERM HUP

# ---------------------------------------------------------------- helpers
need() { command -v "$1" >/dev/null 2>&1 || { echo "ws.sh: '$1' not found${2:+ ($2)}" >&2; exit 1; }; }

WS_LOAD_BUILD="cc -O2 -std=c11 -Wall -Wextra -o build/ws_load bench/ws_load.c -lz"
ensure_ws_load() {
    if [[ ! -x $WS_LOAD || $HERE/ws_load.c -nt $WS_LOAD ]]; then
        need cc "apt-get install -y gcc"
        log "building $WS_LOAD"
        mkdir -p "$(dirname "$WS_LOAD")"
        cc -O2 -std=c11 -Wall -Wextra -o "$WS_LOAD" "$HERE/ws_load.c" -lz
    fi
}

ensure_peers() {
    local want="import uvicorn, uvloop, httptools, websockets, wsproto, granian"
    [[ -x $PEERS_VENV/bin/python ]] && "$PEERS_VENV/bin/python" -c "$want" 2>/dev/null && return 0
    if [[ ! -x $PEERS_VENV/bin/python ]]; then
        log "creating peers venv $PEERS_VENV"
        python3 -m venv "$PEERS_VENV"
    fi
    log "installing the WebSocket peers into $PEERS_VENV"
    "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check 'uvicorn[standard]' uvloop httptools websockets wsproto granian >&2
    "$PEERS_VENV/bin/python" -c "$want"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

session_pids() { pgrep -s "$1" 2>/dev/null || true; }

cpu_ticks() {    # utime+stime (ticks) summed over the live processes of session $1
    local total=0 p rest f
    for p in $(session_pids "$1"); do
        rest=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${rest##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))      # fields 14 (utime) and 15 (stime)
    done
    echo "$total"
}

core_busy_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }  # user nice system irq softirq

peak_rss_kib() {
    local total=0 p v
    for p in $(session_pids "$1"); do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

busy_procs() {   # processes using >= 10% of a CPU right now (top's second sample, 1 s apart)
    top -b -n 2 -d 1 -w 200 2>/dev/null | awk '/^top -/ {blk++} blk == 2 && $1 ~ /^[0-9]+$/ && $9 + 0 >= 10 {print $9, $1, $12}' | head -n 8
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.6f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# ---------------------------------------------------------------- servers
declare -A CMD_DESC R_RATE R_P50 R_P99 R_P999 R_CPU R_SPCT R_RSS R_LOADPCT R_ERR R_NOTE R_DONE
FAILED=(); SKIPPED=()

server_cmd() {   # server_cmd NAME PORT -> SCMD array (run from $ROOT); 1 if unavailable
    local name=$1 port=$2
    case $name in
        iodine)
            [[ -x $IODINE ]] || { SKIPPED+=("iodine: $IODINE does not exist (set IODINE=)"); return 1; }
            SCMD=("$IODINE" "$ROOT/examples/echo.py" -p "$port" -b 127.0.0.1 -t 1) ;;
        uvicorn-websockets|uvicorn-sansio|uvicorn-wsproto)
            local impl=${name#uvicorn-}
            [[ $impl == sansio ]] && impl=websockets-sansio
            SCMD=("$PEERS_VENV/bin/uvicorn" echo_asgi:app --app-dir "$HERE/apps" --host 127.0.0.1 --port "$port"
                  --workers 1 --loop uvloop --http httptools --ws "$impl" --no-access-log --log-level warning) ;;
        granian)
            SCMD=("$PEERS_VENV/bin/granian" --interface asgi --working-dir "$HERE/apps" --host 127.0.0.1
                  --port "$port" --workers 1 --http 1 --loop uvloop --log-level warning echo_asgi:app) ;;
        *) echo "ws.sh: unknown server '$name'" >&2; exit 2 ;;
    esac
}

label() {
    case $1 in
        iodine) echo "iodine (ours, WSGI + rack.upgrade)" ;;
        uvicorn-websockets) echo "uvicorn + websockets (ASGI)" ;;
        uvicorn-sansio) echo "uvicorn + websockets-sansio (ASGI)" ;;
        uvicorn-wsproto) echo "uvicorn + wsproto (ASGI)" ;;
        granian) echo "granian (ASGI)" ;;
        *) echo "$1" ;;
    esac
}

wait_ready() {   # wait_ready SID URL LOGFILE: a WebSocket echo must succeed, with a deadline
    local sid=$1 url=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if [[ -z $(session_pids "$sid") ]]; then
            log "server exited before becoming ready; last log lines:"; tail -n 30 "$logf" >&2; return 1
        fi
        "$WS_LOAD" -q -m probe -C 1 "$url" && return 0
        sleep 0.05   # polling interval only: readiness = a successful echo
    done
    log "server not ready after ${READY_TIMEOUT}s; last log lines:"; tail -n 30 "$logf" >&2
    return 1
}

# run_load TAG SECONDS RUN_WARMUP SID -> L_* variables from ws_load's JSON + foreign load
run_load() {
    local tag=$1 secs=$2 rw=$3 sid=$4 raw pids b0 b1 l0 l1 s0 s1 t0 t1
    raw=$LOGDIR/$NAME.ws_load-$tag.json
    pids=$(session_pids "$sid" | paste -sd, -)
    b0=$(core_busy_ticks "$SERVER_CPU"); l0=$(core_busy_ticks "$LOAD_CPU"); s0=$(cpu_ticks "$sid"); t0=$(date +%s%N)
    timeout -k 5 $((secs + rw + 90)) taskset -c "$LOAD_CPU" "$WS_LOAD" -c "$CONNS" -s "$SIZE" -d "$secs" -w "$rw" \
        -T "$THREADS" --json --server-pid "$pids" "$URL" >"$raw" 2>"$raw.err" &
    LOAD_PID=$!
    local rc=0
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    t1=$(date +%s%N); s1=$(cpu_ticks "$sid"); b1=$(core_busy_ticks "$SERVER_CPU"); l1=$(core_busy_ticks "$LOAD_CPU")
    if ((rc != 0)) || ! grep -q '"rate"' "$raw"; then
        log "ws_load failed (rc=$rc):"; cat "$raw" "$raw.err" >&2; return 1
    fi
    # shellcheck disable=SC2046
    eval "$(python3 - "$raw" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lat, err = d["latency_us"], d["errors"]
out = {
    "L_RATE": d["rate"], "L_MSGS": d["messages"], "L_CONNECTED": d["connected"],
    "L_P50": lat["p50"], "L_P99": lat["p99"], "L_P999": lat["p999"], "L_MAX": lat["max"],
    "L_SRV_US": d["server_cpu_us_per_msg"], "L_SRV_PCT": d["server_cpu_pct"],
    "L_LOAD_PCT": d["client_cpu_pct"], "L_LOAD_SYS": d["client_sys_pct"], "L_LOAD_TOTAL": d["client_cpu_total_s"],
    "L_ERR": err["total"],
    "L_ERRS": ", ".join(f"{k} {v}" for k, v in err.items() if k != "total" and v),
}
for k, v in out.items():
    print(f"{k}='{v}'")
PY
)"
    # share of each benchmark core that went to other processes during the invocation
    L_FOREIGN=$(awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" -v l="$((l1 - l0))" -v c="$L_LOAD_TOTAL" \
        -v ns="$((t1 - t0))" -v hz="$CLK_TCK" 'BEGIN {
            w = ns / 1e9; f = (b - s) / hz / w * 100; g = (l / hz - c) / w * 100
            if (g > f) f = g; if (f < 0) f = 0; printf "%.0f", f }')
}

L_VARS=(L_RATE L_MSGS L_CONNECTED L_P50 L_P99 L_P999 L_MAX L_SRV_US L_SRV_PCT L_LOAD_PCT L_LOAD_SYS L_LOAD_TOTAL L_ERR L_ERRS L_FOREIGN)
declare -A BEST
keep_try() { local v; for v in "${L_VARS[@]}"; do BEST[$v]=${!v}; done; }
use_kept_try() { local v; for v in "${L_VARS[@]}"; do printf -v "$v" '%s' "${BEST[$v]}"; done; }

bench_server() {
    NAME=$1
    local port logf sid pidfile i
    port=$(free_port)
    SCMD=()
    server_cmd "$NAME" "$port" || { log "SKIP $NAME: ${SKIPPED[-1]#*: }"; return 0; }
    URL="ws://127.0.0.1:$port/"
    logf=$LOGDIR/$NAME.server.log
    pidfile=$LOGDIR/.$NAME.pid
    rm -f "$pidfile"
    CMD_DESC[$NAME]="taskset -c $SERVER_CPU ${SCMD[*]}"
    log "starting $NAME on port $port: ${CMD_DESC[$NAME]}"
    # own session (so the whole tree can be measured with pgrep -s and stopped at once); the
    # inner shell writes its pid, which is the session id, then execs the server
    (cd "$ROOT" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" \
        taskset -c "$SERVER_CPU" "${SCMD[@]}" >"$logf" 2>&1 </dev/null) &
    for ((i = 0; i < 100; i++)); do [[ -s $pidfile ]] && break; sleep 0.02; done
    sid=$(cat "$pidfile" 2>/dev/null || true)
    [[ -n $sid ]] || { log "could not start $NAME"; R_NOTE[$NAME]="failed to start"; FAILED+=("$NAME"); return 0; }
    SIDS+=("$sid")
    if ! wait_ready "$sid" "$URL" "$logf"; then
        R_NOTE[$NAME]="failed to start (log: ${logf#$ROOT/})"; FAILED+=("$NAME"); stop_server "$sid"; return 0
    fi
    log "$NAME ready (session $sid: $(session_pids "$sid" | paste -sd' ' -)); warm-up ${WARMUP}s"
    if ((WARMUP > 0)); then
        run_load warmup "$WARMUP" 0 "$sid" || { R_NOTE[$NAME]="warm-up failed"; FAILED+=("$NAME"); stop_server "$sid"; return 0; }
    fi
    local rate=() p50=() p99=() p999=() cpu=() spct=() lpct=() errs=0 notes=""
    local try
    for ((i = 1; i <= RUNS; i++)); do
        BEST=()
        for ((try = 0; ; try++)); do
            if ! run_load "run$i" "$DURATION" "$RUN_WARMUP" "$sid"; then break; fi
            # keep the least disturbed try
            if ((${#BEST[@]} == 0 || L_FOREIGN < BEST[L_FOREIGN])); then keep_try; fi
            ((L_FOREIGN >= FOREIGN_WARN && try < RETRIES)) || break
            log "$NAME run $i/$RUNS disturbed (other processes took ${L_FOREIGN}% of a benchmark core): retry $((try + 1))/$RETRIES in ${RETRY_PAUSE}s"
            sleep "$RETRY_PAUSE"
        done
        if ((${#BEST[@]} == 0)); then notes+="run$i: ws_load failed; "; continue; fi
        use_kept_try
        ((try == 0)) || notes+="run$i tried $((try + 1)) times for disturbance (least disturbed kept); "
        rate+=("$L_RATE"); p50+=("$L_P50"); p99+=("$L_P99"); p999+=("$L_P999")
        cpu+=("$L_SRV_US"); spct+=("$L_SRV_PCT"); lpct+=("$L_LOAD_PCT")
        errs=$((errs + L_ERR))
        ((L_CONNECTED == CONNS)) || notes+="run$i: only $L_CONNECTED/$CONNS connected; "
        ((L_ERR == 0)) || notes+="run$i errors: $L_ERRS; "
        ((L_FOREIGN < FOREIGN_WARN)) || notes+="run$i DISTURBED: other processes took ${L_FOREIGN}% of a benchmark core; "
        log "$NAME run $i/$RUNS: ${L_RATE} msg/s, p50 ${L_P50} us, p99 ${L_P99} us, server ${L_SRV_US} us/msg (${L_SRV_PCT}% of its core), ws_load ${L_LOAD_PCT}% of its core (${L_LOAD_SYS}% kernel), others on cores ${L_FOREIGN}%, errors ${L_ERR}${L_ERRS:+ ($L_ERRS)}"
    done
    R_RSS[$NAME]=$(awk -v k="$(peak_rss_kib "$sid")" 'BEGIN{printf "%.1f", k/1024}')
    stop_server "$sid"
    if ((${#rate[@]} == 0)); then R_NOTE[$NAME]=${notes%; }; FAILED+=("$NAME"); return 0; fi
    R_RATE[$NAME]=$(median "${rate[@]}")
    R_P50[$NAME]=$(median "${p50[@]}")
    R_P99[$NAME]=$(median "${p99[@]}")
    R_P999[$NAME]=$(median "${p999[@]}")
    R_CPU[$NAME]=$(median "${cpu[@]}")
    R_SPCT[$NAME]=$(median "${spct[@]}")
    R_LOADPCT[$NAME]=$(median "${lpct[@]}")
    R_ERR[$NAME]=$errs
    R_NOTE[$NAME]=${notes%; }
    R_DONE[$NAME]=1
}

# ---------------------------------------------------------------- main
need taskset; need pgrep; need top; need python3; need timeout; need setsid; need lscpu
ensure_ws_load
ensure_peers
NCPU=$(nproc)
((SERVER_CPU < NCPU && LOAD_CPU < NCPU)) || { echo "ws.sh: SERVER_CPU/LOAD_CPU must be < $NCPU" >&2; exit 2; }

BUSY_BEFORE=$(busy_procs)
[[ -z $BUSY_BEFORE ]] || log "WARNING: other busy processes (%CPU PID COMM) - results may be disturbed:
$BUSY_BEFORE"
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "DURATION=${DURATION}s CONNS=$CONNS SIZE=$SIZE RUNS=$RUNS WARMUP=${WARMUP}s RUN_WARMUP=${RUN_WARMUP}s THREADS=$THREADS; load average $LOAD_BEFORE; servers: $SERVERS"

for s in $SERVERS; do bench_server "$s"; done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_AFTER=$(busy_procs)

REF=""
if [[ -n ${R_DONE[iodine]:-} ]]; then REF=iodine
else
    best=0
    for s in $SERVERS; do
        [[ -n ${R_DONE[$s]:-} ]] || continue
        if awk -v a="${R_RATE[$s]}" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=${R_RATE[$s]}; REF=$s; fi
    done
fi
[[ -n $REF ]] || { log "no server was measured"; exit 1; }
ref_label="ours"; [[ $REF == iodine ]] || ref_label="$REF (ours not measured)"

TABLE=$(
    echo "| server | messages/s (median) | ratio to $ref_label | p50 ms | p99 ms (median) | p99.9 ms | server CPU µs/msg | CPU ratio to $ref_label | server core busy % | peak RSS MiB | ws_load CPU % | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SERVERS; do
        if [[ -n ${R_DONE[$s]:-} ]]; then
            awk -v l="$(label "$s")" -v r="${R_RATE[$s]}" -v rr="${R_RATE[$REF]}" -v p50="${R_P50[$s]}" \
                -v p99="${R_P99[$s]}" -v p999="${R_P999[$s]}" -v c="${R_CPU[$s]}" -v cr="${R_CPU[$REF]}" \
                -v sp="${R_SPCT[$s]}" -v rss="${R_RSS[$s]}" -v lp="${R_LOADPCT[$s]}" -v e="${R_ERR[$s]}" 'BEGIN {
                printf "| %s | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %s | %.0f | %d |\n",
                    l, r, r / rr, p50 / 1000, p99 / 1000, p999 / 1000, c, (cr > 0 ? c / cr : 0), sp, rss, lp, e }'
        elif [[ -n ${R_NOTE[$s]:-} ]]; then echo "| $(label "$s") | failed: ${R_NOTE[$s]} | | | | | | | | | | |"
        else echo "| $(label "$s") | skipped | | | | | | | | | | |"; fi
    done
)

pkg_versions() {
    "$PEERS_VENV/bin/python" - uvicorn uvloop httptools websockets wsproto granian <<'PY'
import sys, importlib.metadata as m
for p in sys.argv[1:]:
    try: print(f"- {p} {m.version(p)}")
    except m.PackageNotFoundError: print(f"- {p} (not installed)")
PY
}

iodine_version() {
    [[ -x $IODINE ]] || { echo "not present ($IODINE)"; return; }
    local py v rev dirty=""
    py=$(dirname "$IODINE")/python
    v=$("$py" -c 'import importlib.metadata as m; print(m.version("iodine-py"))' 2>/dev/null || echo "unknown version")
    rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    [[ -z $(git -C "$ROOT" status --porcelain -- ext iodine_py 2>/dev/null) ]] || dirty=" + uncommitted changes in ext/ or iodine_py/"
    echo "$v (git $rev$dirty; $IODINE)"
}

disturbed=$(for s in $SERVERS; do [[ ${R_NOTE[$s]:-} == *DISTURBED* ]] && echo "$s"; done || true)

{
    echo "# WebSocket echo benchmark: one worker each"
    echo
    echo "Generated by \`bench/ws.sh\` at $START_TS: $CONNS connections, closed loop (each connection sends one"
    echo "$SIZE-byte masked text message, waits for the echo, checks it byte for byte, sends the next), $RUNS run(s) of"
    echo "${DURATION} s per server after a ${WARMUP} s warm-up; medians over runs."
    echo
    if [[ -n $disturbed || -n $BUSY_BEFORE ]]; then
        echo "**Warning: the machine was not idle** (load average $LOAD_BEFORE before, $LOAD_AFTER after). Other busy"
        echo "processes at the start (%CPU PID COMMAND):"
        echo
        echo '```'
        echo "${BUSY_BEFORE:-none}"
        echo '```'
        echo
        [[ -z $disturbed ]] || echo "Runs flagged DISTURBED (see notes): $(echo $disturbed). Do not trust these numbers; re-run on a quiet machine."
        echo
    fi
    echo "$TABLE"
    echo
    notes_out=$(
        for s in $SERVERS; do [[ -z ${R_NOTE[$s]:-} ]] || echo "- $(label "$s"): ${R_NOTE[$s]}"; done
        for sk in "${SKIPPED[@]}"; do echo "- skipped $sk"; done
    )
    [[ -z $notes_out ]] || printf 'Notes:\n\n%s\n\n' "$notes_out"
    echo "Columns: messages/s = round trips completed per second in the measured window, all connections"
    echo "together. Latency = send to verified echo, 1 µs histogram buckets. Server CPU µs/msg = the server's"
    echo "processes' utime+stime (/proc/PID/stat, CLK_TCK=$CLK_TCK, so ±1 tick) over the window / round trips;"
    echo "server core busy % = the same CPU time / window (100 = the server's core is saturated). ws_load CPU % ="
    echo "the load generator's own user+sys / window (100 = the client is the bottleneck). Peak RSS = VmHWM summed"
    echo "over the server's processes. errors = connect failures + failed handshakes + unexpected closes + wrong"
    echo "echoes + protocol errors + echoes outstanding > 1 s at the end, over all runs. A run is flagged DISTURBED"
    echo "when other processes took >= ${FOREIGN_WARN}% of the server's or the load generator's core (such a run is"
    echo "retried up to $RETRIES times and the least disturbed try is kept)."
    echo
    echo "Load average before / after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "## Machine"
    echo
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs online"
    echo "- Kernel: $(uname -srm)"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- Python (peers venv): $("$PEERS_VENV/bin/python" -VV | tr '\n' ' ')"
    [[ ! -x $(dirname "$IODINE")/python ]] || echo "- Python (iodine venv): $("$(dirname "$IODINE")/python" -VV | tr '\n' ' ')"
    echo "- ws_load: bench/ws_load.c built with \`$WS_LOAD_BUILD\` ($(cc --version | head -n1))"
    echo
    echo "## Versions"
    echo
    echo "- iodine: $(iodine_version)"
    pkg_versions
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "# this report"
    echo "DURATION=$DURATION CONNS=$CONNS SIZE=$SIZE RUNS=$RUNS WARMUP=$WARMUP RUN_WARMUP=$RUN_WARMUP THREADS=$THREADS RETRIES=$RETRIES SERVERS=\"$SERVERS\" bench/ws.sh"
    echo "# servers, from the repository root (PORT = a free loopback port picked per server)"
    for s in $SERVERS; do
        [[ -z ${CMD_DESC[$s]:-} ]] || echo "${CMD_DESC[$s]}" | sed -E "s#$ROOT/##g; s#--port [0-9]+#--port PORT#; s#-p [0-9]+ #-p PORT #"
    done
    echo "# readiness: repeated until it succeeds (one connection, one verified echo)"
    echo "build/ws_load -q -m probe -C 1 ws://127.0.0.1:PORT/"
    echo "# load (SERVER_PIDS = the server's processes, for the CPU column)"
    echo "taskset -c $LOAD_CPU build/ws_load -c $CONNS -s $SIZE -d $WARMUP -w 0 -T $THREADS --json --server-pid SERVER_PIDS ws://127.0.0.1:PORT/   # warm-up"
    echo "taskset -c $LOAD_CPU build/ws_load -c $CONNS -s $SIZE -d $DURATION -w $RUN_WARMUP -T $THREADS --json --server-pid SERVER_PIDS ws://127.0.0.1:PORT/   # x $RUNS"
    echo '```'
    if [[ -n $BUSY_AFTER ]]; then
        echo
        echo "Busy processes right after the runs (%CPU PID COMMAND):"
        echo
        echo '```'
        echo "$BUSY_AFTER"
        echo '```'
    fi
} >"$OUT"

echo
echo "$TABLE"
echo
for s in $SERVERS; do [[ -z ${R_NOTE[$s]:-} ]] || echo "$s: ${R_NOTE[$s]}"; done
log "load average before/after: $LOAD_BEFORE / $LOAD_AFTER; report written to ${OUT#$ROOT/}"
if ((${#FAILED[@]})); then log "FAILED: ${FAILED[*]}"; exit 1; fi
