"""Where the server listens: IPv4, IPv6, a Unix socket, and several
Iodine.listen calls in one process."""
import json
import re
import socket

import pytest

from tests.apps import hello
from tests.rawhttp import Connection
from tests.server import PYTHON


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def unix_get(path: str, target: str = "/") -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out
            out += data


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6(run_server):
    srv = run_server("whoami", "-p", "0", "-b", "::1", default_args=False)
    assert srv.host == "::1"
    with socket.create_connection(("::1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(body)["REMOTE_ADDR"] == "::1"


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_dual_stack_any_address_takes_ipv4_too(run_server):
    srv = run_server("whoami", "-p", "0", "-b", "::", default_args=False)
    with Connection("127.0.0.1", srv.port) as c:
        c.request("GET", "/")
        got = json.loads(c.read_response().body)
    # shown as IPv4, not as the mapped ::ffff:127.0.0.1
    assert got["REMOTE_ADDR"] == "127.0.0.1"


def test_unix_socket(run_server, tmp_path):
    path = str(tmp_path / "iodine.sock")
    srv = run_server("hello", "-b", f"unix:{path}", default_args=False, wait=False)
    srv.wait_for_stderr(f"Listening on unix:{path}", timeout=10)
    data = unix_get(path)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(hello.BODY)
    srv.stop()


def test_several_listen_calls_in_one_process(run_server, tmp_path):
    path = str(tmp_path / "multi.sock")
    srv = run_server(argv=[PYTHON, "tests/apps/multi_listen.py", path], wait=False)
    srv.wait_for_stderr(f"Listening on unix:{path}", timeout=10)
    ports = [int(m.group(2)) for m in
             srv.wait_for_lines(re.compile(r"Listening on http://(127\.0\.0\.1|\[::1\]):(\d+)"),
                                2 if ipv6_loopback() else 1, timeout=5)]
    with Connection("127.0.0.1", ports[0]) as c:
        c.request("GET", "/")
        assert c.read_response().body == hello.BODY
    if ipv6_loopback():
        with socket.create_connection(("::1", ports[1]), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert json.loads(data.partition(b"\r\n\r\n")[2])["REMOTE_ADDR"] == "::1"
    assert unix_get(path).endswith(hello.OTHER_BODY)
