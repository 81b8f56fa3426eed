"""A rolling restart spreads reconnects: an old worker's WebSocket clients
get Close 1001 spread over --drain, not all in the same instant, and every
one of them gets it (none is just cut off)."""
import base64
import os
import select
import signal
import socket
import time

N = 200
DRAIN = 2.0


def open_ws(host, port):
    s = socket.create_connection((host, port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, f"closed during the handshake: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    s.setblocking(False)
    return s


def test_rolling_restart_spreads_websocket_closes_over_the_drain(run_server):
    srv = run_server("ws_echo", "-w", "2", "--drain", str(DRAIN), "--grace", "5")
    srv.wait_for_lines("started (pid", 2, timeout=10)
    socks = [open_ws(srv.host, srv.port) for _ in range(N)]
    # plain keep-alive HTTP connections are not spread: they close at once
    keepalive = []
    for _ in range(4):
        k = socket.create_connection((srv.host, srv.port), timeout=10)
        k.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert k.recv(4096).startswith(b"HTTP/1.1 200")
        k.setblocking(False)
        keepalive.append(k)
    socks += keepalive
    closes = {}  # socket -> (time, close code or None for a bare EOF)
    buf = {s: b"" for s in socks}
    t0 = time.monotonic()
    srv.send_signal(signal.SIGHUP)
    deadline = t0 + DRAIN + 20
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        ready, _, _ = select.select(list(open_), [], [], 0.5)
        now = time.monotonic()
        for s in ready:
            try:
                data = s.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            buf[s] += data
            b = buf[s]
            if len(b) >= 4 and b[0] == 0x88:
                closes[s] = (now, int.from_bytes(b[2:4], "big"))
                open_.discard(s)
            elif not data:
                closes[s] = (now, None)
                open_.discard(s)
    for s in socks:
        s.close()
    http_closed = [closes[k][0] for k in keepalive]
    for k in keepalive:
        del closes[k]
    assert not open_, f"{len(open_)} clients never heard the restart; stderr:\n{srv.stderr}"
    codes = [c for _, c in closes.values()]
    assert codes.count(1001) == N, f"close codes: {sorted(set(codes), key=str)}"
    times = sorted(t for t, _ in closes.values())
    span = times[-1] - times[0]
    # spread: the drain period is used, and no fifth of a second carries
    # more than a fifth of the clients (all at once was 100% in 130 ms)
    assert span >= DRAIN * 0.5, f"all {N} closes within {span:.2f}s"
    worst = max(sum(1 for x in times if t <= x < t + 0.2) for t in times)
    # every HTTP connection closed while the WebSocket drain was still going
    assert max(http_closed) < times[-1] - DRAIN / 2, (http_closed, times[0], times[-1])
    assert worst <= N // 5, f"{worst} of {N} closes within 0.2 s"
    per_s = N / span
    print(f"{N} clients closed over {span:.2f}s: {per_s:.0f}/s on average, "
          f"at most {worst} in 0.2 s")
    srv.wait_for_lines("retired", 2, timeout=DRAIN + 15)
    srv.assert_alive()
