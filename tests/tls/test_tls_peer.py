"""TLS moves Python's ssl module cannot make, from a small C client
(tests/tls/tls_peer.c, compiled here against the system's OpenSSL): a TLS
1.3 KeyUpdate arriving while the server's output is stuck behind a full
socket, and a TLS 1.2 renegotiation request (refused)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.tls.tlsclient import TLSConnection

HERE = os.path.dirname(os.path.abspath(__file__))


def _built_with_tls() -> bool:
    from iodine_py._native import lib

    return bool(lib.tls_available())


pytestmark = pytest.mark.skipif(not _built_with_tls(), reason="this build has no TLS")


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    exe = tmp_path_factory.mktemp("peer") / "tls_peer"
    proc = subprocess.run([cc, "-std=c11", "-O1", os.path.join(HERE, "tls_peer.c"), "-o",
                           str(exe), "-lssl", "-lcrypto"], capture_output=True, timeout=120)
    if proc.returncode:
        pytest.skip("cannot build tls_peer.c (OpenSSL headers?): "
                    + proc.stderr.decode(errors="replace")[-300:])
    return str(exe)


def run_peer(exe, mode, port):
    proc = subprocess.run([exe, mode, str(port)], capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0 and out.startswith("OK"), out
    return out


def test_key_update_while_output_is_stuck(run_server, tls_peer):
    srv = run_server("tls_app", "-tls")
    run_peer(tls_peer, "keyupdate", srv.port)
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").body == b"hello https"


def test_renegotiation_is_refused(run_server, tls_peer):
    srv = run_server("tls_app", "-tls")
    for _ in range(3):
        run_peer(tls_peer, "renegotiate", srv.port)
    with TLSConnection(srv.host, srv.port) as c:
        assert c.get("/").body == b"hello https"
