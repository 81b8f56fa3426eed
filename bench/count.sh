#!/usr/bin/env bash
# bench/count.sh - what a server spends per request, counted rather than timed:
# user-space instructions (callgrind: perf has no hardware counters on this VM)
# and system calls (strace -c)
# over a fixed number of keep-alive requests from bench/fixed_load.c. These
# counts barely move with the machine's load, unlike req/s (see BENCHMARKS.md).
#
# Usage: bench/count.sh [SERVER...]      SERVER: iodine iodine-t4 iodine-w2 bjoern nginx
#   TOTAL [200000] requests   CONNS [50]   DEPTH [1] (16: pipelined)
#   MODE [callgrind] callgrind (user-space instructions) | strace (syscalls) | cpu (user/sys us from /proc: load-dependent)   IODINE [.venv/bin/iodine]  PEERS_VENV [bench/.venv-peers]
# Prints one line per server: instructions (user, kernel) and syscalls per request.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TOTAL=${TOTAL:-200000}; CONNS=${CONNS:-50}; DEPTH=${DEPTH:-1}; MODE=${MODE:-callgrind}
IODINE=${IODINE:-$ROOT/.venv/bin/iodine}
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
for v in TOTAL CONNS DEPTH; do [[ ${!v} =~ ^[0-9]+$ ]] || { echo "count.sh: $v must be a number" >&2; exit 2; }; done
((TOTAL >= 1000 && TOTAL <= 5000000)) || { echo "count.sh: TOTAL 1000..5000000" >&2; exit 2; }
LOAD=/tmp/iodine-fixed-load.$$
gcc -O2 -o "$LOAD" "$HERE/fixed_load.c"
WORK=$(mktemp -d)
PID=""
sid=""
cleanup() { [[ -z $PID ]] || { kill -TERM -- "-$sid" 2>/dev/null; wait "$PID" 2>/dev/null; }; rm -rf "$WORK" "$LOAD"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

start() {   # start NAME PORT: the server in a session of its own, pid in PID
    local name=$1 p=$2 vg=()
    [[ $MODE != callgrind ]] || vg=(valgrind -q --tool=callgrind --trace-children=yes --dump-instr=no "--callgrind-out-file=$WORK/cg.%p")
    case $name in
        iodine)    setsid "${vg[@]}" "$ROOT/.venv/bin/python" "$IODINE" "$HERE/apps/hello_wsgi.py" -p "$p" -b 127.0.0.1 -t 1 -q ;;
        iodine-t4) setsid "${vg[@]}" "$ROOT/.venv/bin/python" "$IODINE" "$HERE/apps/hello_wsgi.py" -p "$p" -b 127.0.0.1 -t 4 -q ;;
        iodine-w2) setsid "${vg[@]}" "$ROOT/.venv/bin/python" "$IODINE" "$HERE/apps/hello_wsgi.py" -p "$p" -b 127.0.0.1 -t 1 -w 2 -q ;;
        bjoern)    setsid "${vg[@]}" "$PEERS_VENV/bin/python" -c "import sys, bjoern; sys.path.insert(0, '$HERE/apps'); import hello_wsgi; bjoern.run(hello_wsgi.app, '127.0.0.1', $p)" ;;
        nginx)
            mkdir -p "$WORK/nginx"
            cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $WORK/nginx/pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  keepalive_requests 100000000;
  server { listen 127.0.0.1:$p; location / { default_type text/plain; return 200 "Hello World"; } } }
EOF
            setsid "${vg[@]}" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" ;;
        *) echo "count.sh: unknown server $name" >&2; exit 2 ;;
    esac >"$WORK/$name.log" 2>&1 </dev/null &
    PID=$!
    local deadline=$((SECONDS + 120))
    until curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$p/" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "count.sh: $name did not start" >&2; cat "$WORK/$name.log" >&2; exit 1; }
        sleep 0.05   # polling for readiness with a deadline
    done
}

for name in "${@:-iodine bjoern nginx}"; do
    p=$(port)
    start "$name" "$p"
    # the server's session: setsid may run in a child of the background job
    sid=$(ps -o sid= -p "$PID" | tr -d ' ')
    [[ $sid == "$PID" ]] || sid=$(ps -o sid= --ppid "$PID" | head -n1 | tr -d ' ')
    pids=$(pgrep -s "$sid" | paste -sd, -)
    "$LOAD" "$p" $((TOTAL < 2000 ? TOTAL : 2000)) "$CONNS" "$DEPTH" >/dev/null      # warm-up
    if [[ $MODE == callgrind ]]; then
        # every process of the server under callgrind: counters zeroed after the
        # warm-up, dumped after the counted run, so only those requests count
        for q in ${pids//,/ }; do callgrind_control -z "$q" >/dev/null 2>&1; done
        "$LOAD" "$p" "$TOTAL" "$CONNS" "$DEPTH" >"$WORK/out"
        for q in ${pids//,/ }; do callgrind_control -d "$q" >/dev/null 2>&1; done
        ir=$(cat "$WORK"/cg.* 2>/dev/null | awk '/^totals:/ {t += $2} END {print t + 0}')
        printf '%-10s c%-4s x%-3s %8.0f user-space instructions/req  (%s)\n' "$name" "$CONNS" "$DEPTH" \
            "$(echo "$ir / $TOTAL" | bc -l)" "$(cat "$WORK/out")"
        [[ -z ${KEEP:-} ]] || cp "$WORK"/cg.* "$KEEP/" 2>/dev/null || true
        rm -f "$WORK"/cg.*
    elif [[ $MODE == cpu ]]; then
        t0=$(for q in ${pids//,/ }; do awk '{sub(/.*\) /, ""); print $12, $13}' "/proc/$q/stat"; done | awk '{u+=$1; k+=$2} END {print u, k}')
        "$LOAD" "$p" "$TOTAL" "$CONNS" "$DEPTH" >"$WORK/out"
        t1=$(for q in ${pids//,/ }; do awk '{sub(/.*\) /, ""); print $12, $13}' "/proc/$q/stat"; done | awk '{u+=$1; k+=$2} END {print u, k}')
        echo "$t0 $t1" | awk -v n="$TOTAL" -v hz="$(getconf CLK_TCK)" -v name="$name" -v c="$CONNS" -v d="$DEPTH" -v o="$(cat "$WORK/out")" \
            '{ printf "%-10s c%-4s x%-3s CPU us/req user %.2f sys %.2f  (%s)\n", name, c, d, ($3-$1)*1e6/hz/n, ($4-$2)*1e6/hz/n, o }'
    else
        args=(); for q in ${pids//,/ }; do args+=(-p "$q"); done
        strace -f -c -o "$WORK/strace" "${args[@]}" & SPID=$!
        sleep 1   # strace attaches asynchronously; its counts are per request below anyway
        "$LOAD" "$p" "$TOTAL" "$CONNS" "$DEPTH" >"$WORK/out"
        kill -INT "$SPID"; wait "$SPID" || true
        printf '%-10s c%-4s x%-3s syscalls/req:' "$name" "$CONNS" "$DEPTH"
        awk -v n="$TOTAL" '$NF ~ /^[a-z_0-9]+$/ && $4+0 > 0 && $NF != "total" { printf " %s=%.3f", $NF, $4 / n } $NF == "total" { printf "  total=%.3f", $4 / n }' "$WORK/strace"
        echo
    fi
    kill -TERM -- "-$sid" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""
done
