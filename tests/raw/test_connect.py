"""Client connections (Iodine.connect): to plain socket servers written
with Python's socketserver here (TCP, Unix, TLS through the ssl module),
and to our own raw service. The same callbacks and client object as a
server-side connection: on_open, on_message with the bytes, writes,
pub/sub deliveries from C; and every failure (refused, DNS, connect
timeout, certificate refused) reaches on_close with a reason, never an
exception in the loop. Called from the app, from a timer and from the
enter_child hook of every worker.

App: tests/apps/raw_app.py (GET /connect?url=...&name=... opens one; its
callbacks log "raw NAME EVENT DETAIL" on stderr).
"""
from __future__ import annotations

import queue
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from urllib.parse import quote

import pytest

from tests.raw.helpers import raw_ports, wait_line


class Peer:
    """A socket server nobody here wrote the protocol side of: Python's
    socketserver, one thread per connection, answering every read with the
    same bytes upper-cased and recording what it got; "quit" in a read
    makes it close the connection after answering."""

    def __init__(self, unix_path=None, tls=None, host="127.0.0.1"):
        self.received: "queue.Queue[bytes]" = queue.Queue()
        self.accepted = 0
        self.tls_errors: "queue.Queue[str]" = queue.Queue()
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                peer.accepted += 1
                sock = self.request
                try:
                    if tls is not None:
                        sock = tls.wrap_socket(sock, server_side=True)
                    while True:
                        data = sock.recv(65536)
                        if not data:
                            return
                        peer.received.put(data)
                        sock.sendall(data.upper())
                        if b"quit" in data:
                            return  # socketserver closes the connection
                except (ssl.SSLError, OSError) as e:
                    peer.tls_errors.put(str(e))

        if unix_path:
            cls = socketserver.ThreadingUnixStreamServer
            self.server = cls(unix_path, Handler)
            self.url = f"unix:{unix_path}"
        else:
            cls = socketserver.ThreadingTCPServer
            cls.allow_reuse_address = True
            self.server = cls((host, 0), Handler)
            scheme = "tls" if tls is not None else "tcp"
            self.url = f"{scheme}://{host}:{self.server.server_address[1]}"
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self, n: int, timeout: float = 15.0) -> bytes:
        out = b""
        deadline = time.monotonic() + timeout
        while len(out) < n:
            out += self.received.get(timeout=max(0.05, deadline - time.monotonic()))
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def connect(srv, url: str, name: str, path: str = "/connect", **q) -> None:
    qs = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in
                  dict(url=url, name=name, **q).items())
    assert srv.get(f"{path}?{qs}").status == 200


def test_tcp_client_talks_to_a_socketserver(run_server, peer):
    srv = run_server("raw_app")
    connect(srv, peer.url, "c1", send="hello quit\n")
    wait_line(srv, "c1", "open", "raw")
    assert peer.got(11) == b"hello quit\n"
    wait_line(srv, "c1", "msg", r"HELLO QUIT\|")
    # the server side closed after answering: on_close with the reason
    wait_line(srv, "c1", "close", "peer closed")


def test_client_connection_to_our_own_raw_service(run_server):
    srv = run_server("raw_app")
    echo, _ = raw_ports(srv)
    connect(srv, f"tcp://127.0.0.1:{echo}", "self", send="round trip")
    wait_line(srv, "self", "open", "raw")
    wait_line(srv, "self", "msg", "round trip")


def test_client_subscription_receives_publishes_from_c(run_server, peer):
    srv = run_server("raw_app")
    connect(srv, peer.url, "sub", sub="news")
    wait_line(srv, "sub", "open", "raw")
    assert srv.get("/publish?ch=news&msg=extra%21").status == 200
    assert peer.got(6) == b"extra!"  # the message's bytes, unframed, from C
    wait_line(srv, "sub", "msg", "EXTRA!")


def test_unix_client(run_server, tmp_path):
    p = Peer(unix_path=str(tmp_path / "peer.sock"))
    try:
        srv = run_server("raw_app")
        connect(srv, p.url, "ux", send="via unix")
        assert p.got(8) == b"via unix"
        wait_line(srv, "ux", "msg", "VIA UNIX")
    finally:
        p.close()


def test_refused_reaches_on_close_with_a_reason(run_server):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    srv = run_server("raw_app")
    connect(srv, f"tcp://127.0.0.1:{port}", "refused")
    wait_line(srv, "refused", "close", "connect: Connection refused")
    assert not any(re.match(r"^raw refused open", line) for line in srv.stderr_lines)
    srv.assert_alive()


def test_dns_failure_reaches_on_close_and_does_not_block_the_loop(run_server):
    srv = run_server("raw_app")
    connect(srv, "tcp://no-such-host.invalid:80", "dns")
    srv.assert_alive()  # the loop answers while the name is being looked up
    wait_line(srv, "dns", "close", r"dns: no-such-host\.invalid: .+", timeout=30)


def test_unix_path_that_does_not_exist(run_server, tmp_path):
    srv = run_server("raw_app")
    connect(srv, f"unix:{tmp_path}/absent.sock", "nounix")
    wait_line(srv, "nounix", "close", "connect: No such file or directory")


def test_connect_timeout(run_server):
    """A listener whose accept queue is full drops SYNs: the connect hangs
    until our deadline."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    addr = lst.getsockname()
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(addr)
        fillers.append(f)
    try:
        srv = run_server("raw_app")
        t0 = time.monotonic()
        connect(srv, f"tcp://127.0.0.1:{addr[1]}", "slow", timeout="0.5")
        wait_line(srv, "slow", "close", "connect timeout", timeout=15)
        assert time.monotonic() - t0 < 10
        assert not any(line.startswith("raw slow open") for line in srv.stderr_lines)
    finally:
        for f in fillers:
            f.close()
        lst.close()


def test_connect_from_a_timer(run_server, peer):
    srv = run_server("raw_app", "-t", "4")  # and from application threads
    connect(srv, peer.url, "later", path="/connect-later", send="from a timer")
    assert peer.got(12) == b"from a timer"
    wait_line(srv, "later", "msg", "FROM A TIMER")


def test_connect_from_enter_child_in_every_worker(run_server, peer):
    srv = run_server("raw_app", "-w", "2", env={"RAW_CONNECT_AT_START": peer.url})
    pids = set()
    deadline = time.monotonic() + 20
    data = b""
    while len(pids) < 2:
        assert time.monotonic() < deadline, f"boots seen: {pids}"
        try:
            data += peer.received.get(timeout=1)
        except queue.Empty:
            continue
        pids = set(re.findall(rb"boot (\d+)\n", data))
    assert len(pids) == 2
    assert srv.proc.pid not in {int(p) for p in pids}  # the workers, not the master


def test_bad_urls_raise_at_the_call():
    from iodine_py import Iodine

    for url in ("http://x:1", "tcp://nohost", "unix:", "tls://:5"):
        with pytest.raises(ValueError):
            Iodine.connect(url, object())


# -- TLS -----------------------------------------------------------------------

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
    return str(cert), str(key)


@pytest.fixture
def tls_peer(cert_files):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files)
    p = Peer(tls=ctx)
    yield p
    p.close()


def test_tls_verifies_by_default_and_refuses_an_unknown_ca(run_server, tls_peer):
    srv = run_server("raw_app")
    connect(srv, tls_peer.url, "strict", send="never sent")
    wait_line(srv, "strict", "close", r"tls: certificate verify failed: .*self.signed.*")
    assert not any(line.startswith("raw strict open") for line in srv.stderr_lines)
    assert tls_peer.received.empty()


def test_tls_with_a_pinned_ca(run_server, tls_peer, cert_files):
    srv = run_server("raw_app")
    port = tls_peer.url.rsplit(":", 1)[1]
    # by name (SNI and the certificate's DNS name) and by address (its IP SAN)
    connect(srv, f"tls://localhost:{port}", "pinned", send="pinned", ca=cert_files[0])
    wait_line(srv, "pinned", "msg", "PINNED")
    connect(srv, tls_peer.url, "pinip", send="by ip", ca=cert_files[0])
    wait_line(srv, "pinip", "msg", "BY IP")


def test_tls_pinned_ca_still_checks_the_name(run_server, cert_files):
    """The certificate is for localhost and 127.0.0.1; a server at
    127.0.0.2 presenting it is refused even though its CA is trusted."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files)
    p = Peer(tls=ctx, host="127.0.0.2")
    try:
        srv = run_server("raw_app")
        connect(srv, p.url, "wrongname", send="x", ca=cert_files[0])
        wait_line(srv, "wrongname", "close", r"tls: certificate verify failed: .*mismatch.*")
        assert p.received.empty()
    finally:
        p.close()


def test_tls_verification_off_for_development(run_server, tls_peer):
    srv = run_server("raw_app")
    connect(srv, tls_peer.url, "dev", send="dev mode", verify="0")
    wait_line(srv, "dev", "open", "raw")
    wait_line(srv, "dev", "msg", "DEV MODE")


def test_tls_client_to_our_own_tls_raw_service(run_server, cert_files):
    cert, key = cert_files
    srv = run_server("raw_app", env={"RAW_TLS": "1", "RAW_TLS_CERT": cert, "RAW_TLS_KEY": key})
    _e, _c, tls_port = raw_ports(srv)
    connect(srv, f"tls://localhost:{tls_port}", "ourtls", send="ours", ca=cert)
    wait_line(srv, "ourtls", "msg", "ours")
