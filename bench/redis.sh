#!/usr/bin/env bash
# bench/redis.sh - cross-server pub/sub through one Redis: iodine-py's engine (RESP from C, one
# stream per deployment) vs uvicorn + websockets with a redis-py asyncio broadcast (the way
# `broadcaster` does it). Two servers of one process each share one redis-server.
#
#   throughput  server A publishes R msg/s from inside its worker (bench/apps /flood, a 1 ms
#               timer on the loop) while wrk times A's own HTTP (GET /, 4 connections); one
#               WebSocket subscriber on B (build/ws_load -m sub -t) counts deliveries/s and the
#               publish-to-receive latency. Per R: delivered/s, refused publishes, A's HTTP p99.
#   latency     build/ws_load -m pub -t -r 10000 publishes over a WebSocket to A, which
#               publishes each message through its engine; the subscriber on B: p50/p99/max.
#
# Usage:  bench/redis.sh                         (RATES="10000 50000 100000 150000", 5 s each)
#         SECS=3 RATES="100000" PEER_RATES="5000" bench/redis.sh
# Environment: RATES, PEER_RATES ["2000 5000 10000"], SECS [5], SERVERS ["iodine,peer"],
#   IODINE [.venv/bin/iodine], PEERS_VENV [bench/.venv-peers] (created with uvicorn[standard],
#   websockets and redis when missing), SERVER_CPU / REDIS_CPU (taskset lists, default none),
#   OUT [bench/results/redis-latest.json]. Needs redis-server and wrk.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PEERS_VENV=${PEERS_VENV:-$HERE/.venv-peers}
if ! "$PEERS_VENV/bin/python" -c "import uvicorn, websockets, redis, uvloop, httptools" 2>/dev/null; then
  python3 -m venv "$PEERS_VENV"
  "$PEERS_VENV/bin/pip" install -q "uvicorn[standard]" websockets redis
fi
mkdir -p "$ROOT/build" "$HERE/results"
if [[ ! -x $ROOT/build/ws_load || $HERE/ws_load.c -nt $ROOT/build/ws_load ]]; then
  cc -O2 -std=c11 -Wall -Wextra -o "$ROOT/build/ws_load" "$HERE/ws_load.c" -lpthread -lz
fi
args=(--servers "${SERVERS:-iodine,peer}" --rates "${RATES:-10000 50000 100000 150000}"
      --peer-rates "${PEER_RATES:-2000 5000 10000}" --secs "${SECS:-5}"
      --iodine "${IODINE:-$ROOT/.venv/bin/iodine}" --peers "$PEERS_VENV"
      --out "${OUT:-$HERE/results/redis-latest.json}")
[[ -n ${SERVER_CPU:-} ]] && args+=(--server-cpu "$SERVER_CPU")
[[ -n ${REDIS_CPU:-} ]] && args+=(--redis-cpu "$REDIS_CPU")
exec "$ROOT/.venv/bin/python" "$HERE/redis_bench.py" "${args[@]}"
