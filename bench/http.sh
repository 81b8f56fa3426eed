#!/usr/bin/env bash
# bench/http.sh - reproducible HTTP/1.1 benchmark: iodine vs uvicorn, granian, gunicorn, bjoern, nginx.
#
# Usage:  bench/http.sh            (full run: RUNS=3 x 10 s x 50 connections per server)
#         DURATION=3 RUNS=1 bench/http.sh      (quick iteration)
#
# Every server runs ONE worker process, pinned to CPU $SERVER_CPU (default 1);
# the load generator runs with ONE thread pinned to CPU $WRK_CPU (default 0). See bench/README.md.
#
# LOAD picks the load generator: `c` (default) is bench/http_load.c, an epoll keep-alive client
# that costs less per request than wrk, so on two cores the server is what runs out of CPU (wrk
# at 90-100% of its core made req/s a measure of wrk); `wrk` is wrk -t1 with bench/report.lua
# and bench/pipeline.lua. Both print the same BENCH line; the report names the one used, and
# its CPU % column says whether the client was the bottleneck.
#
# Environment overrides (defaults in brackets):
#   LOAD [c]       c (bench/http_load.c) | wrk
#   DURATION [10]  seconds per run            CONNS [50]  connections
#   RUNS [3]       plain runs per server      THREADS [1] wrk threads
#   WARMUP [2]     warm-up seconds per server once it started (not recorded)
#   RUN_WARMUP [1] warm-up seconds before each recorded run (not recorded)
#   Runs are interleaved: every server is started first, then each of the RUNS rounds measures
#   each server once (every other round in reverse order), so drift hits all servers alike.
#   PIPELINE_DEPTH [16] requests per write in the pipelined run
#   SERVERS ["iodine uvicorn granian gunicorn bjoern nginx"]  which servers, in order
#   (bjoern: C WSGI server, from PyPI, needs libev-dev from apt; nginx: from apt, `return 200`)
#   IODINE [/work/main/.venv/bin/iodine]  our server's CLI    IODINE_ARGS ["-t 1"]  its threads/workers
#   PEERS_VENV [bench/.venv-peers]        venv holding the peers (created if missing)
#   GUNICORN_WORKER [gthread]  GUNICORN_THREADS [4]   (fastest of sync, gthread x1/2/4/8/16 here)
#   SERVER_CPU [1]  WRK_CPU [0]  READY_TIMEOUT [30]
#   NICE [-20 as root, else 0]  nice level of server and wrk (shields them from other work)
#   FOREIGN_WARN [10]  flag a run when other processes took >= this % of the server's or wrk's core
#   OUT [bench/results/http-latest.md; with LOAD=wrk: http-wrk-latest.md]
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

DURATION=${DURATION:-10}; DURATION=${DURATION%s}
CONNS=${CONNS:-50}
RUNS=${RUNS:-3}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}; WARMUP=${WARMUP%s}
RUN_WARMUP=${RUN_WARMUP:-1}; RUN_WARMUP=${RUN_WARMUP%s}
PIPELINE_DEPTH=${PIPELINE_DEPTH:-16}
LOAD=${LOAD:-c}
[[ $LOAD == c || $LOAD == wrk ]] || { echo "http.sh: LOAD must be c or wrk" >&2; exit 2; }
SERVERS=${SERVERS:-"iodine uvicorn granian gunicorn bjoern nginx"}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
IODINE_ARGS=${IODINE_ARGS:-"-t 1"}   # e.g. "-t 4" (app on a pool) or "-t 1 -w 2" (all on SERVER_CPU)
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
GUNICORN_WORKER=${GUNICORN_WORKER:-gthread}
GUNICORN_THREADS=${GUNICORN_THREADS:-4}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
READY_TIMEOUT=${READY_TIMEOUT:-30}
FOREIGN_WARN=${FOREIGN_WARN:-10}
# Other work on this shared 2-core machine (builds, fuzzers) would take CPU from the server and wrk.
# By default both run at nice -20 (CFS weight ~87x a nice-0 task; needs root). With the kernel's
# autogroup scheduling (sched_autogroup_enabled=1) a task's nice only counts inside its session, so
# each of them also gets a session of its own (setsid) whose autogroup nice is set to the same
# value (/proc/self/autogroup) before exec. NICE=0 turns all of this off.
if [[ -z ${NICE+x} ]]; then if ((EUID == 0)); then NICE=-20; else NICE=0; fi; fi
[[ $NICE =~ ^-?[0-9]+$ ]] || { echo "http.sh: NICE must be an integer" >&2; exit 2; }
PRIO_CMD=()    # prefix: new session, autogroup nice, task nice
NICE_CMD=()    # the same, as shown in the report
if ((NICE != 0)); then
    PRIO_CMD=(setsid sh -c 'echo "$0" >/proc/self/autogroup 2>/dev/null; exec "$@"' "$NICE" nice -n "$NICE")
    NICE_CMD=(nice -n "$NICE")
fi
if [[ $LOAD == c ]]; then OUT=${OUT:-$HERE/results/http-latest.md}; else OUT=${OUT:-$HERE/results/http-wrk-latest.md}; fi
PEER_PKGS=(uvicorn httptools uvloop granian gunicorn bjoern)

for v in DURATION CONNS RUNS THREADS WARMUP RUN_WARMUP PIPELINE_DEPTH SERVER_CPU WRK_CPU READY_TIMEOUT GUNICORN_THREADS FOREIGN_WARN; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "http.sh: $v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
# Bound every load loop: no run longer than 5 min, no more than 20 repetitions.
(( DURATION >= 1 && DURATION <= 300 )) || { echo "http.sh: DURATION must be 1..300 s" >&2; exit 2; }
(( RUNS >= 1 && RUNS <= 20 )) || { echo "http.sh: RUNS must be 1..20" >&2; exit 2; }
(( WARMUP <= 60 )) || { echo "http.sh: WARMUP must be <= 60 s" >&2; exit 2; }

CLK_TCK=$(getconf CLK_TCK)
LOGDIR=$HERE/results/logs
mkdir -p "$LOGDIR" "$(dirname "$OUT")"

log() { printf '[http.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# ---------------------------------------------------------------- cleanup
SERVER_PIDS=()   # session leaders of servers we started (each in its own session)
WRK_PID=""

stop_server() {   # stop_server PID: TERM the whole session, then KILL after a deadline
    local sid=$1 pids i
    pids=$(pgrep -s "$sid" 2>/dev/null || true)
    [[ -n $pids ]] || return 0
    kill -TERM -- "-$sid" 2>/dev/null || true
    kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do           # up to 5 s for a graceful stop
        pids=$(pgrep -s "$sid" 2>/dev/null || true)
        [[ -z $pids ]] && break
        sleep 0.1
    done
    if [[ -n $pids ]]; then
        kill -KILL -- "-$sid" 2>/dev/null || true
        kill -KILL $pids 2>/dev/null || true
    fi
    wait "$sid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM HUP PIPE    # finish cleaning up even if interrupted again
    [[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null || true
    local p
    for p in "${SERVER_PIDS[@]}"; do stop_server "$p"; done
    SERVER_PIDS=()
    exit "$rc"
}
trap cleanup EXIT
# Ctrl-C / kill: a piped-to tee may already be gone, so ignore SIGPIPE before logging; the EXIT
# trap then stops wrk and every server we started.
trap 'trap "" PIPE; log "interrupted" || true; exit 130' INT
trap 'trap "" PIPE; log "terminated" || true; exit 143' TERM HUP

# ---------------------------------------------------------------- helpers
need() { command -v "$1" >/dev/null 2>&1 || { echo "http.sh: '$1' not found${2:+ ($2)}" >&2; exit 1; }; }

ensure_wrk() {
    command -v wrk >/dev/null 2>&1 && return 0
    log "wrk missing: installing it with apt-get (waiting for the dpkg lock if another apt job holds it)"
    # -o DPkg::Lock::Timeout makes apt wait for a concurrent apt/dpkg instead of failing.
    apt-get -o DPkg::Lock::Timeout=600 install -y wrk >&2 \
        || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y wrk >&2; }
    need wrk
}

ensure_peers() {
    if [[ $SERVERS == *bjoern* && ! -e /usr/include/ev.h ]]; then   # bjoern builds against libev
        log "libev-dev missing (bjoern needs it): installing it with apt-get"
        apt-get -o DPkg::Lock::Timeout=600 install -y libev-dev >&2 \
            || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y libev-dev >&2; }
    fi
    if [[ $SERVERS == *nginx* ]] && ! command -v nginx >/dev/null 2>&1; then
        log "nginx missing: installing nginx-light with apt-get"
        apt-get -o DPkg::Lock::Timeout=600 install -y nginx-light >&2 \
            || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && apt-get -o DPkg::Lock::Timeout=600 install -y nginx-light >&2; }
    fi
    if [[ ! -x $PEERS_VENV/bin/python ]] || ! "$PEERS_VENV/bin/python" -c 'import uvicorn, httptools, uvloop, granian, gunicorn, bjoern' 2>/dev/null; then
        log "creating peers venv $PEERS_VENV"
        python3 -m venv "$PEERS_VENV"
        "$PEERS_VENV/bin/pip" install -q --disable-pip-version-check 'uvicorn[standard]' httptools uvloop granian gunicorn bjoern >&2
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

session_pids() { pgrep -s "$1" 2>/dev/null || true; }

cpu_ticks() {      # utime+stime (clock ticks) summed over every live process of the session
    local total=0 p rest f
    for p in $(session_pids "$1"); do
        rest=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${rest##*) }                       # drop "pid (comm) " - comm may hold spaces
        read -r -a f <<<"$rest"
        # after comm: f[0]=state ... utime is field 14 => f[11], stime field 15 => f[12]
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

core_busy_ticks() {  # user+nice+system ticks of one CPU from /proc/stat (irq/softirq excluded)
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 }' /proc/stat
}

peak_rss_kib() {   # VmHWM summed over the session's processes
    local total=0 p v
    for p in $(session_pids "$1"); do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

median() {         # median of the numeric arguments
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.10g\n", (a[NR/2]+a[NR/2+1])/2}'
}

wait_ready() {     # wait_ready PID URL LOGFILE: poll until the server answers 200, with a deadline
    local pid=$1 url=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server exited before becoming ready; last log lines:"; tail -n 30 "$logf" >&2
            return 1
        fi
        if curl -fsS -m 1 -o /dev/null "$url" 2>/dev/null; then return 0; fi
        sleep 0.05    # polling interval, not synchronisation: readiness = a successful request
    done
    log "server not ready after ${READY_TIMEOUT}s; last log lines:"; tail -n 30 "$logf" >&2
    return 1
}

# run_wrk NAME TAG SCRIPT SECONDS -> sets W_REQ W_RPS W_P99US W_ERR W_NON2XX W_CPU_TICKS
run_wrk() {
    local name=$1 tag=$2 script=$3 secs=$4 sid=$5 raw t0 t1 c0 c1 b0 b1 w0 w1 line
    raw=$LOGDIR/$name.wrk-$tag.txt
    b0=$(core_busy_ticks "$SERVER_CPU"); w0=$(core_busy_ticks "$WRK_CPU")
    t0=$(cpu_ticks "$sid")
    times >"$TIMES_FILE"; c0=$(children_cpu_ms)
    if [[ $LOAD == c ]]; then   # the pipelined script's depth, or one request in flight
        local depth=1
        [[ $script == *pipeline.lua ]] && depth=$PIPELINE_DEPTH
        timeout -k 5 $((secs + 60)) "${PRIO_CMD[@]}" taskset -c "$WRK_CPU" \
            "$HTTP_LOAD" -p "$CUR_PORT" -c "$CONNS" -P "$depth" -d "$secs" -w 0 >"$raw" 2>&1 &
    else
        PIPELINE_DEPTH=$PIPELINE_DEPTH timeout -k 5 $((secs + 60)) \
            "${PRIO_CMD[@]}" taskset -c "$WRK_CPU" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --latency -s "$script" "$URL" >"$raw" 2>&1 &
    fi
    WRK_PID=$!
    wait "$WRK_PID" || { local rc=$?; WRK_PID=""; log "wrk failed (rc=$rc):"; cat "$raw" >&2; return 1; }
    WRK_PID=""
    t1=$(cpu_ticks "$sid")
    b1=$(core_busy_ticks "$SERVER_CPU"); w1=$(core_busy_ticks "$WRK_CPU")
    times >"$TIMES_FILE"; c1=$(children_cpu_ms)
    line=$(grep '^BENCH ' "$raw" | tail -n 1)
    [[ -n $line ]] || { log "no BENCH line in wrk output:"; cat "$raw" >&2; return 1; }
    local kv k v
    W_REQ=0 W_RPS=0 W_P99US=0 W_ERR=0 W_NON2XX=0
    for kv in ${line#BENCH }; do
        k=${kv%%=*}; v=${kv#*=}
        case $k in
            requests) W_REQ=$v ;; rps) W_RPS=$v ;; p99_us) W_P99US=$v ;;
            errors) W_ERR=$v ;; non2xx) W_NON2XX=$v ;;
        esac
    done
    W_CPU_TICKS=$((t1 - t0))
    # wrk's own CPU use as a share of its one core over the run (~100 => the client is the bottleneck)
    W_WRK_PCT=$(awk -v c="$((c1 - c0))" -v s="$secs" 'BEGIN{printf "%.0f", c / 10 / s}')
    # CPU time other processes took on each benchmark core during the run (user+nice+system of
    # that core minus the server's, resp. wrk's, own): anything well above 0 means the run was
    # disturbed by other work on the machine. Max of the two cores.
    W_FOREIGN_PCT=$(awk -v b="$((b1 - b0))" -v t="$W_CPU_TICKS" -v wb="$((w1 - w0))" -v wc="$((c1 - c0))" \
        -v s="$secs" -v hz="$CLK_TCK" 'BEGIN{
            f = (b - t) * 100 / hz / s; g = (wb * 1000 / hz - wc) / 10 / s
            if (g > f) f = g; if (f < 0) f = 0; printf "%.0f", f }')
}

TIMES_FILE=$LOGDIR/.times
# Client (wrk) CPU: the caller runs the `times` builtin in the main shell (never in a subshell,
# which would report its own children) into $TIMES_FILE; this parses line 2 = reaped children's
# user+sys, which includes wrk (waited for by `timeout`, itself waited for by this shell), in ms.
children_cpu_ms() {
    awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); t += a[1] * 60 + a[2] }
        printf "%d", t * 1000 }' "$TIMES_FILE"
}

us_per_req() {     # us_per_req TICKS REQUESTS
    awk -v t="$1" -v r="$2" -v hz="$CLK_TCK" 'BEGIN { if (r > 0) printf "%.2f", t * 1e6 / hz / r; else print "n/a" }'
}

# ---------------------------------------------------------------- server definitions
declare -A CMD_DESC          # printable start command per server
declare -A R_RPS R_P99 R_CPU R_PRPS R_PCPU R_RSS R_NOTE R_DONE R_WRK R_PWRK R_SPREAD PORT_OF
SKIPPED=()
FAILED=()

server_cmd() {     # server_cmd NAME PORT -> fills array SCMD; returns 1 if unavailable
    local name=$1 port=$2
    case $name in
        iodine)
            if [[ ! -x $IODINE ]]; then
                SKIPPED+=("iodine: $IODINE does not exist yet (set IODINE=/path/to/iodine)")
                return 1
            fi
            local extra
            read -r -a extra <<<"$IODINE_ARGS"
            SCMD=("$IODINE" "$HERE/apps/hello_wsgi.py" -p "$port" -b 127.0.0.1 "${extra[@]}") ;;
        uvicorn)
            SCMD=("$PEERS_VENV/bin/uvicorn" hello_asgi:app --app-dir "$HERE/apps"
                  --host 127.0.0.1 --port "$port" --workers 1
                  --loop uvloop --http httptools --no-access-log --log-level warning) ;;
        granian)
            SCMD=("$PEERS_VENV/bin/granian" --interface wsgi --working-dir "$HERE/apps"
                  --host 127.0.0.1 --port "$port" --workers 1 --http 1 --no-ws
                  --log-level warning hello_wsgi:app) ;;
        gunicorn)
            SCMD=("$PEERS_VENV/bin/gunicorn" --chdir "$HERE/apps" -b "127.0.0.1:$port"
                  -w 1 -k "$GUNICORN_WORKER" --threads "$GUNICORN_THREADS"
                  --log-level warning hello_wsgi:app) ;;
        bjoern)   # bjoern has no CLI: bjoern.run(app, host, port), one process
            SCMD=("$PEERS_VENV/bin/python" -c "import sys, bjoern; sys.path.insert(0, '$HERE/apps'); import hello_wsgi; bjoern.run(hello_wsgi.app, '127.0.0.1', $port)") ;;
        nginx)    # the floor: no application at all, one process (no master), same body
            local dir=$LOGDIR/nginx
            mkdir -p "$dir"
            cat >"$dir/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $dir/nginx.pid; error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 100000000; server_tokens off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
  server { listen 127.0.0.1:$port; location / { default_type text/plain; return 200 "Hello World"; } }
}
EOF
            SCMD=(nginx -c "$dir/nginx.conf" -p "$dir") ;;
        *) echo "http.sh: unknown server '$name'" >&2; exit 2 ;;
    esac
}

# Servers are measured interleaved: all are started first (each on SERVER_CPU, idle while the
# others are measured), then each round runs every server once (the order reversed every other
# round), so a drift of the machine's speed over the run falls on all of them alike instead of
# on whichever server came last. Each run is preceded by RUN_WARMUP s of unrecorded load, since
# the previous run warmed another server's caches.
declare -A SID_OF RUN_RPS RUN_P99 RUN_CPU RUN_WRK RUN_NOTES

start_server() {
    local name=$1 port logf pid
    port=$(free_port)
    SCMD=()
    server_cmd "$name" "$port" || { log "SKIP $name: ${SKIPPED[-1]#*: }"; return 0; }
    PORT_OF[$name]=$port
    logf=$LOGDIR/$name.server.log
    CMD_DESC[$name]="${NICE_CMD[*]}${NICE_CMD:+ }taskset -c $SERVER_CPU ${SCMD[*]}"
    log "starting $name on port $port: ${CMD_DESC[$name]}"
    # setsid: own session/process group, so the whole tree (arbiter + workers) can be
    # measured with pgrep -s and stopped with one group kill.
    if ((${#PRIO_CMD[@]})); then
        "${PRIO_CMD[@]}" taskset -c "$SERVER_CPU" "${SCMD[@]}" >"$logf" 2>&1 </dev/null &
    else
        setsid taskset -c "$SERVER_CPU" "${SCMD[@]}" >"$logf" 2>&1 </dev/null &
    fi
    pid=$!
    SERVER_PIDS+=("$pid")
    if ! wait_ready "$pid" "http://127.0.0.1:$port/" "$logf"; then
        R_NOTE[$name]="failed to start (log: ${logf#$ROOT/})"; FAILED+=("$name"); stop_server "$pid"; return 0
    fi
    # the hello response as this server sends it (for the report)
    curl -sS -m 2 -i "http://127.0.0.1:$port/" | tr -d '\r' >"$LOGDIR/$name.response.txt" || true
    SID_OF[$name]=$pid
    log "$name ready (pid $pid)"
}

use_server() { CUR_PORT=${PORT_OF[$1]}; URL="http://127.0.0.1:$CUR_PORT/"; }

measure_run() {   # measure_run NAME I: one recorded run (after its warm-up), appended to RUN_*[NAME]
    local name=$1 i=$2 pid=${SID_OF[$1]} p99 cpu
    use_server "$name"
    if ((RUN_WARMUP > 0)); then run_wrk "$name" warmup "$HERE/report.lua" "$RUN_WARMUP" "$pid"; fi
    run_wrk "$name" "run$i" "$HERE/report.lua" "$DURATION" "$pid"
    p99=$(awk -v u="$W_P99US" 'BEGIN{printf "%.3f", u/1000}')
    cpu=$(us_per_req "$W_CPU_TICKS" "$W_REQ")
    RUN_RPS[$name]+="$W_RPS "; RUN_P99[$name]+="$p99 "; RUN_CPU[$name]+="$cpu "; RUN_WRK[$name]+="$W_WRK_PCT "
    ((W_ERR + W_NON2XX > 0)) && RUN_NOTES[$name]+="run$i: ${W_ERR} socket errors, ${W_NON2XX} non-2xx; "
    ((W_FOREIGN_PCT >= FOREIGN_WARN)) && RUN_NOTES[$name]+="run$i DISTURBED: other processes used ${W_FOREIGN_PCT}% of a benchmark core; "
    log "$name run $i/$RUNS: ${W_RPS} req/s, p99 $p99 ms, $cpu us/req CPU, $LOAD at ${W_WRK_PCT}% of its core, others on cores ${W_FOREIGN_PCT}% (errors ${W_ERR}, non-2xx ${W_NON2XX})"
}

finish_server() {  # medians of the runs, then the pipelined run, RSS, stop
    local name=$1 pid=${SID_OF[$1]} notes
    notes=${RUN_NOTES[$name]:-}
    # shellcheck disable=SC2086
    {
        R_RPS[$name]=$(median ${RUN_RPS[$name]}); R_P99[$name]=$(median ${RUN_P99[$name]})
        R_CPU[$name]=$(median ${RUN_CPU[$name]}); R_WRK[$name]=$(median ${RUN_WRK[$name]})
        R_SPREAD[$name]="$(printf '%s\n' ${RUN_RPS[$name]} | sort -g | awk 'NR==1{a=$1} {b=$1} END{printf "%.0f-%.0f", a, b}')"
    }
    use_server "$name"
    if ((RUN_WARMUP > 0)); then run_wrk "$name" warmup "$HERE/pipeline.lua" "$RUN_WARMUP" "$pid"; fi
    run_wrk "$name" pipelined "$HERE/pipeline.lua" "$DURATION" "$pid"
    R_PRPS[$name]=$W_RPS
    R_PCPU[$name]=$(us_per_req "$W_CPU_TICKS" "$W_REQ")
    R_PWRK[$name]=$W_WRK_PCT
    ((W_ERR + W_NON2XX > 0)) && notes+="pipelined: ${W_ERR} socket errors, ${W_NON2XX} non-2xx; "
    ((W_FOREIGN_PCT >= FOREIGN_WARN)) && notes+="pipelined DISTURBED: other processes used ${W_FOREIGN_PCT}% of a benchmark core; "
    log "$name pipelined x$PIPELINE_DEPTH: ${W_RPS} req/s, ${R_PCPU[$name]} us/req CPU, $LOAD at ${W_WRK_PCT}%, others on cores ${W_FOREIGN_PCT}% (errors ${W_ERR}, non-2xx ${W_NON2XX})"
    R_RSS[$name]=$(awk -v k="$(peak_rss_kib "$pid")" 'BEGIN{printf "%.1f", k/1024}')
    R_NOTE[$name]=${notes%; }
    R_DONE[$name]=1
    stop_server "$pid"
}

# ---------------------------------------------------------------- main
need taskset; need curl; need pgrep; need python3; need timeout
if [[ $LOAD == wrk ]]; then ensure_wrk; fi
ensure_peers
HTTP_LOAD=$LOGDIR/http_load
if [[ $LOAD == c ]]; then
    need cc
    cc -O2 -std=c11 -Wall -Wextra -o "$HTTP_LOAD" "$HERE/http_load.c" || { echo "http.sh: building bench/http_load.c failed" >&2; exit 1; }
fi
NCPU=$(nproc)
((SERVER_CPU < NCPU && WRK_CPU < NCPU)) || { echo "http.sh: SERVER_CPU/WRK_CPU must be < $NCPU" >&2; exit 2; }

busy_now=$(ps -eo pcpu=,pid=,comm= --sort=-pcpu | awk '$1 >= 20' | head -n 5)
[[ -z $busy_now ]] || log "WARNING: other busy processes (%CPU PID COMM) - results will be disturbed:
$busy_now"
START_TS=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "LOAD=$LOAD NICE=$NICE DURATION=${DURATION}s CONNS=$CONNS RUNS=$RUNS THREADS=$THREADS WARMUP=${WARMUP}s PIPELINE_DEPTH=$PIPELINE_DEPTH servers: $SERVERS"

for s in $SERVERS; do start_server "$s"; done
LIVE=()
for s in $SERVERS; do [[ -z ${SID_OF[$s]:-} ]] || LIVE+=("$s"); done
if ((WARMUP > 0)); then
    for s in "${LIVE[@]}"; do use_server "$s"; log "$s: warm-up ${WARMUP}s"; run_wrk "$s" warmup "$HERE/report.lua" "$WARMUP" "${SID_OF[$s]}"; done
fi
for ((round = 1; round <= RUNS; round++)); do
    order=("${LIVE[@]}")
    if ((round % 2 == 0)); then   # every other round in reverse: no server always runs first
        order=(); for ((k = ${#LIVE[@]} - 1; k >= 0; k--)); do order+=("${LIVE[k]}"); done
    fi
    for s in "${order[@]}"; do measure_run "$s" "$round"; done
done
for s in "${LIVE[@]}"; do finish_server "$s"; done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# reference for the ratio column: ours if measured, else the best peer
REF=""
if [[ -n ${R_DONE[iodine]:-} ]]; then
    REF=iodine
else
    best=0
    for s in $SERVERS; do
        [[ -n ${R_DONE[$s]:-} ]] || continue
        if awk -v a="${R_RPS[$s]}" -v b="$best" 'BEGIN{exit !(a > b)}'; then best=${R_RPS[$s]}; REF=$s; fi
    done
fi
[[ -n $REF ]] || { log "no server was measured"; exit 1; }

label() {
    case $1 in
        iodine) echo "iodine (ours, $IODINE_ARGS)" ;;
        uvicorn) echo "uvicorn (httptools+uvloop, ASGI)" ;;
        granian) echo "granian (WSGI)" ;;
        gunicorn) echo "gunicorn ($GUNICORN_WORKER, threads=$GUNICORN_THREADS)" ;;
        bjoern) echo "bjoern (C, WSGI; no pipelining)" ;;
        nginx) echo "nginx return 200 (no app)" ;;
    esac
}

ratio_hdr="ratio to ours"
[[ $REF == iodine ]] || ratio_hdr="ratio to best peer ($REF; ours not measured)"

TABLE=$(
    echo "| server | req/s (median) | req/s (min-max) | $ratio_hdr | p99 ms (median) | CPU us/req | pipelined req/s (x$PIPELINE_DEPTH) | pipelined CPU us/req | peak RSS MiB | $LOAD CPU % (plain / pipelined) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for s in $SERVERS; do
        if [[ -n ${R_DONE[$s]:-} ]]; then
            ratio=$(awk -v a="${R_RPS[$s]}" -v b="${R_RPS[$REF]}" 'BEGIN{printf "%.2f", a/b}')
            printf '| %s | %.0f | %s | %s | %.2f | %s | %.0f | %s | %s | %s / %s |\n' "$(label "$s")" "${R_RPS[$s]}" "${R_SPREAD[$s]}" "$ratio" \
                "${R_P99[$s]}" "${R_CPU[$s]}" "${R_PRPS[$s]}" "${R_PCPU[$s]}" "${R_RSS[$s]}" "${R_WRK[$s]}" "${R_PWRK[$s]}"
        else
            if [[ -n ${R_NOTE[$s]:-} ]]; then echo "| $(label "$s") | failed to start | | | | | | | | |"
            else echo "| $(label "$s") | skipped | | | | | | | | |"; fi
        fi
    done
)

pkg_versions() {
    "$PEERS_VENV/bin/python" - "${PEER_PKGS[@]}" <<'PY'
import sys, importlib.metadata as m
for p in sys.argv[1:]:
    try: print(f"- {p} {m.version(p)}")
    except m.PackageNotFoundError: print(f"- {p} (not installed)")
PY
}

iodine_version() {
    [[ -x $IODINE ]] || { echo "not present ($IODINE)"; return; }
    local py; py=$(dirname "$IODINE")/python
    local v=""
    [[ -x $py ]] && v=$("$py" -c '
import importlib.metadata as m
for n in ("iodine-py", "iodine_py", "iodine"):
    try: print(n, m.version(n)); break
    except m.PackageNotFoundError: pass' 2>/dev/null || true)
    local rev; rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
    echo "${v:-unknown version} (git $rev; $IODINE)"
}

{
    echo "# HTTP benchmark: hello world, one worker each"
    echo
    echo "Generated by \`bench/http.sh\` at $START_TS. See bench/README.md for what each column means."
    echo
    echo "$TABLE"
    echo
    notes_out=$(
        for s in $SERVERS; do
            if [[ -n ${R_NOTE[$s]:-} ]]; then echo "- $(label "$s"): ${R_NOTE[$s]}"; fi
        done
        for sk in "${SKIPPED[@]}"; do echo "- skipped $sk"; done
    )
    [[ -z $notes_out ]] || printf '%s\n\n' "$notes_out"
    echo "Settings: DURATION=${DURATION}s, CONNS=$CONNS, RUNS=$RUNS interleaved rounds (each round measures every server"
    echo "once, every other round in reverse order; median of runs for req/s, p99 and CPU us/req; the pipelined column is one"
    echo "run), THREADS=$THREADS, WARMUP=${WARMUP}s per server, RUN_WARMUP=${RUN_WARMUP}s before each run, PIPELINE_DEPTH=$PIPELINE_DEPTH,"
    echo "server on CPU $SERVER_CPU, the load generator ($LOAD) on CPU $WRK_CPU, both at nice $NICE. CPU us/req = server process tree (utime+stime from"
    echo "/proc/PID/stat, CLK_TCK=$CLK_TCK) during the run / requests completed. Peak RSS = VmHWM summed over"
    echo "the server's processes. $LOAD CPU % = the load generator's user+sys time / run length (100 = its one core is saturated,"
    echo "so req/s is then a client limit, not a server limit). Load average before/after: $LOAD_BEFORE / $LOAD_AFTER."
    echo
    echo "## Machine"
    echo
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs online"
    echo "- Kernel: $(uname -srm)"
    echo "- OS: $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- Python (peers venv): $("$PEERS_VENV/bin/python" -VV | tr '\n' ' ')"
    [[ ! -x $(dirname "$IODINE")/python ]] || echo "- Python (iodine venv): $("$(dirname "$IODINE")/python" -VV | tr '\n' ' ')"
    if [[ $LOAD == wrk ]]; then echo "- wrk: $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2, $3}')"
    else echo "- load generator: bench/http_load.c ($(cc --version | head -n1), -O2)"; fi
    echo
    echo "## Versions"
    echo
    echo "- iodine: $(iodine_version)"
    pkg_versions
    ! command -v nginx >/dev/null 2>&1 || echo "- nginx $(nginx -v 2>&1 | sed 's#.*/##')"
    echo
    echo "## Commands"
    echo
    echo '```sh'
    echo "# this report"
    echo "IODINE_ARGS=\"$IODINE_ARGS\" LOAD=$LOAD NICE=$NICE DURATION=$DURATION CONNS=$CONNS RUNS=$RUNS THREADS=$THREADS WARMUP=$WARMUP RUN_WARMUP=$RUN_WARMUP PIPELINE_DEPTH=$PIPELINE_DEPTH SERVERS=\"$SERVERS\" GUNICORN_WORKER=$GUNICORN_WORKER GUNICORN_THREADS=$GUNICORN_THREADS bench/http.sh"
    if ((NICE != 0)); then
        echo "# every server and wrk below is started in a session of its own with autogroup nice $NICE, i.e. prefixed by:"
        echo "#   setsid sh -c 'echo \"\$0\" >/proc/self/autogroup; exec \"\$@\"' $NICE"
    fi
    echo "# servers (PORT = a free loopback port picked per run)"
    for s in $SERVERS; do [[ -z ${CMD_DESC[$s]:-} ]] || echo "${CMD_DESC[$s]}" | sed "s#$ROOT/##g; s#127.0.0.1:[0-9]*#127.0.0.1:PORT#; s#--port [0-9]*#--port PORT#; s#-p [0-9]* #-p PORT #"; done
    echo "# load (plain runs, then the pipelined run)"
    if [[ $LOAD == wrk ]]; then
        echo "${NICE_CMD[*]}${NICE_CMD:+ }taskset -c $WRK_CPU wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/report.lua http://127.0.0.1:PORT/"
        echo "PIPELINE_DEPTH=$PIPELINE_DEPTH ${NICE_CMD[*]}${NICE_CMD:+ }taskset -c $WRK_CPU wrk -t$THREADS -c$CONNS -d${DURATION}s --latency -s bench/pipeline.lua http://127.0.0.1:PORT/"
    else
        echo "cc -O2 -std=c11 -o http_load bench/http_load.c"
        echo "${NICE_CMD[*]}${NICE_CMD:+ }taskset -c $WRK_CPU http_load -p PORT -c $CONNS -P 1 -d $DURATION -w 0"
        echo "${NICE_CMD[*]}${NICE_CMD:+ }taskset -c $WRK_CPU http_load -p PORT -c $CONNS -P $PIPELINE_DEPTH -d $DURATION -w 0"
    fi
    echo '```'
    echo
    echo "## Responses as sent (curl -i)"
    echo
    for s in $SERVERS; do
        [[ -f $LOGDIR/$s.response.txt && -n ${CMD_DESC[$s]:-} ]] || continue
        echo "$(label "$s"):"
        echo '```'
        cat "$LOGDIR/$s.response.txt"; echo
        echo '```'
    done
} >"$OUT"

echo
echo "$TABLE"
echo
for sk in "${SKIPPED[@]}"; do echo "skipped $sk"; done
log "report written to ${OUT#$ROOT/}"
if ((${#FAILED[@]})); then log "FAILED to start: ${FAILED[*]}"; exit 1; fi
