"""examples/bridge.py: a WebSocket client (websocket-client) talks through
one iodine process to a backend written with Python's socketserver (TCP)
and to one written with the websockets library; an unreachable backend is
reported to the browser, whose WebSocket is then closed."""
from __future__ import annotations

import socket

import pytest

from tests.raw.test_connect import Peer

websocket = pytest.importorskip("websocket")  # websocket-client


def browser(srv):
    return websocket.create_connection(f"ws://{srv.host}:{srv.port}/ws", timeout=10)


def test_bridge_to_a_tcp_backend(run_server):
    peer = Peer()
    try:
        srv = run_server("examples/bridge.py", env={"BRIDGE_BACKEND": peer.url})
        ws = browser(srv)
        try:
            ws.send("sent before or after the backend connected\n")  # either way it arrives
            assert ws.recv() == "SENT BEFORE OR AFTER THE BACKEND CONNECTED\n"
            ws.send("quit\n")  # the backend answers, then hangs up
            assert ws.recv() == "QUIT\n"
            assert ws.recv() == "backend closed: peer closed"
        finally:
            ws.close()
        assert b"bridge" in srv.get("/").body
    finally:
        peer.close()


def test_bridge_to_a_websocket_backend(run_server):
    from tests.raw.test_ws_client import WsPeer

    peer = WsPeer()
    try:
        srv = run_server("examples/bridge.py", env={"BRIDGE_BACKEND": peer.url + "/echo"})
        ws = browser(srv)
        try:
            ws.send("through two websockets")
            assert ws.recv() == "through two websockets"
        finally:
            ws.close()
        assert peer.closes.get(timeout=10) == 1000  # the browser left: the bridge closed cleanly
    finally:
        peer.close()


def test_unreachable_backend_is_reported_to_the_browser(run_server):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = run_server("examples/bridge.py", env={"BRIDGE_BACKEND": f"tcp://127.0.0.1:{port}"})
    ws = browser(srv)
    try:
        assert ws.recv() == "backend closed: connect: Connection refused"
    finally:
        ws.close()
