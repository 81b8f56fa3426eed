"""TLS: HTTPS, WSS and SSE over TLS through the reactor's transport
(ext/tls.c), and what a hostile or broken client cannot do to the server.

App: tests/apps/tls_app.py. Servers run with -tls (a self-signed certificate
made at start), so clients trust anything unless a test says otherwise.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import warnings

import pytest
import websocket
from websocket import ABNF

from tests.apps.tls_app import big_body
from tests.server import ServerProcess, base_env, iodine_argv, repo_on_path_env
from tests.tls.tlsclient import TLSConnection, insecure_context, trusting_context



def _built_with_tls() -> bool:
    from iodine_py._native import lib

    return bool(lib.tls_available())


pytestmark = pytest.mark.skipif(
    not _built_with_tls(),
    reason="this build has no TLS (OpenSSL headers were missing at build time)")


@pytest.fixture
def srv(run_server):
    return run_server("tls_app", "-tls")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- HTTPS basics ----------------------------------------------------------------------------

def test_banner_says_https_and_scheme_is_https(srv):
    assert any(f"Listening on https://127.0.0.1:{srv.port}" in line for line in srv.stderr_lines)
    assert any("self-signed" in line for line in srv.stderr_lines)
    with TLSConnection(srv.host, srv.port) as c:
        resp = c.get("/")
        assert (resp.status, resp.body) == (200, b"hello https")
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")


def test_alpn_picks_http11_when_offered(srv):
    ctx = insecure_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with TLSConnection(srv.host, srv.port, context=ctx) as c:
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        assert c.get("/").status == 200
    ctx = insecure_context()
    ctx.set_alpn_protocols(["h2"])  # nothing we speak: no ALPN answer, no failure
    with TLSConnection(srv.host, srv.port, context=ctx) as c:
        assert c.sock.selected_alpn_protocol() is None


def test_old_protocol_versions_are_refused(srv):
    ctx = insecure_context()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # as we mean it
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.minimum_version = ssl.TLSVersion.TLSv1
    except (ValueError, AttributeError):
        pytest.skip("this Python's OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        TLSConnection(srv.host, srv.port, context=ctx).close()
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").status == 200


def test_self_signed_certificate_names_localhost_and_loopback(srv):
    """-tls's certificate verifies for localhost and 127.0.0.1 once trusted
    (its subjectAltNames), and is not a CA."""
    with TLSConnection(srv.host, srv.port) as c:
        der = c.sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    for name in ("localhost", "127.0.0.1"):
        with TLSConnection(srv.host, srv.port, context=trusting_context(cadata=pem),
                           server_hostname=name) as c:
            assert c.get("/").body == b"hello https"
            info = c.sock.getpeercert()
            assert ("DNS", "localhost") in info["subjectAltName"]
            assert ("IP Address", "127.0.0.1") in info["subjectAltName"]
    with pytest.raises(ssl.SSLCertVerificationError):
        TLSConnection(srv.host, srv.port, context=trusting_context(cadata=pem),
                      server_hostname="example.com").close()


def test_keep_alive_get_and_post_on_one_connection(srv):
    with TLSConnection(srv.host, srv.port) as c:
        for i in range(5):
            assert c.get("/").body == b"hello https"
            body = os.urandom(1000 * (i + 1))
            resp = c.post("/echo", body)
            assert resp.body == f"{len(body)} {sha(body)}".encode()
        body = os.urandom(300 * 1024)  # larger than the read buffer and a record
        assert c.post("/echo", body).body == f"{len(body)} {sha(body)}".encode()


def test_pipelined_requests_answered_in_order(srv):
    bodies = [os.urandom(n) for n in (10, 20000, 0, 70000)]
    raw = b""
    for b in bodies:
        raw += (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(b)) + b
        raw += b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    with TLSConnection(srv.host, srv.port) as c:
        c.send(raw)  # all of it in as few records as the client likes
        for b in bodies:
            assert c.read_final_response("POST").body == f"{len(b)} {sha(b)}".encode()
            assert c.read_final_response("GET").body == b"hello https"


def test_many_clients_at_once(srv):
    """Connections interleave through one loop (and one staging buffer):
    nobody gets anybody else's bytes."""
    errors = []

    def client(n):
        try:
            with TLSConnection(srv.host, srv.port) as c:
                for i in range(3):
                    body = bytes([n]) * (5000 * (i + 1) + n)
                    resp = c.post("/echo", body)
                    assert resp.body == f"{len(body)} {sha(body)}".encode()
                resp = c.get("/big?mib=1&mode=stream")
                assert resp.body == big_body(1)
        except BaseException as e:  # reported below
            errors.append(f"client {n}: {e!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


# -- large transfers (the write path under backpressure) -------------------------------------

@pytest.mark.parametrize("mode", ["chunks", "one", "stream"])
def test_ten_mebibyte_response(srv, mode):
    with TLSConnection(srv.host, srv.port, timeout=30) as c:
        c.request("GET", f"/big?mib=10&mode={mode}")
        time.sleep(0.3)  # let the server fill the socket and queue behind it
        resp = c.read_final_response(timeout=30)
        assert resp.status == 200
        assert len(resp.body) == 10 * 1024 * 1024
        assert resp.body == big_body(10)
        assert resp.chunked == (mode == "stream")
        assert c.get("/").body == b"hello https"  # the connection is still in step


def test_ten_mebibyte_response_read_slowly(srv):
    """A reader that takes its time: the server's queue waits for it, the
    bytes stay in order."""
    with TLSConnection(srv.host, srv.port, timeout=30) as c:
        c.request("GET", "/big?mib=10")
        head = c.read_head()
        assert head.header("Content-Length") == str(10 * 1024 * 1024)
        got = bytearray()
        deadline = time.monotonic() + 30
        while len(got) < 10 * 1024 * 1024:
            if len(got) < 1024 * 1024:
                time.sleep(0.01)  # slowly at first
            got += c.read_some(timeout=max(0.1, deadline - time.monotonic()))
        assert bytes(got) == big_body(10)


def test_client_leaving_mid_response_does_not_hurt(srv):
    for _ in range(3):
        c = TLSConnection(srv.host, srv.port, timeout=10)
        c.request("GET", "/big?mib=10&mode=one")
        c.read_head()
        c.read_exact(100000)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # with unread data: a reset
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").body == b"hello https"


def test_five_mebibyte_upload(srv):
    body = os.urandom(5 * 1024 * 1024)
    with TLSConnection(srv.host, srv.port, timeout=30) as c:
        resp = c.post("/echo", body, timeout=30)
        assert resp.body == f"{len(body)} {sha(body)}".encode()
        assert c.get("/").status == 200


# -- wsgi.file_wrapper: the sendfile path, which TLS turns into read + encrypt ---------------

@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    # not a multiple of any buffer size, so the last piece is a short one
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 12345))
    return path


@pytest.mark.parametrize("seek,half", [(0, 0), (0, 1), (100001, 0), (70000, 1)])
def test_file_wrapper_response(srv, data_file, seek, half):
    expected = data_file.read_bytes()[seek:]
    if half:
        expected = expected[:len(expected) // 2]
    with TLSConnection(srv.host, srv.port, timeout=30) as c:
        for _ in range(1 if half else 2):  # and the connection stays usable after it
            resp = c.get(f"/file?path={data_file}&seek={seek}&half={half}", timeout=30)
            assert resp.status == 200
            assert len(resp.body) == len(expected)
            assert resp.body == expected
        if half:  # the file was longer than promised: cut there, then closed
            assert c.wait_closed(5)
        else:
            assert c.get("/").body == b"hello https"


def test_small_file_and_pipelined_requests(srv, tmp_path):
    """A file segment between small queued writes (a head before it, the
    next response after it) comes out whole and in order."""
    small = tmp_path / "small.txt"
    small.write_bytes(b"0123456789" * 7)
    raw = (f"GET /file?path={small} HTTP/1.1\r\nHost: x\r\n\r\n"
           "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
           f"GET /file?path={small}&seek=3 HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    with TLSConnection(srv.host, srv.port) as c:
        c.send(raw)
        assert c.read_final_response().body == small.read_bytes()
        assert c.read_final_response().body == b"hello https"
        assert c.read_final_response().body == small.read_bytes()[3:]


def test_static_files_over_tls(run_server, tmp_path):
    """Files the core serves itself (-www) take the same read + encrypt path."""
    from tests.server import run_cli

    if b"--public" not in run_cli("--help").stdout:
        pytest.skip("this tree has no static file serving (-www)")
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 7))
    (tmp_path / "a.txt").write_bytes(b"static over tls")
    srv = run_server("tls_app", "-tls", "-www", str(tmp_path))
    raw = b"".join(f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                   for name in ("a.txt", "big.bin", "a.txt"))
    with TLSConnection(srv.host, srv.port, timeout=30) as c:
        c.send(raw)  # pipelined: the answers queue behind the big file
        assert c.read_final_response().body == b"static over tls"
        assert c.read_final_response(timeout=30).body == (tmp_path / "big.bin").read_bytes()
        assert c.read_final_response().body == b"static over tls"
        assert c.get("/").body == b"hello https"  # the app still answers the rest


# -- WebSocket (wss://) and SSE over TLS --------------------------------------------------

def wss(srv, path="/"):
    return websocket.create_connection(f"wss://127.0.0.1:{srv.port}{path}", timeout=10,
                                       sslopt={"cert_reqs": ssl.CERT_NONE,
                                               "check_hostname": False})


def test_wss_echo(srv):
    ws = wss(srv)
    try:
        ws.send("hello, \u4e16\u754c")
        assert ws.recv_data() == (ABNF.OPCODE_TEXT, "hello, \u4e16\u754c".encode())
        payload = os.urandom(200 * 1024)  # larger than a record
        ws.send_binary(payload)
        assert ws.recv_data() == (ABNF.OPCODE_BINARY, payload)
        for i in range(50):  # many small frames, back to back
            ws.send(f"m{i}")
        assert [ws.recv() for _ in range(50)] == [f"m{i}" for i in range(50)]
    finally:
        ws.close()


def test_wss_close_handshake(srv):
    ws = wss(srv)
    ws.send("x")
    assert ws.recv() == "x"
    ws.send_close(1000, b"done")
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == ABNF.OPCODE_CLOSE
    assert data[:2] == b"\x03\xe8"
    ws.shutdown()


def test_sse_over_tls(srv):
    with TLSConnection(srv.host, srv.port) as c:
        c.request("GET", "/events", [("Accept", "text/event-stream")])
        head = c.read_head()
        assert head.status == 200
        assert head.header("Content-Type").startswith("text/event-stream")
        stream = b""
        deadline = time.monotonic() + 10
        while b"event: end" not in stream:
            stream += c.read_some(timeout=max(0.1, deadline - time.monotonic()))
        text = stream.decode()
        for word in ("one", "two", "three"):
            assert f"event: n\ndata: {word}\n\n" in text
        assert "event: big\ndata: " + "x" * 204800 + "\n\n" in text
        assert text.index("data: one") < text.index("data: three") < text.index("event: big")


# -- hostile and broken clients ----------------------------------------------------------

def test_garbage_instead_of_client_hello(srv):
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",           # plain HTTP
                 os.urandom(4096),                              # noise
                 b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",   # a broken ClientHello
                 b"\x16\x03\x01\xff\xff" + b"\x00" * 100):      # a record too large
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            got = b""
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                while True:
                    data = s.recv(4096)
                    if not data:
                        break
                    got += data
            except OSError:  # reset, or closed before our shutdown
                pass
            # at most a TLS alert (content type 21), never an HTTP answer
            assert not got or got[0] == 21, got[:50]
        with TLSConnection(srv.host, srv.port) as c:
            assert c.get("/").body == b"hello https"


def test_client_hello_cut_short_then_close(srv):
    ctx = insecure_context()
    hello = _client_hello_bytes(ctx)
    for cut in (1, 5, len(hello) // 2):
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(hello[:cut])
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").body == b"hello https"


def _client_hello_bytes(ctx: ssl.SSLContext) -> bytes:
    """A real ClientHello, captured from an in-memory handshake."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def _closed_within(s: socket.socket, seconds: float) -> float:
    """Seconds until the server closed s (reading and dropping anything)."""
    started = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError(f"still open after {seconds} s") from None
    return time.monotonic() - started


def test_silent_client_and_stalled_handshake_closed_by_idle_timeout(run_server):
    srv = run_server("tls_app", "-tls", "-k", "1")
    hello = _client_hello_bytes(insecure_context())
    with socket.create_connection((srv.host, srv.port), timeout=10) as silent, \
            socket.create_connection((srv.host, srv.port), timeout=10) as stalled:
        stalled.sendall(hello[:20])  # a handshake that never finishes
        # 1 s, swept every 250 ms; the bound leaves room for a loaded machine
        took = _closed_within(silent, 8.0)
        assert took >= 0.5, f"closed after {took:.2f} s, before the idle timeout"
        _closed_within(stalled, 8.0)
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").body == b"hello https"


def test_trickled_handshake_does_not_reset_the_idle_clock(run_server):
    """Handshake bytes are not requests: a client trickling its ClientHello
    is still idle, and is closed once the keep-alive timeout passes."""
    srv = run_server("tls_app", "-tls", "-k", "1")
    hello = _client_hello_bytes(insecure_context())
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        started = time.monotonic()
        closed = False
        for i in range(len(hello) - 1):
            try:
                s.sendall(hello[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            s.settimeout(0.05)
            try:
                if s.recv(100) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
            if time.monotonic() - started > 10:
                break
        assert closed, "a trickling handshake kept the connection open for 10 s"
        assert time.monotonic() - started < 8.0  # 1 s, on a possibly loaded machine


def test_plain_http_client_on_a_tls_port_gets_no_http(srv):
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            got = s.recv(100)
        except ConnectionResetError:
            got = b""
        assert not got.startswith(b"HTTP/")


# -- certificate and key from files ------------------------------------------------------

@pytest.fixture(scope="module")
def cert_files(tmp_path_factory):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("the openssl command line tool is not installed")
    d = tmp_path_factory.mktemp("certs")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_cert_and_key_files(run_server, cert_files):
    cert, key = cert_files
    srv = run_server("tls_app", "-tls-cert", str(cert), "-tls-key", str(key))
    assert not any("self-signed" in line for line in srv.stderr_lines)
    ctx = trusting_context(cafile=str(cert))  # verifies chain and hostname
    with TLSConnection(srv.host, srv.port, context=ctx, server_hostname="localhost") as c:
        assert c.get("/").body == b"hello https"
        body = os.urandom(100000)
        assert c.post("/echo", body).body == f"{len(body)} {sha(body)}".encode()
    ws = websocket.create_connection(f"wss://localhost:{srv.port}/", timeout=10,
                                     sslopt={"ca_certs": str(cert)})
    ws.send("verified")
    assert ws.recv() == "verified"
    ws.close()


# -- the same over workers, threads and the programmatic API -----------------------------

def test_tls_with_workers_and_threads(run_server):
    srv = run_server("tls_app", "-tls", "-w", "2", "-t", "3")
    for _ in range(4):
        with TLSConnection(srv.host, srv.port, timeout=30) as c:
            assert c.get("/").body == b"hello https"
            assert c.get("/big?mib=2&mode=chunks", timeout=30).body == big_body(2)


def test_listen_with_tls_programmatically(run_server, tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(
        "from iodine_py import Iodine\n"
        "from tests.apps.tls_app import app\n"
        "Iodine.listen(app, port=0, address='127.0.0.1', tls=True)\n"
        "Iodine.listen(app, port=0, address='127.0.0.1')\n"
        "Iodine.start()\n")
    srv = ServerProcess([iodine_argv(None, default_args=False)[0], str(script)],
                        env=base_env(repo_on_path_env()))
    try:
        tls_port = int(srv.wait_for_stderr(
            re.compile(r"Listening on https://127\.0\.0\.1:(\d+)")).group(1))
        m = srv.wait_for_stderr(re.compile(r"Listening on http://127\.0\.0\.1:(\d+)"))
        with TLSConnection("127.0.0.1", tls_port) as c:
            assert c.get("/").body == b"hello https"
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data.endswith(b"hello http")
    finally:
        assert srv.stop() == 0
        assert not srv.problems(check_exit=False), srv.stderr

