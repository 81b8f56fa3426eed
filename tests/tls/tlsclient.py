"""Client side of the TLS tests: tests.rawhttp's strict HTTP/1.1 client over
an ssl-wrapped socket, and the contexts to make one with.

    with TLSConnection(srv.host, srv.port) as c:    # trusts anything (-tls)
        c.request("GET", "/")
        resp = c.read_final_response()
"""

from __future__ import annotations

import socket
import ssl
from typing import Optional

from tests.rawhttp import Connection


def insecure_context() -> ssl.SSLContext:
    """For -tls: its certificate is self-signed and made at start."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def trusting_context(cafile: Optional[str] = None, cadata: Optional[str] = None
                     ) -> ssl.SSLContext:
    """Verifies the server's certificate against exactly this one."""
    return ssl.create_default_context(cafile=cafile, cadata=cadata)


class TLSConnection(Connection):
    def __init__(self, host: str, port: int, timeout: float = 10.0,
                 context: Optional[ssl.SSLContext] = None,
                 server_hostname: str = "localhost") -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = (context or insecure_context()).wrap_socket(
                raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def _fill(self, deadline: float) -> bool:
        try:
            return super()._fill(deadline)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            # closed without (or with) close_notify: the end either way
            self.eof = True
            return False

    def get(self, target: str, headers=None, timeout: Optional[float] = None):
        self.request("GET", target, headers)
        return self.read_final_response("GET", timeout=timeout)

    def post(self, target: str, body: bytes, timeout: Optional[float] = None):
        self.request("POST", target, None, body)
        return self.read_final_response("POST", timeout=timeout)
