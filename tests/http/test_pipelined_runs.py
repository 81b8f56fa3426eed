"""A connection's pipelined requests answered as a run (issue #16 point 5).

With -t 1 the loop thread answers a connection's pipelined requests in one
turn and their answers leave corked, in one write. With -t 4 the
application thread that completes an answer parses the connection's next
pipelined request itself (http_resp.c complete), takes it next (dispatch.c's
same-connection path) and holds the answers in a batch (reactor.h
rx_batch_begin) until the run ends: one write, no wake-up of the loop and
no hand-off per request. These tests hold both modes to the guarantees:
answers whole and in order whatever kind each is (common, with a body,
streamed, HEAD, slow, larger than a batch holds, the last one closing),
close() called on the app's iterables, the run's answers sharing one TCP
segment, and no answer held back while the next request's application
call blocks."""
from __future__ import annotations

import json
import socket
import struct

import pytest

from tests.apps.gates import slow_body
from tests.rawhttp import build_request

MODES = pytest.mark.parametrize("threads", ["1", "4"], ids=["t1", "t4"])
BIG = 200_000  # past RX_BATCH_BYTES (64 KiB): a batch sends what it held first

#: offset of tcpi_data_segs_in in Linux's struct tcp_info (linux/tcp.h,
#: since 4.6): data segments this socket received
DATA_SEGS_IN = 152


def _data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < DATA_SEGS_IN + 4:
        pytest.skip("this kernel's tcp_info has no tcpi_data_segs_in")
    return struct.unpack_from("I", info, DATA_SEGS_IN)[0]


def _burst(c, reqs) -> bytes:
    out = b""
    for method, target, headers, body in reqs:
        out += build_request(method, target, headers, body, "HTTP/1.1", c.authority)
    return out


@MODES
def test_a_mixed_pipelined_burst_is_answered_whole_and_in_order(run_server, threads):
    srv = run_server("pipeline_run", "-t", threads)
    reqs, want = [], []
    for r in range(3):  # every kind, three times over, in one write
        k = r * 10
        reqs += [("GET", f"/plain?i={k}", None, b""),
                 ("POST", f"/echo?i={k + 1}", None, b"body-%d" % (k + 1)),
                 ("GET", f"/gen?i={k + 2}", None, b""),
                 ("HEAD", f"/plain?i={k + 3}", None, b""),
                 ("GET", f"/plain?i={k + 4}", None, b""),
                 ("GET", f"/nap?i={k + 5}", None, b""),
                 ("GET", f"/big?i={k + 6}&size={BIG}", None, b""),
                 ("POST", f"/echo?i={k + 7}", None, b"x" * 300),
                 ("GET", f"/plain?i={k + 8}", None, b"")]
        want += [b"plain %d" % k, b"echo %d body-%d" % (k + 1, k + 1),
                 b"gen %d a;gen %d b;gen %d c;" % ((k + 2,) * 3), b"",
                 b"plain %d" % (k + 4), b"nap %d" % (k + 5), slow_body(BIG),
                 b"echo %d %s" % (k + 7, b"x" * 300), b"plain %d" % (k + 8)]
    reqs.append(("GET", "/plain?i=99", {"Connection": "close"}, b""))
    want.append(b"plain 99")
    with srv.connect(timeout=20) as c:
        c.send(_burst(c, reqs))
        for (method, target, _, _), body in zip(reqs, want):
            r = c.read_response(method, timeout=20)
            assert r.status == 200 and r.body == body, (target, r)
            if method == "HEAD":  # described, not sent
                assert r.header("Content-Length") == str(len(target) - len("/plain?i=") + 6), r
            if target.startswith("/gen"):
                assert r.chunked, r
        assert r.has_token("Connection", "close")
        assert c.wait_closed(timeout=5), "the connection stayed open after Connection: close"
    assert json.loads(srv.get("/stats").body) == {"closes": 3}


@MODES
def test_the_answers_of_a_pipelined_run_share_one_write(run_server, threads):
    """16 common answers to one write of 16 requests reach the client as
    (nearly) one TCP segment: the server sends with TCP_NODELAY, so before
    -t 4 held them each answer was a segment of its own (16). A batch is
    sent early only when it is RX_BATCH_MS old (a thread descheduled on a
    busy machine): a few segments are allowed for that."""
    srv = run_server("pipeline_run", "-t", threads)
    n = 16
    for attempt in range(3):
        with srv.connect(timeout=10) as c:
            c.send(_burst(c, [("GET", f"/plain?i={i}", None, b"") for i in range(n)]))
            for i in range(n):
                assert c.read_response(timeout=10).body == b"plain %d" % i
            segments = _data_segments_in(c.sock)
        assert 1 <= segments <= 4, f"attempt {attempt}: {n} answers came in {segments} segments"


@pytest.mark.parametrize("threads", ["2", "4"])
def test_a_held_answer_leaves_while_the_next_request_blocks(run_server, threads):
    """The answers before a pipelined request whose application call blocks
    (on a gate only this test opens) arrive while it is still blocked: a
    batch is never held past RX_BATCH_MS, whatever its thread is doing."""
    srv = run_server("pipeline_run", "-t", threads)
    mark = srv.stderr_mark()
    with srv.connect(timeout=10) as c:
        reqs = [("GET", f"/plain?i={i}", None, b"") for i in range(8)]
        reqs.append(("GET", "/wait/g", None, b""))
        c.send(_burst(c, reqs))
        srv.wait_for_stderr("waiting g", timeout=5, start=mark)
        for i in range(8):  # the gate is still shut: none of these may wait for it
            assert c.read_response(timeout=5).body == b"plain %d" % i
        assert srv.get("/release/g", timeout=5).body == b"ok"
        assert c.read_response(timeout=10).body == b"released"
