"""Validators and partial answers for static files: ETag / If-None-Match and
Last-Modified / If-Modified-Since (304), Range (206, 416), If-Range, and the
precompressed .gz sibling chosen by Accept-Encoding (RFC 9110 8.8, 13, 14)."""

from __future__ import annotations

import gzip
import os
import time
from email.utils import formatdate, parsedate_to_datetime

import pytest

from tests.static.conftest import APP_JS, DIGITS, HELLO


def etag_of(srv, path="/hello.txt", headers=None):
    resp = srv.get(path, headers)
    assert resp.status == 200
    return resp.header("ETag"), resp.header("Last-Modified")


def http_date(t: float) -> str:
    return formatdate(t, usegmt=True)


# -- ETag / If-None-Match -----------------------------------------------------------

def test_etag_match_is_304_without_a_body(static_srv):
    etag, lm = etag_of(static_srv)
    with static_srv.connect() as c:
        c.request("GET", "/hello.txt", [("If-None-Match", etag)])
        resp = c.read_response()
        assert resp.status == 304
        assert resp.body == b""
        assert resp.header("ETag") == etag
        assert resp.header("Last-Modified") == lm
        assert resp.header("Content-Length") is None
        c.request("GET", "/digits.txt")  # the connection goes on, nothing stray
        assert c.read_response().body == DIGITS


@pytest.mark.parametrize("form", ["{e}", "W/{e}", '"other", {e}', ' "a" ,W/{e} ', "*"])
def test_if_none_match_forms_that_match(static_srv, form):
    etag, _ = etag_of(static_srv)
    resp = static_srv.get("/hello.txt", [("If-None-Match", form.format(e=etag))])
    assert resp.status == 304


@pytest.mark.parametrize("value", ['"other"', 'W/"other"', "garbage", '"'])
def test_if_none_match_mismatch_is_200(static_srv, value):
    resp = static_srv.get("/hello.txt", [("If-None-Match", value)])
    assert resp.status == 200 and resp.body == HELLO


def test_head_with_matching_etag_is_304(static_srv):
    etag, _ = etag_of(static_srv)
    resp = static_srv.request("HEAD", "/hello.txt", [("If-None-Match", etag)])
    assert resp.status == 304


def test_etag_changes_when_the_file_changes(static_srv, site):
    path = site.pub / "changing.txt"
    old, _ = etag_of(static_srv, "/changing.txt")
    path.write_bytes(b"version 2, longer")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    new, _ = etag_of(static_srv, "/changing.txt")
    assert new != old
    resp = static_srv.get("/changing.txt", [("If-None-Match", old)])
    assert resp.status == 200 and resp.body == b"version 2, longer"
    assert static_srv.get("/changing.txt", [("If-None-Match", new)]).status == 304


# -- Last-Modified / If-Modified-Since --------------------------------------------------

def test_last_modified_is_the_files_mtime(static_srv, site):
    _, lm = etag_of(static_srv)
    mtime = int((site.pub / "hello.txt").stat().st_mtime)
    assert lm == http_date(mtime)
    assert int(parsedate_to_datetime(lm).timestamp()) == mtime


@pytest.mark.parametrize("delta,status", [(0, 304), (3600, 304), (-1, 200), (-86400, 200)])
def test_if_modified_since(static_srv, site, delta, status):
    mtime = int((site.pub / "hello.txt").stat().st_mtime)
    resp = static_srv.get("/hello.txt", [("If-Modified-Since", http_date(mtime + delta))])
    assert resp.status == status
    assert resp.body == (b"" if status == 304 else HELLO)


@pytest.mark.parametrize("form", [
    "%a, %d %b %Y %H:%M:%S GMT",  # IMF-fixdate
    "%A, %d-%b-%y %H:%M:%S GMT",  # RFC 850
    "%a %b %e %H:%M:%S %Y",       # asctime
])
def test_if_modified_since_obsolete_date_forms(static_srv, site, form):
    mtime = int((site.pub / "hello.txt").stat().st_mtime)
    value = time.strftime(form, time.gmtime(mtime + 60))
    assert static_srv.get("/hello.txt", [("If-Modified-Since", value)]).status == 304


def test_malformed_if_modified_since_is_ignored(static_srv):
    resp = static_srv.get("/hello.txt", [("If-Modified-Since", "yesterday")])
    assert resp.status == 200


def test_if_none_match_wins_over_if_modified_since(static_srv, site):
    mtime = int((site.pub / "hello.txt").stat().st_mtime)
    etag, _ = etag_of(static_srv)
    later, earlier = http_date(mtime + 3600), http_date(mtime - 3600)
    resp = static_srv.get("/hello.txt", [("If-None-Match", '"nope"'),
                                         ("If-Modified-Since", later)])
    assert resp.status == 200, "a failed If-None-Match must not fall back to the date"
    resp = static_srv.get("/hello.txt", [("If-None-Match", etag),
                                         ("If-Modified-Since", earlier)])
    assert resp.status == 304


# -- Range --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,body,crange", [
    ("bytes=0-4", b"01234", "bytes 0-4/10"),
    ("bytes=3-3", b"3", "bytes 3-3/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),        # open-ended
    ("bytes=-3", b"789", "bytes 7-9/10"),        # suffix
    ("bytes=-50", DIGITS, "bytes 0-9/10"),       # suffix longer than the file
    ("bytes=4-999", b"456789", "bytes 4-9/10"),  # end past the file
])
def test_single_range_is_206(static_srv, spec, body, crange):
    resp = static_srv.get("/digits.txt", [("Range", spec)])
    assert resp.status == 206
    assert resp.body == body
    assert resp.header("Content-Range") == crange
    assert resp.header("Content-Length") == str(len(body))
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"


@pytest.mark.parametrize("spec", ["bytes=10-", "bytes=10-20", "bytes=-0", "bytes=99999999999999999999-"])
def test_unsatisfiable_range_is_416(static_srv, spec):
    with static_srv.connect() as c:
        c.request("GET", "/digits.txt", [("Range", spec)])
        resp = c.read_response()
        assert resp.status == 416
        assert resp.header("Content-Range") == "bytes */10"
        assert resp.body == b""
        c.request("GET", "/hello.txt")  # keep-alive goes on
        assert c.read_response().body == HELLO


@pytest.mark.parametrize("spec", [
    "bytes=0-1,4-5",   # several ranges: documented choice, the whole file
    "bytes=0-1, 4-5",
    "bytes=5-2",       # invalid: ignored
    "bytes=abc",
    "items=0-3",       # not a unit we know
])
def test_ranges_we_ignore_get_the_whole_file(static_srv, spec):
    resp = static_srv.get("/digits.txt", [("Range", spec)])
    assert resp.status == 200 and resp.body == DIGITS
    assert resp.header("Content-Range") is None


def test_range_is_ignored_on_head(static_srv):
    resp = static_srv.request("HEAD", "/digits.txt", [("Range", "bytes=0-1")])
    assert resp.status == 200
    assert resp.header("Content-Length") == "10"


def test_if_range(static_srv):
    etag, lm = etag_of(static_srv, "/digits.txt")
    rng = ("Range", "bytes=5-")
    assert static_srv.get("/digits.txt", [rng, ("If-Range", etag)]).status == 206
    assert static_srv.get("/digits.txt", [rng, ("If-Range", lm)]).status == 206
    resp = static_srv.get("/digits.txt", [rng, ("If-Range", '"stale"')])
    assert resp.status == 200 and resp.body == DIGITS
    assert static_srv.get("/digits.txt", [rng, ("If-Range", "W/" + etag)]).status == 200
    assert static_srv.get("/digits.txt",
                          [rng, ("If-Range", "Thu, 01 Jan 1970 00:00:00 GMT")]).status == 200


def test_several_ranges_on_one_connection(static_srv):
    with static_srv.connect() as c:
        for a in range(10):
            c.request("GET", "/digits.txt", [("Range", f"bytes={a}-{a}")])
            resp = c.read_response()
            assert resp.status == 206 and resp.body == DIGITS[a:a + 1]


# -- precompressed siblings -----------------------------------------------------------

GZ = gzip.compress(APP_JS, mtime=0)


@pytest.mark.parametrize("accept", ["gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.5",
                                    "*", "x-gzip", "GZIP"])
def test_gzip_sibling_when_accepted(static_srv, accept):
    resp = static_srv.get("/app.js", [("Accept-Encoding", accept)])
    assert resp.status == 200
    assert resp.header("Content-Encoding") == "gzip"
    assert resp.header("Vary") == "Accept-Encoding"
    assert resp.header("Content-Type") == "text/javascript; charset=utf-8"
    assert resp.header("Content-Length") == str(len(GZ))
    assert resp.body == GZ and gzip.decompress(resp.body) == APP_JS


@pytest.mark.parametrize("accept", [None, "gzip;q=0", "deflate, br", "identity",
                                    "*;q=0", "gzip;q=0, *", ""])
def test_identity_when_gzip_is_not_accepted(static_srv, accept):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    resp = static_srv.get("/app.js", headers)
    assert resp.status == 200
    assert resp.header("Content-Encoding") is None
    assert resp.header("Vary") == "Accept-Encoding"  # the answer depends on it
    assert resp.body == APP_JS


def test_representations_have_their_own_etags(static_srv):
    plain, _ = etag_of(static_srv, "/app.js")
    zipped, _ = etag_of(static_srv, "/app.js", [("Accept-Encoding", "gzip")])
    assert plain != zipped
    gz = [("Accept-Encoding", "gzip")]
    assert static_srv.get("/app.js", gz + [("If-None-Match", zipped)]).status == 304
    resp = static_srv.get("/app.js", [("If-None-Match", zipped)])
    assert resp.status == 200 and resp.body == APP_JS


def test_range_applies_to_the_gzip_representation(static_srv):
    resp = static_srv.get("/app.js", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")])
    assert resp.status == 206
    assert resp.header("Content-Encoding") == "gzip"
    assert resp.header("Content-Range") == f"bytes 0-9/{len(GZ)}"
    assert resp.body == GZ[:10]


def test_the_gz_file_itself(static_srv):
    resp = static_srv.get("/app.js.gz", [("Accept-Encoding", "gzip")])
    assert resp.status == 200 and resp.body == GZ
    assert resp.header("Content-Type") == "application/gzip"
    assert resp.header("Content-Encoding") is None
