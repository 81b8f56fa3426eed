"""Callback order on an upgraded connection.

The contract (iodine_py/client.py): a connection's callbacks run one at a
time, in order; on_open first, before any message; messages in arrival
order; on_close exactly once, last, however the connection ends.

App: tests/apps/ws_callbacks.py logs each callback under a connection name
(stderr line "ws-cb NAME EVENT", and GET /log/NAME for the whole list).
"""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.rawhttp import Connection, build_request
from tests.websocket import wsraw


def wait_event(srv, name: str, event: str, timeout: float = 5.0, start: int = 0) -> None:
    srv.wait_for_stderr(re.compile(rf"^ws-cb {re.escape(name)} {re.escape(event)}$"),
                        timeout=timeout, start=start)


def get_log(srv, name: str) -> list[str]:
    resp = srv.get(f"/log/{name}")
    assert resp.status == 200, resp
    return json.loads(resp.body)


def stderr_log(srv, name: str) -> list[str]:
    prefix = f"ws-cb {name} "
    return [line[len(prefix):] for line in srv.stderr_lines if line.startswith(prefix)]


def assert_clean(log: list[str]) -> None:
    bad = [e for e in log if e.startswith(("OVERLAP", "ORDER"))]
    assert not bad, f"ordering violations: {bad}; log: {log}"


def assert_closed_once_last(log: list[str], label: str = "A") -> None:
    closes = [e for e in log if e.endswith(":close")]
    assert closes.count(f"{label}:close") == 1, f"on_close ran {closes.count(f'{label}:close')} times: {log}"
    assert log[-1] == f"{label}:close", f"on_close was not the last callback: {log}"
    assert_clean(log)


# -- on_open comes first -------------------------------------------------------------

@pytest.mark.parametrize("threads", ["1", "4"])
def test_messages_sent_during_a_slow_on_open_wait_for_it(run_server, threads):
    """The client sends messages as soon as it has the 101 while on_open
    is still running (it sleeps 0.5 s): they are delivered after on_open
    returns, in order, and no callback overlaps on_open."""
    srv = run_server("ws_callbacks", "-t", threads)
    name = f"slow-open-{threads}"
    with wsraw.connect_srv(srv, f"/ws?name={name}&open_delay=0.5") as ws:
        for i in range(5):
            ws.send_text(str(i))
        for i in range(5):
            assert ws.recv_text() == str(i)
        log = get_log(srv, name)
    assert log[:7] == ["A:open", "A:open-end"] + [f"A:msg:{i}" for i in range(5)], log
    assert_clean(log)


def test_frames_pipelined_with_the_handshake_wait_for_on_open(run_server):
    """Frames sent in the same packet as the handshake request (bytes the
    HTTP parser read past the head) are delivered after on_open, in order."""
    srv = run_server("ws_callbacks", "-t", "4")
    name = "pipelined"
    key = wsraw.new_key()
    with Connection(srv.host, srv.port) as c:
        request = build_request("GET", f"/ws?name={name}&open_delay=0.3",
                                wsraw.handshake_headers(key), host=c.authority)
        frames = b"".join(wsraw.build_frame(wsraw.OP_TEXT, str(i).encode()) for i in range(3))
        c.send(request + frames)
        resp = c.read_head()
        assert resp.status == 101, resp
        ws = wsraw.RawWebSocket(c, resp, key)
        assert [ws.recv_text() for _ in range(3)] == ["0", "1", "2"]
    log = get_log(srv, name)
    assert log[:5] == ["A:open", "A:open-end", "A:msg:0", "A:msg:1", "A:msg:2"], log


# -- messages in arrival order, one callback at a time ---------------------------------

N_MESSAGES = 200


def test_200_messages_echoed_in_order_with_4_threads(run_server):
    srv = run_server("ws_callbacks", "-t", "4")
    name = "order"
    with wsraw.connect_srv(srv, f"/ws?name={name}") as ws:
        ws.send_raw(b"".join(wsraw.build_frame(wsraw.OP_TEXT, str(i).encode())
                             for i in range(N_MESSAGES)))
        got = [ws.recv_text() for _ in range(N_MESSAGES)]
    assert got == [str(i) for i in range(N_MESSAGES)]
    log = get_log(srv, name)
    assert [e for e in log if e.startswith("A:msg:")] == [f"A:msg:{i}" for i in range(N_MESSAGES)]
    assert_clean(log)


def test_no_two_callbacks_of_one_connection_run_at_once(run_server):
    """Four connections flood the server at the same time (-t 4, so the app
    threads really run in parallel): each connection's messages still run
    one at a time and in order, and every connection gets its echoes in
    order."""
    srv = run_server("ws_callbacks", "-t", "4")
    names = [f"par{i}" for i in range(4)]
    conns = [wsraw.connect_srv(srv, f"/ws?name={n}", timeout=10) for n in names]
    try:
        burst = b"".join(wsraw.build_frame(wsraw.OP_TEXT, str(i).encode())
                         for i in range(N_MESSAGES))
        for ws in conns:
            ws.send_raw(burst)
        for ws in conns:
            got = [ws.recv_text(timeout=10) for _ in range(N_MESSAGES)]
            assert got == [str(i) for i in range(N_MESSAGES)]
        for ws in conns:
            ws.send_close(1000)
            ws.expect_close(1000)
    finally:
        for ws in conns:
            ws.close_socket()
    for n in names:
        wait_event(srv, n, "A:close")
        log = get_log(srv, n)
        assert len([e for e in log if e.startswith("A:msg:")]) == N_MESSAGES
        assert_closed_once_last(log)


# -- on_close: exactly once, last, whatever ends the connection --------------------------

@pytest.fixture
def cb_srv(run_server):
    return run_server("ws_callbacks", "-t", "4")


def _open(srv, name):
    ws = wsraw.connect_srv(srv, f"/ws?name={name}")
    ws.send_text("hello")
    assert ws.recv_text() == "hello"  # on_open and on_message have run
    return ws


def test_on_close_after_peer_close_handshake(cb_srv):
    srv, name = cb_srv, "peer-close"
    with _open(srv, name) as ws:
        ws.send_close(1000)
        ws.expect_close(1000)
    wait_event(srv, name, "A:close")
    log = get_log(srv, name)
    assert log == ["A:open", "A:msg:hello", "A:close"]


@pytest.mark.parametrize("how", ["fin", "rst", "mid-frame"])
def test_on_close_after_network_error(cb_srv, how):
    """The client vanishes without a Close frame: an orderly TCP close
    (FIN), an abort (RST), or a close in the middle of a frame."""
    srv, name = cb_srv, f"neterr-{how}"
    ws = _open(srv, name)
    if how == "rst":
        ws.reset()
    elif how == "mid-frame":
        ws.send_raw(wsraw.build_frame(wsraw.OP_TEXT, b"x" * 100)[:20])
        ws.close_socket()
    else:
        ws.close_socket()
    wait_event(srv, name, "A:close")
    assert get_log(srv, name) == ["A:open", "A:msg:hello", "A:close"]
    wsraw.assert_echo_works(srv, f"/ws?name={name}-after")


def test_on_close_after_ping_timeout(run_server):
    """-ping 1: a silent peer is pinged, then closed with 1001; on_close
    runs once."""
    srv = run_server("ws_callbacks", "-t", "4", "-ping", "1")
    name = "timeout"
    with _open(srv, name) as ws:
        f = ws.recv_frame(timeout=5)
        assert f.opcode == wsraw.OP_PING, f
        ws.expect_close(1001, timeout=5)
    wait_event(srv, name, "A:close")
    assert get_log(srv, name) == ["A:open", "A:msg:hello", "A:close"]


def test_on_close_after_app_calls_close(cb_srv):
    """client.close() from on_message: the peer gets Close 1000 after the
    echo, and on_close runs after on_message returned."""
    srv, name = cb_srv, "app-close"
    with _open(srv, name) as ws:
        ws.send_text("close")
        assert ws.recv_text() == "close"  # written before close(): still sent
        f = ws.recv_close()
        assert f.close_code == 1000
        ws.send_close(1000)  # complete the closing handshake
        ws.expect_tcp_close()
    wait_event(srv, name, "A:close")
    assert get_log(srv, name) == ["A:open", "A:msg:hello", "A:msg:close", "A:close"]


def test_on_close_after_server_shutdown(run_server):
    """SIGTERM: on_shutdown, then on_close, each exactly once; the process
    exits 0."""
    srv = run_server("ws_callbacks", "-t", "4")
    names = ["shut-a", "shut-b"]
    conns = [_open(srv, n) for n in names]
    try:
        srv.send_signal(signal.SIGTERM)
        for ws in conns:
            ws.expect_close(1001, timeout=10)
    finally:
        for ws in conns:
            ws.close_socket()
    assert srv.wait_exit(15) == 0, srv.stderr
    for n in names:
        assert stderr_log(srv, n) == ["A:open", "A:msg:hello", "A:shutdown", "A:close"], srv.stderr


def test_handler_replaced_closes_old_then_opens_new(cb_srv):
    """client.handler = new: the old handler's on_close, then the new one's
    on_open; later messages and the final on_close go to the new one only."""
    srv, name = cb_srv, "swap"
    with _open(srv, name) as ws:
        ws.send_text("swap")
        assert ws.recv_text() == "swap"
        ws.send_text("after")
        assert ws.recv_text() == "after"
        ws.send_close(1000)
        ws.expect_close(1000)
    wait_event(srv, name, "B:close")
    log = get_log(srv, name)
    assert log == ["A:open", "A:msg:hello", "A:msg:swap", "A:close", "B:open",
                   "B:msg:after", "B:close"], log


def test_exception_in_on_message_does_not_end_the_connection(cb_srv):
    """An exception in a callback is logged; the connection goes on, and
    on_close still runs exactly once at the end."""
    srv, name = cb_srv, "raise"
    srv.allow_tracebacks = True
    mark = srv.stderr_mark()
    with _open(srv, name) as ws:
        ws.send_text("raise")
        srv.wait_for_stderr("on_message raised on purpose", start=mark)
        ws.send_text("still-here")
        assert ws.recv_text() == "still-here"
        ws.send_close(1000)
        ws.expect_close(1000)
    wait_event(srv, name, "A:close")
    assert get_log(srv, name) == ["A:open", "A:msg:hello", "A:msg:raise", "A:msg:still-here",
                                  "A:close"]
