"""Request smuggling: framing a front proxy and this server could read two
ways. Each payload carries a second request, GET /smuggled, that exists
only if the body is framed the wrong way. Every case must end with one
answer (400, or 501 for a transfer coding we do not implement), the
connection closed with nothing after it, and the app never seeing
/smuggled (it logs "hostile-SMUGGLED" if it does).

(tests/http/test_bad_requests.py has the plain framing errors: CL with TE,
differing CLs, a malformed chunk size, obs-fold, space before a colon, NUL
in a value. These are the published smuggling shapes, each with a payload
behind it.)
"""

from __future__ import annotations

import pytest

from tests.rawhttp import ConnectionClosed

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
# the smuggled request as one chunk of a chunked body
CHUNK = b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: x\r\n"

CASES = {
    # CL.TE: a front end using Content-Length forwards the whole thing; one
    # using chunked stops at "0" and takes the rest as the next request.
    "CL.TE": (POST + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
              % (5 + len(SMUGGLED)) + SMUGGLED, {400}),
    # TE.CL: the other way round.
    "TE.CL": (POST + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + CHUNK, {400}),
    # TE.TE: one side does not recognise an obfuscated Transfer-Encoding
    # and falls back to Content-Length (or to no body at all).
    "TE-xchunked": (POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
                    {400, 501}),
    "TE-xchunked+CL": (POST + b"Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n" + CHUNK,
                       {400, 501}),
    "TE-chunked-identity": (POST + b"Transfer-Encoding: chunked, identity\r\n\r\n" + CHUNK,
                            {400, 501}),
    "TE-chunked-comma": (POST + b"Transfer-Encoding: chunked,\r\n\r\n" + CHUNK, {400, 501}),
    "TE-quoted": (POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n' + SMUGGLED, {400, 501}),
    "TE-leading-space-line": (POST + b" Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                              + CHUNK, {400}),
    "TE-double-space+CL": (POST + b"Transfer-Encoding:  chunked\r\nContent-Length: 4\r\n\r\n"
                           + CHUNK, {400}),
    "TE-tab-value+CL": (POST + b"Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n" + CHUNK,
                        {400}),
    "TE-tab-before-colon": (POST + b"Transfer-Encoding\t: chunked\r\n\r\n" + CHUNK, {400}),
    "TE-tab-line": (POST + b"\tTransfer-Encoding: chunked\r\n\r\n" + CHUNK, {400}),
    "TE-vertical-tab": (POST + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
                        {400, 501}),
    "TE-duplicate": (POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + CHUNK, {400, 501}),
    "TE-duplicate-other": (POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
                           + CHUNK, {400, 501}),
    "TE-space-before-colon": (POST + b"Transfer-Encoding : chunked\r\n\r\n" + CHUNK, {400}),
    "CL-space-before-colon": (POST + b"Content-Length : %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
                              {400}),
    "TE-obs-fold": (POST + b"Transfer-Encoding: identity\r\n chunked\r\n\r\n" + CHUNK, {400}),
    "CL-obs-fold": (POST + b"Content-Length: 0\r\n %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, {400}),
    "bare-LF-between-TE-and-CL": (POST + b"Transfer-Encoding: chunked\nContent-Length: 4\r\n\r\n"
                                  + CHUNK, {400}),
    "bare-LF-head": (b"POST / HTTP/1.1\nHost: x\nContent-Length: %d\n\n" % len(SMUGGLED)
                     + SMUGGLED, {400}),
    "bare-CR-in-head": (POST + b"X: a\rTransfer-Encoding: chunked\r\n\r\n" + CHUNK, {400}),
    "bare-LF-chunk-lines": (POST + b"Transfer-Encoding: chunked\r\n\r\n"
                            + b"%x\n" % len(SMUGGLED) + SMUGGLED + b"\n0\n\n", {400}),
    "chunk-size-0x": (POST + b"Transfer-Encoding: chunked\r\n\r\n"
                      + b"0x%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n", {400}),
    "chunk-size-overflow": (POST + b"Transfer-Encoding: chunked\r\n\r\n"
                            + b"1%016x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
                            {400, 413}),
    "chunk-size-space": (POST + b"Transfer-Encoding: chunked\r\n\r\n"
                         + b" %x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n", {400}),
    "NUL-after-chunked": (POST + b"Transfer-Encoding: chunked\x00\r\nContent-Length: 4\r\n\r\n"
                          + CHUNK, {400}),
    "NUL-in-CL": (POST + b"Content-Length: 0\x00%d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, {400}),
    "NUL-in-name": (POST + b"Transfer\x00Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + CHUNK,
                    {400}),
    "NUL-in-target": (b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED, {400}),
    "CL-plus-sign": (POST + b"Content-Length: +%d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, {400}),
    "CL-list-differing": (POST + b"Content-Length: 0, %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
                          {400}),
    "CL-and-TE-in-HTTP10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                            b"Content-Length: 4\r\n\r\n" + CHUNK, {400}),
}


@pytest.fixture(scope="module")
def smuggle_srv(request):
    """One server for the whole table (each case checks it is still alive
    and that it never ran /smuggled)."""
    from tests.server import ServerProcess, base_env, iodine_argv
    srv = ServerProcess(iodine_argv("hostile_app"), env=base_env())
    try:
        srv.wait_listening()
    except AssertionError:
        srv.kill()
        raise
    yield srv
    code = srv.stop()
    problems = srv.problems()
    assert code == 0 and not problems, f"{problems}\n{srv.stderr}"


@pytest.mark.parametrize("name", list(CASES))
def test_smuggling_attempt_is_refused_and_closed(smuggle_srv, name):
    srv = smuggle_srv
    payload, statuses = CASES[name]
    with srv.connect() as c:
        c.send(payload)
        try:
            resp = c.read_response(timeout=5)
        except ConnectionClosed as e:
            raise AssertionError(f"closed without an answer; got {e.partial[:200]!r}")
        assert resp.status in statuses, f"{name}: expected {statuses}, got {resp!r}"
        try:
            rest = c.read_until_close(timeout=3)
        except TimeoutError:
            raise AssertionError(f"{name}: connection left open after {resp.status}")
        assert rest == b"", f"{name}: more after the refusal: {rest[:200]!r}"
    srv.assert_alive()
    assert "hostile-SMUGGLED" not in srv.stderr, f"{name}: the app served /smuggled"


def test_identity_then_chunked_is_chunked_and_the_body_stays_a_body(smuggle_srv):
    """ "identity, chunked" is accepted on purpose (ext/http1_parser.h:
    identity is a no-op coding; RFC 2616 4.4 framed any TE but identity as
    chunked, so old and new readers agree). The chunk holding GET /smuggled
    is body: one answer, no second one, the app never sees /smuggled."""
    srv = smuggle_srv
    with srv.connect() as c:
        c.send(POST + b"Transfer-Encoding: identity, chunked\r\n\r\n" + CHUNK)
        assert c.read_response().status == 200
        assert not c.readable(0.5), f"a second answer: {c.read_some()[:200]!r}"
    srv.assert_alive()
    assert "hostile-SMUGGLED" not in srv.stderr


def test_a_correct_chunked_body_then_a_pipelined_request_is_served():
    """The control case: the same bytes framed correctly are two requests,
    both answered (so the refusals above are about framing, not about a
    second request on the connection)."""
    from tests.server import ServerProcess, base_env, iodine_argv
    srv = ServerProcess(iodine_argv("hostile_app"), env=base_env())
    try:
        srv.wait_listening()
        with srv.connect() as c:
            c.send(POST + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNK
                   + b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
            assert c.read_response().status == 200
    finally:
        srv.stop()
