"""The per-request environ copies a base dict that has room to grow
(iodine_py/wsgi.py roomy): the same keys in the same order, no spare key
left in any request's environ, and (on CPython, where the trick is known to
hold) a copy that takes a request's keys without growing its table."""
import json
import platform
import socket
import sys
from types import SimpleNamespace

import pytest

from iodine_py.wsgi import ENV_ROOM, base_environ, roomy


def listener():
    return SimpleNamespace(address="127.0.0.1", bound_port=3000, tls=False)


def test_same_keys_same_order_same_values():
    base = base_environ(listener(), False, False)
    wide = roomy(base)
    assert wide == base
    assert list(wide) == list(base)
    assert not any(k.startswith("\0") for k in wide)


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="CPython's dict layout")
def test_a_copy_takes_a_request_without_growing():
    base = base_environ(listener(), False, False)
    tight, wide = base.copy(), roomy(base).copy()
    before = sys.getsizeof(wide)
    # what http_env.c adds for a request with a few headers
    for i in range(19):
        tight[f"HTTP_X_{i}"] = wide[f"HTTP_X_{i}"] = "v"
    assert sys.getsizeof(wide) == before, "the wide copy grew"
    assert sys.getsizeof(roomy(base)) < sys.getsizeof(roomy(base, ENV_ROOM + 20)), "more room, a bigger table"
    assert sys.getsizeof(tight.copy()) == sys.getsizeof(wide)  # the tight one grew to the same table


@pytest.mark.parametrize("threads", ["1", "4"])
def test_the_server_hands_apps_the_base_and_the_request_only(run_server, threads):
    """Through a real server (C builds the environ from the wide base): no
    spare key, every base key, the headers sent, and REMOTE_PORT (written
    by ascii_u64, not snprintf) equal to the client socket's own port."""
    srv = run_server("env_keys", "-t", threads)
    base = base_environ(listener(), False, False)
    for extra in (0, 25):  # a few headers, then more than the spare room
        sock = socket.create_connection(("127.0.0.1", srv.port))
        with sock:
            headers = "".join(f"X-Extra-{i}: {i}\r\n" for i in range(extra))
            sock.sendall(f"GET /p?q=1 HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            port = sock.getsockname()[1]
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        got = json.loads(body)
        assert not [k for k in got["keys"] if k.startswith("\0")]
        assert set(base) <= set(got["keys"])
        assert {f"HTTP_X_EXTRA_{i}" for i in range(extra)} <= set(got["keys"])
        assert "HTTP_HOST" in got["keys"] and "wsgi.input" in got["keys"]
        assert got["REMOTE_PORT"] == str(port)
