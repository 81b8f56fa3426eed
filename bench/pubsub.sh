#!/usr/bin/env bash
# bench/pubsub.sh - pub/sub fan-out benchmark: one publisher, N WebSocket subscribers, 64-byte
# messages; iodine (client.subscribe with no callback: delivered from C) vs uvicorn (websockets,
# websockets-sansio) with an in-process broadcast, and socketify (uWebSockets' own pub/sub).
#
# Usage:  bench/pubsub.sh                              (full run: SUBS="1000 10000", RUNS=3 x 10 s)
#         SUBS=10000 DURATION=3 RUNS=1 LAT_RUNS=0 bench/pubsub.sh   (quick iteration)
#         SERVERS="iodine socketify" bench/pubsub.sh
#
# Load: build/ws_load -m fanout (bench/ws_load.c): N subscribers connect to /sub, then one
# publisher to /pub. The publisher's messages carry a CLOCK_MONOTONIC send timestamp and a
# sequence number; the server publishes each one to every subscriber. The publisher sends as
# fast as the server takes them, with at most W messages in flight (published and not yet
# received by every subscriber), optionally capped at RATE messages/s. Deliveries are counted
# at the subscribers; latency = the publisher's send timestamp to a subscriber's receipt, over
# every delivery.
#
# How many messages in flight suit a server differs (more lets a server batch several messages
# into one write per subscriber, but some servers slow down when backlogs grow), so per server
# and subscriber count a short sweep (one SWEEP_DURATION run per W in WINDOWS) picks the
# smallest W within SWEEP_TOLERANCE % of the most deliveries/s seen, and the RUNS measured runs
# use that W: each server is measured at its own best. A last pass with LAT_WINDOW (default 1) message in flight measures the latency of one
# fan-out with nothing queued behind it.
#
# Every server runs ONE worker process, pinned to CPU $SERVER_CPU (default 1); ws_load runs
# single-threaded, pinned to CPU $LOAD_CPU (default 0). Both at nice $NICE in sessions of their
# own (see bench/README.md, "Other work on the machine").
#
# Environment overrides (defaults in brackets):
#   SUBS ["1000 10000"]  subscriber counts      SIZE [64]        message bytes (text)
#   DURATION [10]  measured seconds per run     RUNS [3]         runs per server and count (medians)
#   RUN_WARMUP [2] unrecorded seconds at the start of every run, after the sync
#   WINDOWS ["4 16 32 64 128"]  messages in flight to sweep (one value: no sweep)
#   SWEEP_DURATION [3]  measured seconds of each sweep run
#   SWEEP_TOLERANCE [5]  the measured W is the smallest within this % of the sweep's best
#   RATE [0]       messages/s cap (0: none)
#   LAT_WINDOW [1] LAT_RUNS [1]  the latency pass (LAT_RUNS=0 skips it)
#   GRID [0]       1: no sweep and no latency pass; every W in WINDOWS is measured (RUNS runs each),
#                  and the report is one table per subscriber count: per W, each server's
#                  deliveries/s, p50/p99, CPU ns/delivery and ws_load's CPU, and iodine against each
#                  peer (the issue's targets: >= 1.1x deliveries/s, p99 and CPU/delivery no worse).
#                  The servers are interleaved: all are started for a count, and each of the RUNS
#                  rounds at a W measures every server once (every other round in reverse order).
#                  The issue's grid: GRID=1 WINDOWS="1 4 16 64" SUBS="200 1000 10000" \
#                    SERVERS="iodine socketify" bench/pubsub.sh
#   SERVERS ["iodine uvicorn-websockets uvicorn-sansio socketify"]
#   IODINE [/work/main/.venv/bin/iodine]   PEERS_VENV [bench/.venv-peers]
#   SERVER_CPU [1]  LOAD_CPU [0]  READY_TIMEOUT [30]  NICE [-20 as root, else 0]
#   FOREIGN_WARN [10]  flag a run when other processes took >= this % of a benchmark core
#   RETRIES [2]    re-run a flagged run up to this many times (after RETRY_PAUSE [5] s); the least
#                  disturbed try counts
#   WS_LOAD [build/ws_load]  (rebuilt from bench/ws_load.c when missing or older)
#   OUT [bench/results/pubsub-latest.md]
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

SUBS=${SUBS:-"1000 10000"}
SIZE=${SIZE:-64}
DURATION=${DURATION:-10}; DURATION=${DURATION%s}
RUNS=${RUNS:-3}
RUN_WARMUP=${RUN_WARMUP:-2}; RUN_WARMUP=${RUN_WARMUP%s}
WINDOWS=${WINDOWS:-"4 16 32 64 128"}
SWEEP_DURATION=${SWEEP_DURATION:-3}; SWEEP_DURATION=${SWEEP_DURATION%s}
SWEEP_TOLERANCE=${SWEEP_TOLERANCE:-5}
RATE=${RATE:-0}
LAT_WINDOW=${LAT_WINDOW:-1}
GRID=${GRID:-0}
if ((GRID)); then LAT_RUNS=${LAT_RUNS:-0}; else LAT_RUNS=${LAT_RUNS:-1}; fi
SERVERS=${SERVERS:-"iodine uvicorn-websockets uvicorn-sansio socketify"}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
SERVER_CPU=${SERVER_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}
if [[ -z ${NICE:-} ]]; then if ((EUID == 0)); then NICE=-20; else NICE=0; fi; fi
FOREIGN_WARN=${FOREIGN_WARN:-10}
RETRIES=${RETRIES:-2}
RETRY_PAUSE=${RETRY_PAUSE:-5}
WS_LOAD=${WS_LOAD:-$ROOT/build/ws_load}
OUT=${OUT:-$HERE/results/pubsub-latest.md}
TARGET_RATE=1000000     # the issue's targets, checked for iodine at 10,000 subscribers
TARGET_RATIO=5

die() { echo "pubsub.sh: $*" >&2; exit 2; }
for v in GRID SIZE DURATION SWEEP_DURATION SWEEP_TOLERANCE RUNS RUN_WARMUP RATE LAT_WINDOW LAT_RUNS SERVER_CPU LOAD_CPU READY_TIMEOUT FOREIGN_WARN RETRIES RETRY_PAUSE; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
[[ $NICE =~ ^-?[0-9]+$ ]] && ((NICE >= -20 && NICE <= 19)) || die "NICE must be -20..19"
# every load loop is bounded: at most 5 min per run, 20 runs, 20k subscribers, one publisher
(( DURATION >= 1 && DURATION <= 300 && SWEEP_DURATION >= 1 && SWEEP_DURATION <= 60 )) || die "DURATION must be 1..300 s, SWEEP_DURATION 1..60 s"
(( RUNS >= 1 && RUNS <= 20 && LAT_RUNS <= 20 )) || die "RUNS must be 1..20, LAT_RUNS 0..20"
(( RUN_WARMUP <= 60 )) || die "RUN_WARMUP must be <= 60 s"
(( SIZE >= 32 && SIZE <= 65536 )) || die "SIZE must be 32..65536 (timestamp + sequence number take 32)"
(( LAT_WINDOW >= 1 && LAT_WINDOW <= 4096 )) || die "LAT_WINDOW must be 1..4096"
nw=0
for w in $WINDOWS; do [[ $w =~ ^[0-9]+$ ]] && ((w >= 1 && w <= 4096)) || die "WINDOWS: each must be 1..4096 (got '$w')"; nw=$((nw + 1)); done
((nw >= 1 && nw <= 10)) || die "WINDOWS: 1..10 values"
(( RATE <= 1000000 )) || die "RATE must be <= 1000000"
(( SWEEP_TOLERANCE <= 50 )) || die "SWEEP_TOLERANCE must be 0..50 (%)"
(( RETRIES <= 5 && RETRY_PAUSE <= 60 )) || die "RETRIES must be <= 5, RETRY_PAUSE <= 60"
ns=0
for n in $SUBS; do [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 20000)) || die "SUBS: each count must be 1..20000 (got '$n')"; ns=$((ns + 1)); done
((ns >= 1 && ns <= 5)) || die "SUBS: 1..5 counts"

CLK_TCK=$(getconf CLK_TCK)
LOGDIR=$HERE/results/logs/pubsub    # gitignored scratch: server logs, raw ws_load JSON
mkdir -p "$LOGDIR" "$(dirname "$OUT")"

log() { printf '[pubsub.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- cleanup
SIDS=()          # session ids of the servers we started (each in a session of its own)
LOAD_PID=""      # the running ws_load (through timeout)

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
need() { command -v "$1" >/dev/null 2>&1 || { echo "pubsub.sh: '$1' not found${2:+ ($2)}" >&2; exit 1; }; }

WS_LOAD_BUILD="cc -O2 -std=c11 -Wall -Wextra -o build/ws_load bench/ws_load.c -lz"
ensure_ws_load() {
    if [[ ! -x $WS_LOAD || $HERE/ws_load.c -nt $WS_LOAD ]]; then
        need cc "apt-get install -y gcc"
        log "building $WS_LOAD"
        mkdir -p "$(dirname "$WS_LOAD")"
        cc -O2 -std=c11 -Wall -Wextra -o "$WS_LOAD" "$HERE/ws_load.c" -lz
    fi
}

SOCKETIFY_NOTE=""
ensure_peers() {
    local want="import uvicorn, uvloop, httptools, websockets"
    if ! { [[ -x $PEERS_VENV/bin/python ]] && "$PEERS_VENV/bin/python" -c "$want" 2>/dev/null; }; then
        if [[ ! -x $PEERS_VENV/bin/python ]]; then
            log "creating peers venv $PEERS_VENV"
            python3 -m venv "$PEERS_VENV"
        fi
        log "installing uvicorn and websockets into $PEERS_VENV"
        "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check 'uvicorn[standard]' uvloop httptools websockets >&2
        "$PEERS_VENV/bin/python" -c "$want"
    fi
    [[ " $SERVERS " == *" socketify "* ]] || return 0
    "$PEERS_VENV/bin/python" -c "import socketify" 2>/dev/null && return 0
    log "installing socketify into $PEERS_VENV"
    if ! "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check socketify >"$LOGDIR/socketify-install.log" 2>&1 \
        || ! "$PEERS_VENV/bin/python" -c "import socketify" >>"$LOGDIR/socketify-install.log" 2>&1; then
        SOCKETIFY_NOTE="pip install socketify failed: $(tail -n 1 "$LOGDIR/socketify-install.log")"
        log "socketify is not available, skipped: $SOCKETIFY_NOTE"
    fi
}

raise_nofile() {  # the servers inherit this shell's limit; ws_load raises its own
    local hard
    hard=$(ulimit -Hn)
    if [[ $hard == unlimited ]]; then ulimit -Sn 1048576 2>/dev/null || true
    else ulimit -Sn "$hard" 2>/dev/null || true; fi
    NOFILE=$(ulimit -Sn)
    [[ $NOFILE != unlimited ]] || NOFILE=1048576
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

# user+nice+system ticks of one CPU. Not irq/softirq: the kernel accounts the loopback TCP work
# of our own traffic there (not in any task's stime), and it would count as other processes' load.
core_busy_ticks() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 }' /proc/stat; }

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

# wait_idle SID: until the server's processes used < 10% of a core over 0.3 s (at most 30 s). A
# server may still be working off the previous run's backlog (a slow broadcast keeps sending
# to connections that are gone); the next run must not start before.
wait_idle() {
    local sid=$1 a b i
    a=$(cpu_ticks "$sid")
    for ((i = 0; i < 100; i++)); do
        sleep 0.3
        b=$(cpu_ticks "$sid")
        (((b - a) * 1000 < CLK_TCK * 30)) && return 0
        a=$b
    done
    log "$NAME still busy after 30 s of waiting for it to go idle"
}

# Prefix: a new session whose autogroup (and the task itself) runs at nice $NICE.
PRIO=(setsid)
((NICE == 0)) || PRIO=(setsid bash -c 'echo "$0" >/proc/self/autogroup 2>/dev/null || true; exec nice -n "$0" "$@"' "$NICE")

# ---------------------------------------------------------------- servers
declare -A CMD_DESC R_NOTE R_DONE R_RSS R_CONNECT R_SPREAD URL_OF
declare -A R_RATE R_PUB R_P50 R_P90 R_P99 R_C50 R_C99 R_CPU R_SPCT R_LOADPCT R_LOADSYS R_ERR
declare -A T_RATE T_P50 T_P90 T_P99 T_C50 T_C99 T_ERR T_DONE R_WIN SWEEP
FAILED=(); SKIPPED=()

server_cmd() {   # server_cmd NAME PORT -> SCMD array (run from $ROOT); 1 if unavailable
    local name=$1 port=$2
    case $name in
        iodine)
            [[ -x $IODINE ]] || { SKIPPED+=("iodine: $IODINE does not exist (set IODINE=)"); return 1; }
            SCMD=("$IODINE" "$HERE/apps/pubsub_wsgi.py" -p "$port" -b 127.0.0.1 -t 1) ;;
        uvicorn-websockets|uvicorn-sansio)
            local impl=${name#uvicorn-}
            [[ $impl == sansio ]] && impl=websockets-sansio
            SCMD=("$PEERS_VENV/bin/uvicorn" pubsub_asgi:app --app-dir "$HERE/apps" --host 127.0.0.1 --port "$port"
                  --workers 1 --loop uvloop --http httptools --ws "$impl" --no-access-log --log-level warning) ;;
        socketify)
            [[ -z $SOCKETIFY_NOTE ]] || { SKIPPED+=("socketify: $SOCKETIFY_NOTE"); return 1; }
            SCMD=("$PEERS_VENV/bin/python" "$HERE/apps/pubsub_socketify.py" "$port") ;;
        *) echo "pubsub.sh: unknown server '$name'" >&2; exit 2 ;;
    esac
}

label() {
    case $1 in
        iodine) echo "iodine (ours: WSGI, client.subscribe, delivered from C)" ;;
        uvicorn-websockets) echo "uvicorn + websockets (ASGI, in-process broadcast loop)" ;;
        uvicorn-sansio) echo "uvicorn + websockets-sansio (ASGI, in-process broadcast loop)" ;;
        socketify) echo "socketify (uWebSockets pub/sub)" ;;
        *) echo "$1" ;;
    esac
}

wait_ready() {   # wait_ready SID URL LOGFILE: a WebSocket echo on /echo must succeed, with a deadline
    local sid=$1 url=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if [[ -z $(session_pids "$sid") ]]; then
            log "server exited before becoming ready; last log lines:"; tail -n 30 "$logf" >&2; return 1
        fi
        "$WS_LOAD" -q -m probe -C 1 "${url}echo" && return 0
        sleep 0.05   # polling interval only: readiness = a successful echo
    done
    log "server not ready after ${READY_TIMEOUT}s; last log lines:"; tail -n 30 "$logf" >&2
    return 1
}

# run_load TAG NSUBS WINDOW SECONDS SID -> L_* variables from ws_load's JSON + foreign load
run_load() {
    local tag=$1 nsubs=$2 win=$3 secs=$4 sid=$5 raw pids b0 b1 l0 l1 s0 s1 t0 t1 rc=0
    wait_idle "$sid"
    raw=$LOGDIR/$NAME.$nsubs.$tag.json
    pids=$(session_pids "$sid" | paste -sd, -)
    b0=$(core_busy_ticks "$SERVER_CPU"); l0=$(core_busy_ticks "$LOAD_CPU"); s0=$(cpu_ticks "$sid"); t0=$(date +%s%N)
    # bounded: connect/sync (-C 60) + warm-up + window + close, killed 90 s past that
    timeout -k 5 $((60 + RUN_WARMUP + secs + 90)) "${PRIO[@]}" taskset -c "$LOAD_CPU" "$WS_LOAD" -m fanout -c "$nsubs" \
        -s "$SIZE" -d "$secs" -w "$RUN_WARMUP" --window "$win" -r "$RATE" -C 60 --json --server-pid "$pids" \
        "${URL}sub" >"$raw" 2>"$raw.err" &
    LOAD_PID=$!
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
lat, err, fan = d["latency_us"], d["errors"], d["fanout"]
out = {
    "L_RATE": d["rate"], "L_CONNECTED": d["connected"], "L_CONNECT_S": d["connect_s"],
    "L_PUB": fan["publish_rate"], "L_P50": lat["p50"], "L_P90": lat["p90"], "L_P99": lat["p99"],
    "L_C50": fan["complete_us"]["p50"], "L_C99": fan["complete_us"]["p99"],
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

L_VARS=(L_RATE L_CONNECTED L_CONNECT_S L_PUB L_P50 L_P90 L_P99 L_C50 L_C99 L_SRV_US L_SRV_PCT L_LOAD_PCT L_LOAD_SYS L_LOAD_TOTAL L_ERR L_ERRS L_FOREIGN)
declare -A BEST
keep_try() { local v; for v in "${L_VARS[@]}"; do BEST[$v]=${!v}; done; }
use_kept_try() { local v; for v in "${L_VARS[@]}"; do printf -v "$v" '%s' "${BEST[$v]}"; done; }

# measured TAG NSUBS WINDOW SECONDS SID: one run, retried while disturbed; 1 if ws_load failed every time
measured() {
    local tag=$1 nsubs=$2 win=$3 secs=$4 sid=$5 try
    BEST=()
    for ((try = 0; ; try++)); do
        run_load "$tag" "$nsubs" "$win" "$secs" "$sid" || break
        if ((${#BEST[@]} == 0 || L_FOREIGN < BEST[L_FOREIGN])); then keep_try; fi
        ((L_FOREIGN >= FOREIGN_WARN && try < RETRIES)) || break
        log "$NAME $nsubs $tag disturbed (other processes took ${L_FOREIGN}% of a benchmark core): retry $((try + 1))/$RETRIES in ${RETRY_PAUSE}s"
        sleep "$RETRY_PAUSE"
    done
    ((${#BEST[@]})) || return 1
    use_kept_try
    TRIES=$((try + 1))
    return 0
}

# run_into KEY NSUBS WINDOW SID I: run I (retried while disturbed), its figures appended to A_*[KEY],
# its notes to A_NOTES[KEY]
declare -A A_RATE A_PUB A_P50 A_P90 A_P99 A_C50 A_C99 A_CPU A_SPCT A_LPCT A_LSYS A_CONN A_ERRS A_NOTES
run_into() {
    local key=$1 n=$2 win=$3 sid=$4 i=$5
    if ! measured "W$win.run$i" "$n" "$win" "$DURATION" "$sid"; then A_NOTES[$key]+="run$i: ws_load failed; "; return 0; fi
    ((TRIES == 1)) || A_NOTES[$key]+="run$i tried $TRIES times for disturbance (least disturbed kept); "
    A_RATE[$key]+="$L_RATE "; A_PUB[$key]+="$L_PUB "; A_P50[$key]+="$L_P50 "; A_P90[$key]+="$L_P90 "; A_P99[$key]+="$L_P99 "
    A_C50[$key]+="$L_C50 "; A_C99[$key]+="$L_C99 "; A_CPU[$key]+="$L_SRV_US "; A_SPCT[$key]+="$L_SRV_PCT "
    A_LPCT[$key]+="$L_LOAD_PCT "; A_LSYS[$key]+="$L_LOAD_SYS "; A_CONN[$key]+="$L_CONNECT_S "
    A_ERRS[$key]=$(( ${A_ERRS[$key]:-0} + L_ERR ))
    ((L_CONNECTED == n)) || A_NOTES[$key]+="run$i: only $L_CONNECTED/$n subscribed; "
    ((L_ERR == 0)) || A_NOTES[$key]+="run$i errors: $L_ERRS; "
    ((L_FOREIGN < FOREIGN_WARN)) || A_NOTES[$key]+="run$i DISTURBED: other processes took ${L_FOREIGN}% of a benchmark core; "
    log "$NAME $n subs W=$win run $i/$RUNS: ${L_RATE} deliveries/s (${L_PUB} msgs/s), latency p50 ${L_P50} p90 ${L_P90} p99 ${L_P99} us, last subscriber p50 ${L_C50} p99 ${L_C99} us, server ${L_SRV_US} us/delivery (${L_SRV_PCT}% of its core), ws_load ${L_LOAD_PCT}% (${L_LOAD_SYS}% kernel), others on cores ${L_FOREIGN}%, errors ${L_ERR}${L_ERRS:+ ($L_ERRS)}"
}

# finish_key KEY: the medians of KEY's runs into R_*[KEY], its notes into RUN_NOTES
finish_key() {
    local key=$1
    RUN_NOTES=${A_NOTES[$key]:-}
    if [[ -z ${A_RATE[$key]:-} ]]; then FAILED+=("$key"); return 0; fi
    # shellcheck disable=SC2086
    {
        R_RATE[$key]=$(median ${A_RATE[$key]}); R_PUB[$key]=$(median ${A_PUB[$key]})
        R_P50[$key]=$(median ${A_P50[$key]}); R_P90[$key]=$(median ${A_P90[$key]}); R_P99[$key]=$(median ${A_P99[$key]})
        R_C50[$key]=$(median ${A_C50[$key]}); R_C99[$key]=$(median ${A_C99[$key]})
        R_CPU[$key]=$(median ${A_CPU[$key]}); R_SPCT[$key]=$(median ${A_SPCT[$key]})
        R_LOADPCT[$key]=$(median ${A_LPCT[$key]}); R_LOADSYS[$key]=$(median ${A_LSYS[$key]})
        R_CONNECT[$key]=$(median ${A_CONN[$key]})
        R_SPREAD[$key]=$(printf '%s\n' ${A_RATE[$key]} | sort -g | awk 'NR==1{a=$1} {b=$1} END{printf "%.0f-%.0f", a, b}')
    }
    R_ERR[$key]=${A_ERRS[$key]:-0}
    R_DONE[$key]=1
}

# runs_at KEY NSUBS WINDOW SID: RUNS measured runs at WINDOW messages in flight; medians into R_*[KEY],
# notes into RUN_NOTES
runs_at() {
    local key=$1 n=$2 win=$3 sid=$4 i
    for ((i = 1; i <= RUNS; i++)); do run_into "$key" "$n" "$win" "$sid" "$i"; done
    finish_key "$key"
}

# start_one NAME NSUBS: start NAME's server for NSUBS subscribers; SID_OF[NAME] is its session, or
# empty when it could not start (R_NOTE says why)
declare -A SID_OF
start_one() {
    NAME=$1
    local n=$2 key="$1/$2" port logf pidfile sid i
    SID_OF[$NAME]=""
    # iodine accepts at most 7/8 of its open-file limit at once (the rest is kept for files and pipes)
    if ((n + n / 7 + 64 > NOFILE)); then
        R_NOTE[$key]="skipped: RLIMIT_NOFILE is $NOFILE, $n subscribers need about $((n + n / 7 + 64))"; return 0
    fi
    port=$(free_port)
    SCMD=()
    server_cmd "$NAME" "$port" || { log "SKIP $NAME: ${SKIPPED[-1]#*: }"; R_NOTE[$key]="skipped"; return 0; }
    URL_OF[$NAME]="ws://127.0.0.1:$port/"
    logf=$LOGDIR/$NAME.$n.server.log
    pidfile=$LOGDIR/.$NAME.pid
    rm -f "$pidfile"
    CMD_DESC[$NAME]="taskset -c $SERVER_CPU ${SCMD[*]}"
    log "starting $NAME for $n subscribers on port $port: ${CMD_DESC[$NAME]}"
    # own session (measured with pgrep -s, stopped at once); the inner shell writes its pid (the
    # session id), sets the session's autogroup nice, then execs the server
    (cd "$ROOT" && exec setsid bash -c 'echo $$ >"$0"; n=$1; shift
        if [[ $n != 0 ]]; then echo "$n" >/proc/self/autogroup 2>/dev/null || true; exec nice -n "$n" "$@"; fi
        exec "$@"' "$pidfile" "$NICE" taskset -c "$SERVER_CPU" "${SCMD[@]}" >"$logf" 2>&1 </dev/null) &
    for ((i = 0; i < 100; i++)); do [[ -s $pidfile ]] && break; sleep 0.02; done
    sid=$(cat "$pidfile" 2>/dev/null || true)
    [[ -n $sid ]] || { log "could not start $NAME"; R_NOTE[$key]="failed to start"; FAILED+=("$key"); return 0; }
    SIDS+=("$sid")
    if ! wait_ready "$sid" "${URL_OF[$NAME]}" "$logf"; then
        R_NOTE[$key]="failed to start (log: ${logf#$ROOT/})"; FAILED+=("$key"); stop_server "$sid"; return 0
    fi
    log "$NAME ready (session $sid: $(session_pids "$sid" | paste -sd' ' -))"
    SID_OF[$NAME]=$sid
}

# grid_count NSUBS (GRID=1): every server started at once (each idle on SERVER_CPU while the
# others are measured), then per W, RUNS rounds that each measure every server once, every other
# round in reverse order: a drift of the machine's speed falls on all servers alike, not on
# whichever one came last (the W = 1 cells moved 30-50% between runs of one build).
grid_count() {
    local n=$1 s w i k live=() order=()
    for s in $SERVERS; do start_one "$s" "$n"; [[ -z ${SID_OF[$s]} ]] || live+=("$s"); done
    for w in $WINDOWS; do
        for ((i = 1; i <= RUNS; i++)); do
            order=("${live[@]}")
            if ((i % 2 == 0)); then order=(); for ((k = ${#live[@]} - 1; k >= 0; k--)); do order+=("${live[k]}"); done; fi
            for s in "${order[@]}"; do
                NAME=$s; URL=${URL_OF[$s]}
                run_into "$s/$n/$w" "$n" "$w" "${SID_OF[$s]}" "$i"
            done
        done
        for s in "${live[@]}"; do
            finish_key "$s/$n/$w"
            R_WIN[$s/$n/$w]=$w
            [[ -z $RUN_NOTES ]] || R_NOTE[$s/$n]+="W=$w: ${RUN_NOTES%; }; "
        done
    done
    for s in "${live[@]}"; do
        R_RSS[$s/$n]=$(awk -v k="$(peak_rss_kib "${SID_OF[$s]}")" 'BEGIN{printf "%.1f", k/1024}')
        stop_server "${SID_OF[$s]}"
        R_NOTE[$s/$n]=${R_NOTE[$s/$n]:-}; R_NOTE[$s/$n]=${R_NOTE[$s/$n]%; }
    done
}

bench_one() {    # bench_one NAME NSUBS: start the server, RUNS runs + LAT_RUNS latency runs, stop it
    local n=$2 key="$1/$2" sid
    start_one "$1" "$n"
    sid=${SID_OF[$1]}
    [[ -n $sid ]] || return 0
    URL=${URL_OF[$1]}
    local w win=${WINDOWS%% *} best=0 sweep="" tried=() notes=""
    if ((!GRID)) && [[ $WINDOWS == *" "* ]]; then
        for w in $WINDOWS; do
            if ! measured "sweep$w" "$n" "$w" "$SWEEP_DURATION" "$sid"; then sweep+="$w: failed, "; continue; fi
            sweep+="$w: $(printf '%.0f' "$L_RATE")$( ((L_FOREIGN < FOREIGN_WARN)) || echo " (disturbed)"), "
            log "$NAME $n subs sweep, window $w: ${L_RATE} deliveries/s, latency p50 ${L_P50} us, others on cores ${L_FOREIGN}%"
            tried+=("$w $L_RATE")
            if awk -v a="$L_RATE" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=$L_RATE; fi
        done
        # the smallest W within SWEEP_TOLERANCE % of the best: more in flight only adds latency
        # when it does not add deliveries (a flat curve would otherwise pick W by noise)
        for w in "${tried[@]}"; do
            if awk -v a="${w#* }" -v b="$best" -v t="$SWEEP_TOLERANCE" 'BEGIN{exit !(a >= b * (1 - t / 100))}'; then
                win=${w%% *}; break
            fi
        done
        SWEEP[$key]=${sweep%, }
        log "$NAME $n subs: measuring with $win messages in flight"
    fi
    R_WIN[$key]=$win
    runs_at "$key" "$n" "$win" "$sid"
    notes+=$RUN_NOTES
    local trate=() tp50=() tp90=() tp99=() tc50=() tc99=() terr=0
    for ((i = 1; i <= LAT_RUNS && !GRID; i++)); do
        if ! measured "lat$i" "$n" "$LAT_WINDOW" "$DURATION" "$sid"; then notes+="latency run $i: ws_load failed; "; continue; fi
        trate+=("$L_RATE"); tp50+=("$L_P50"); tp90+=("$L_P90"); tp99+=("$L_P99"); tc50+=("$L_C50"); tc99+=("$L_C99")
        terr=$((terr + L_ERR))
        ((L_ERR == 0)) || notes+="latency run $i errors: $L_ERRS; "
        ((L_FOREIGN < FOREIGN_WARN)) || notes+="latency run $i DISTURBED: other processes took ${L_FOREIGN}% of a benchmark core; "
        log "$NAME $n subs latency run $i/$LAT_RUNS (window $LAT_WINDOW): ${L_RATE} deliveries/s, p50 ${L_P50} p90 ${L_P90} p99 ${L_P99} us, last subscriber p50 ${L_C50} p99 ${L_C99} us, others on cores ${L_FOREIGN}%"
    done
    R_RSS[$key]=$(awk -v k="$(peak_rss_kib "$sid")" 'BEGIN{printf "%.1f", k/1024}')
    stop_server "$sid"
    R_NOTE[$key]=${notes%; }
    if ((${#trate[@]})); then
        T_RATE[$key]=$(median "${trate[@]}"); T_P50[$key]=$(median "${tp50[@]}"); T_P90[$key]=$(median "${tp90[@]}")
        T_P99[$key]=$(median "${tp99[@]}"); T_C50[$key]=$(median "${tc50[@]}"); T_C99[$key]=$(median "${tc99[@]}")
        T_ERR[$key]=$terr; T_DONE[$key]=1
    fi
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

native_stamp() {  # the compiled core iodine imports, and when it was built (an editable install
                  # may be rebuilt by someone else while this runs)
    local py f
    py=$(dirname "$IODINE")/python
    f=$(cd / && "$py" -c 'import iodine_py._native as n; print(n.__file__)' 2>/dev/null) || { echo "unknown"; return; }
    echo "${f#$ROOT/} built $(date -u -r "$f" +%Y-%m-%dT%H:%M:%SZ)"
}

# ---------------------------------------------------------------- main
need taskset; need pgrep; need top; need python3; need timeout; need setsid; need lscpu
ensure_ws_load
ensure_peers
raise_nofile
NCPU=$(nproc)
((SERVER_CPU < NCPU && LOAD_CPU < NCPU)) || die "SERVER_CPU/LOAD_CPU must be < $NCPU"

BUSY_BEFORE=$(busy_procs)
[[ -z $BUSY_BEFORE ]] || log "WARNING: other busy processes (%CPU PID COMM) - results may be disturbed:
$BUSY_BEFORE"
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
IODINE_VERSION=$(iodine_version)      # at the start: the tree may change while this runs
NATIVE_BEFORE=$(native_stamp)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "SUBS=\"$SUBS\" SIZE=$SIZE DURATION=${DURATION}s RUNS=$RUNS RUN_WARMUP=${RUN_WARMUP}s WINDOWS=\"$WINDOWS\" SWEEP_DURATION=${SWEEP_DURATION}s RATE=$RATE LAT_WINDOW=$LAT_WINDOW LAT_RUNS=$LAT_RUNS NICE=$NICE nofile=$NOFILE; load average $LOAD_BEFORE; servers: $SERVERS"

for n in $SUBS; do
    if ((GRID)); then grid_count "$n"; continue; fi
    for s in $SERVERS; do bench_one "$s" "$n"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_AFTER=$(busy_procs)
NATIVE_AFTER=$(native_stamp)
[[ $NATIVE_AFTER == "$NATIVE_BEFORE" ]] || log "WARNING: iodine's compiled core changed during the run ($NATIVE_BEFORE -> $NATIVE_AFTER)"

fmt_ms() { awk -v u="$1" 'BEGIN { if (u >= 100000) printf "%.0f", u / 1000; else if (u >= 10000) printf "%.1f", u / 1000; else printf "%.2f", u / 1000 }'; }

best_peer() {    # best_peer N -> name of the measured peer with the most deliveries/s (or "")
    local n=$1 s best="" bv=0
    for s in $SERVERS; do
        [[ $s != iodine && -n ${R_DONE[$s/$n]:-} ]] || continue
        if awk -v a="${R_RATE[$s/$n]}" -v b="$bv" 'BEGIN{exit !(a > b)}'; then bv=${R_RATE[$s/$n]}; best=$s; fi
    done
    echo "$best"
}

TABLES=""
SUMMARY=""
GRID_FAILS=0
grid_tables() {  # GRID=1: per count, every W: each server, and iodine against each peer
    local n w s k ik ok
    for n in $SUBS; do
        echo "### $n subscribers"
        echo
        echo "| W | server | deliveries/s (median) | (min-max) | latency p50 ms | p99 ms | server CPU ns/delivery | server core busy % | ws_load CPU % (kernel %) | errors | iodine / this: deliveries | iodine p99 <= | iodine CPU <= | target |"
        echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
        for w in $WINDOWS; do
            ik=iodine/$n/$w
            for s in $SERVERS; do
                k=$s/$n/$w
                if [[ -z ${R_DONE[$k]:-} ]]; then echo "| $w | $s | ${R_NOTE[$s/$n]:-not run} | | | | | | | | | | | |"; continue; fi
                printf '| %s | %s | %.0f | %s | %s | %s | %.0f | %.0f | %.0f (%.0f) | %d |' "$w" "$s" "${R_RATE[$k]}" "${R_SPREAD[$k]}" \
                    "$(fmt_ms "${R_P50[$k]}")" "$(fmt_ms "${R_P99[$k]}")" "$(awk -v u="${R_CPU[$k]}" 'BEGIN{print u*1000}')" \
                    "${R_SPCT[$k]}" "${R_LOADPCT[$k]}" "${R_LOADSYS[$k]}" "${R_ERR[$k]}"
                if [[ $s == iodine || -z ${R_DONE[$ik]:-} ]]; then echo " | | | |"; continue; fi
                local ratio p99ok cpuok
                ratio=$(awk -v a="${R_RATE[$ik]}" -v b="${R_RATE[$k]}" 'BEGIN{printf "%.2f", a/b}')
                p99ok=$(awk -v a="${R_P99[$ik]}" -v b="${R_P99[$k]}" 'BEGIN{print (a <= b) ? "yes" : "no"}')
                cpuok=$(awk -v a="${R_CPU[$ik]}" -v b="${R_CPU[$k]}" 'BEGIN{print (a <= b) ? "yes" : "no"}')
                ok=met
                if awk -v r="$ratio" 'BEGIN{exit !(r < 1.1)}' || [[ $p99ok == no || $cpuok == no ]]; then ok="NOT met"; GRID_FAILS=$((GRID_FAILS + 1)); fi
                echo " ${ratio}x | $p99ok | $cpuok | $ok |"
            done
        done
        echo
    done
}
if ((GRID)); then TABLES=$(grid_tables)$'\n'; GRID_FAILS=$(grep -c 'NOT met' <<<"$TABLES" || true); fi
for n in $SUBS; do
    ((!GRID)) || break
    ref=""; [[ -n ${R_DONE[iodine/$n]:-} ]] && ref=iodine/$n
    bp=$(best_peer "$n")
    [[ -n $ref ]] || { [[ -z $bp ]] || ref=$bp/$n; }
    ref_label="ours"; [[ $ref == iodine/* ]] || ref_label="${ref%/*} (ours not measured)"
    t=$(
        echo "### $n subscribers"
        echo
        echo "| server | in flight | deliveries/s (median) | ratio to $ref_label | messages published/s | latency p50 ms | p90 ms | p99 ms | last subscriber p50 ms | p99 ms | server CPU µs/delivery | server core busy % | peak RSS MiB | ws_load CPU % | errors |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for s in $SERVERS; do
            k=$s/$n
            if [[ -n ${R_DONE[$k]:-} ]]; then
                printf '| %s | %s | %.0f | %.3f | %.1f | %s | %s | %s | %s | %s | %.3f | %.0f | %s | %.0f | %d |\n' \
                    "$(label "$s")" "${R_WIN[$k]}" "${R_RATE[$k]}" "$(awk -v a="${R_RATE[$k]}" -v b="${R_RATE[$ref]}" 'BEGIN{print a/b}')" \
                    "${R_PUB[$k]}" "$(fmt_ms "${R_P50[$k]}")" "$(fmt_ms "${R_P90[$k]}")" "$(fmt_ms "${R_P99[$k]}")" \
                    "$(fmt_ms "${R_C50[$k]}")" "$(fmt_ms "${R_C99[$k]}")" "${R_CPU[$k]}" "${R_SPCT[$k]}" "${R_RSS[$k]}" \
                    "${R_LOADPCT[$k]}" "${R_ERR[$k]}"
            else
                echo "| $(label "$s") | | ${R_NOTE[$k]:-not run} | | | | | | | | | | | | |"
            fi
        done
        if [[ $WINDOWS == *" "* ]]; then
            echo
            echo "Sweep (deliveries/s of one ${SWEEP_DURATION} s run per number of messages in flight W; the W measured above is the"
            echo "smallest within ${SWEEP_TOLERANCE}% of the best):"
            echo
            for s in $SERVERS; do [[ -z ${SWEEP[$s/$n]:-} ]] || echo "- $(label "$s"): ${SWEEP[$s/$n]}"; done
        fi
        if ((LAT_RUNS > 0)); then
            echo
            echo "Latency with $LAT_WINDOW message(s) in flight (nothing queued behind a fan-out; median of $LAT_RUNS run(s)):"
            echo
            echo "| server | deliveries/s | latency p50 ms | p90 ms | p99 ms | last subscriber p50 ms | p99 ms | errors |"
            echo "|---|---:|---:|---:|---:|---:|---:|---:|"
            for s in $SERVERS; do
                k=$s/$n
                [[ -n ${T_DONE[$k]:-} ]] || continue
                printf '| %s | %.0f | %s | %s | %s | %s | %s | %d |\n' "$(label "$s")" "${T_RATE[$k]}" \
                    "$(fmt_ms "${T_P50[$k]}")" "$(fmt_ms "${T_P90[$k]}")" "$(fmt_ms "${T_P99[$k]}")" \
                    "$(fmt_ms "${T_C50[$k]}")" "$(fmt_ms "${T_C99[$k]}")" "${T_ERR[$k]}"
            done
        fi
        echo
    )
    TABLES+="$t"$'\n\n'
    if [[ -n ${R_DONE[iodine/$n]:-} && -n $bp ]]; then
        SUMMARY+="- $n subscribers: iodine $(printf '%.0f' "${R_RATE[iodine/$n]}") deliveries/s; best peer $(label "$bp") $(printf '%.0f' "${R_RATE[$bp/$n]}"); ours / best peer = $(awk -v a="${R_RATE[iodine/$n]}" -v b="${R_RATE[$bp/$n]}" 'BEGIN{printf "%.2f", a/b}')x"$'\n'
    fi
done

TARGETS=""
if [[ " $SUBS " == *" 10000 "* && -n ${R_DONE[iodine/10000]:-} ]]; then
    r=${R_RATE[iodine/10000]}
    met_rate=$(awk -v a="$r" -v t="$TARGET_RATE" 'BEGIN{print (a >= t) ? "met" : "NOT met"}')
    TARGETS="- at least $TARGET_RATE deliveries/s with 10,000 subscribers and ${SIZE}-byte messages: $(printf '%.0f' "$r") -> $met_rate"$'\n'
    bp=$(best_peer 10000)
    if [[ -n $bp ]]; then
        ratio=$(awk -v a="$r" -v b="${R_RATE[$bp/10000]}" 'BEGIN{printf "%.2f", a/b}')
        met_ratio=$(awk -v x="$ratio" -v t="$TARGET_RATIO" 'BEGIN{print (x >= t) ? "met" : "NOT met"}')
        TARGETS+="- at least ${TARGET_RATIO}x the best peer at 10,000 subscribers: ${ratio}x $(label "$bp") -> $met_ratio"$'\n'
    fi
fi

pkg_versions() {
    "$PEERS_VENV/bin/python" - uvicorn uvloop httptools websockets socketify <<'PY'
import sys, importlib.metadata as m
for p in sys.argv[1:]:
    try: print(f"- {p} {m.version(p)}")
    except m.PackageNotFoundError: print(f"- {p} (not installed)")
PY
}


disturbed=$(for k in "${!R_NOTE[@]}"; do [[ ${R_NOTE[$k]} == *DISTURBED* ]] && echo "$k"; done | sort || true)
rate_desc="as fast as the server takes them"; ((RATE == 0)) || rate_desc="at most $RATE messages/s"

{
    echo "# Pub/sub fan-out benchmark: one publisher, N WebSocket subscribers, one worker each"
    echo
    echo "Generated by \`bench/pubsub.sh\` at $START_TS. One publisher sends ${SIZE}-byte text messages $rate_desc,"
    echo "with at most W in flight (published and not yet received by every subscriber); the server publishes each"
    if ((GRID)); then
        echo "one to every subscriber. Fixed grid: every W in $WINDOWS is measured for every server and"
        echo "subscriber count ($RUNS run(s) of ${DURATION} s each, after the subscribers connected, a sync (one message"
        echo "reached all of them) and ${RUN_WARMUP} s of unrecorded load; medians over runs, min-max of deliveries/s beside them)."
        echo "The servers are interleaved: all run at once (idle while another is measured) and each round measures every"
        echo "server once, every other round in reverse order. The issue's targets per cell:"
        echo "iodine at least 1.1x the peer's deliveries/s, its p99 no higher, its server CPU per delivery no higher."
    else
    echo "one to every subscriber. Per server and subscriber count, a sweep over W = $WINDOWS (one ${SWEEP_DURATION} s run"
    echo "each) picks the smallest W within ${SWEEP_TOLERANCE}% of the most deliveries/s it saw (every server is measured"
    echo "at its own best W; more in flight than that only adds latency), then $RUNS run(s) of ${DURATION} s"
    echo "at that W, each after its subscribers connected, a sync (one message reached all of them) and ${RUN_WARMUP} s"
    echo "of unrecorded load; medians over runs."
    fi
    echo
    if [[ -n $disturbed || -n $BUSY_BEFORE ]]; then
        echo "**Warning: the machine was not idle** (load average $LOAD_BEFORE before, $LOAD_AFTER after). Other busy"
        echo "processes at the start (%CPU PID COMMAND):"
        echo
        echo '```'
        echo "${BUSY_BEFORE:-none}"
        echo '```'
        echo
        [[ -z $disturbed ]] || echo "Runs flagged DISTURBED (see notes): $(echo $disturbed). Their figures are not to be trusted; re-run on a quiet machine."
        echo
    fi
    echo "$TABLES"
    [[ -z $SUMMARY ]] || printf 'Ours against the best peer (deliveries/s):\n\n%s\n' "$SUMMARY"
    [[ -z $TARGETS ]] || printf "The issue's targets:\n\n%s\n" "$TARGETS"
    notes_out=$(
        for n in $SUBS; do for s in $SERVERS; do
            k=$s/$n
            [[ -z ${R_NOTE[$k]:-} ]] || echo "- $(label "$s"), $n subscribers: ${R_NOTE[$k]}"
        done; done
        for sk in "${SKIPPED[@]}"; do echo "- skipped $sk"; done | sort -u
    )
    [[ -z $notes_out ]] || printf 'Notes:\n\n%s\n\n' "$notes_out"
    echo "Columns: deliveries/s = messages received by all subscribers together per second of the measured"
    echo "window. Messages published/s = the publisher's sends in the window (deliveries/s / N when nothing is"
    echo "lost). Latency = the publisher's send timestamp (CLOCK_MONOTONIC, in the message) to a subscriber's"
    echo "receipt, over every delivery in the window, 1 µs histogram buckets; last subscriber = the same for the"
    echo "last of the N receipts of each message (the time one fan-out takes to finish). With W messages in"
    echo "flight a message also waits for the ones ahead of it, so latency there is latency under full load; the"
    echo "last table of each count is $LAT_WINDOW fan-out(s) at a time. Server CPU µs/delivery = the server's processes'"
    echo "utime+stime (/proc/PID/stat, CLK_TCK=$CLK_TCK) over the window / deliveries (the kernel's softirq work on the"
    echo "loopback path is not in it); server core busy % = that CPU time / window (100 = its core is saturated)."
    echo "ws_load CPU % = the load generator's own user+sys / window (near 100: the client may be the limit)."
    echo "Peak RSS = VmHWM summed over the server's processes after all runs at that count. errors = connect"
    echo "failures + failed handshakes + unexpected closes + messages never sent + subscribers' gaps (lost) and"
    echo "reorderings + messages given up (stalled, no fan-out completed for 10 s). A run is flagged DISTURBED when"
    echo "other processes took >= ${FOREIGN_WARN}% of the server's or the load generator's core (user+nice+system time of"
    echo "the core less our process's own; retried up to $RETRIES times, the least disturbed try kept)."
    echo
    echo "Load average before / after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "## Machine"
    echo
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs online; server on CPU $SERVER_CPU, ws_load on CPU $LOAD_CPU, both at nice $NICE"
    echo "- Kernel: $(uname -srm)"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- RLIMIT_NOFILE for the servers: $NOFILE"
    echo "- Python (peers venv): $("$PEERS_VENV/bin/python" -VV | tr '\n' ' ')"
    [[ ! -x $(dirname "$IODINE")/python ]] || echo "- Python (iodine venv): $("$(dirname "$IODINE")/python" -VV | tr '\n' ' ')"
    echo "- ws_load: bench/ws_load.c built with \`$WS_LOAD_BUILD\` ($(cc --version | head -n1))"
    echo
    echo "## Versions"
    echo
    echo "- iodine: $IODINE_VERSION; $NATIVE_BEFORE"
    [[ $NATIVE_AFTER == "$NATIVE_BEFORE" ]] || echo "- **iodine's compiled core was rebuilt during the run** (now $NATIVE_AFTER): servers started after that ran the new build"
    pkg_versions
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "# this report"
    echo "GRID=$GRID SUBS=\"$SUBS\" SIZE=$SIZE DURATION=$DURATION RUNS=$RUNS RUN_WARMUP=$RUN_WARMUP WINDOWS=\"$WINDOWS\" SWEEP_DURATION=$SWEEP_DURATION SWEEP_TOLERANCE=$SWEEP_TOLERANCE RATE=$RATE LAT_WINDOW=$LAT_WINDOW LAT_RUNS=$LAT_RUNS SERVERS=\"$SERVERS\" bench/pubsub.sh"
    echo "# servers, from the repository root (PORT = a free loopback port picked per server and count),"
    echo "# each in a session of its own at autogroup and task nice $NICE, RLIMIT_NOFILE $NOFILE"
    for s in $SERVERS; do
        [[ -z ${CMD_DESC[$s]:-} ]] || echo "${CMD_DESC[$s]}" | sed -E "s#$ROOT/##g; s#--port [0-9]+#--port PORT#; s#-p [0-9]+ #-p PORT #; s#(pubsub_socketify.py) [0-9]+#\\1 PORT#"
    done
    echo "# readiness: repeated until it succeeds (one connection to /echo, one verified echo)"
    echo "build/ws_load -q -m probe -C 1 ws://127.0.0.1:PORT/echo"
    echo "# load, per run (N = subscribers; SERVER_PIDS = the server's processes, for the CPU column)"
    [[ $WINDOWS != *" "* ]] || echo "taskset -c $LOAD_CPU build/ws_load -m fanout -c N -s $SIZE -d $SWEEP_DURATION -w $RUN_WARMUP --window W -r $RATE -C 60 --json --server-pid SERVER_PIDS ws://127.0.0.1:PORT/sub   # sweep: W in $WINDOWS"
    echo "taskset -c $LOAD_CPU build/ws_load -m fanout -c N -s $SIZE -d $DURATION -w $RUN_WARMUP --window BEST_W -r $RATE -C 60 --json --server-pid SERVER_PIDS ws://127.0.0.1:PORT/sub   # x $RUNS"
    ((LAT_RUNS == 0)) || echo "taskset -c $LOAD_CPU build/ws_load -m fanout -c N -s $SIZE -d $DURATION -w $RUN_WARMUP --window $LAT_WINDOW -r $RATE -C 60 --json --server-pid SERVER_PIDS ws://127.0.0.1:PORT/sub   # x $LAT_RUNS"
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
printf '%s\n' "$TABLES"
[[ -z $SUMMARY ]] || printf '%s' "$SUMMARY"
[[ -z $TARGETS ]] || printf '%s' "$TARGETS"
log "load average before/after: $LOAD_BEFORE / $LOAD_AFTER; report written to ${OUT#$ROOT/}"
if ((${#FAILED[@]})); then log "FAILED: ${FAILED[*]}"; exit 1; fi
