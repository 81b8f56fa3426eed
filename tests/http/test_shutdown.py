"""Graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import signal
import socket
import time

import pytest

from tests.apps import gates


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_in_flight_response_completes_after_signal(run_server, sig):
    """A request whose app is still working when the signal arrives gets its
    whole response, then the process exits 0."""
    srv = run_server("gates", "-t", "2")
    mark = srv.stderr_mark()
    size = 200_000
    with srv.connect(timeout=15) as c:
        c.request("GET", f"/slow/inflight?delay=1&size={size}")
        srv.wait_for_stderr("slow-started inflight", timeout=5, start=mark)
        srv.send_signal(sig)
        resp = c.read_response(timeout=15)
        assert resp.status == 200
        assert resp.body == gates.slow_body(size)
    assert srv.wait_exit(15) == 0, srv.stderr


def test_idle_keep_alive_connection_does_not_delay_exit(run_server):
    """An idle persistent connection is closed at shutdown and the process
    exits promptly: with nothing in flight there is nothing to wait for, so
    neither the 40 s keep-alive timeout nor the grace period (10 s by
    default) may hold the exit up."""
    srv = run_server("basic")
    with srv.connect(timeout=10) as c:
        c.request("GET", "/")
        assert c.read_response().status == 200
        srv.send_signal(signal.SIGTERM)
        assert c.wait_closed(timeout=5), "idle connection still open 5 s after SIGTERM"
        start = time.monotonic()
        rc = srv.wait_exit(15)
        waited = time.monotonic() - start
    assert rc == 0, srv.stderr
    assert waited < 5, f"exit took {waited:.1f}s after the idle connection was closed"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_exit_code_0_on_signal_after_serving(run_server, sig):
    srv = run_server("hello")
    assert srv.get("/").status == 200
    assert srv.stop(sig) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_right_after_the_listening_line_is_graceful(run_server, sig):
    """A supervisor may stop the server as soon as it reports it is
    listening: from that line on, SIGTERM/SIGINT must mean a graceful exit 0
    (not death by the default signal action, not a hang)."""
    srv = run_server("hello")
    rc = srv.stop(sig, timeout=15)
    srv.allow_tracebacks = True  # checked here; teardown need not repeat it
    assert rc == 0 and "Traceback" not in srv.stderr, f"exit code {rc}; stderr:\n{srv.stderr}"


def test_listening_socket_is_closed_after_exit(run_server):
    """After exit the port no longer accepts connections."""
    srv = run_server("hello")
    assert srv.get("/").status == 200
    port = srv.port
    assert srv.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
