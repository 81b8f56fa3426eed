"""The shared corpus of raw requests (gunicorn's, llhttp's and h11's test
suites, and published request-smuggling payloads), replayed against our
server by ../shared/conformance/http_replay.py, which judges each answer.

The server runs with gunicorn's size policy (request line and header line
4 KiB, 100 headers) because gunicorn's cases about those limits are written
for it; our own defaults (8 KiB, 128) are the issue's.

A few cases cannot all pass on any server, because the upstream suites
contradict each other or expect a non-HTTP protocol; each is listed in
KNOWN with the rule we follow. Any other FAIL, and any accepted smuggling
probe, fails this test.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ../shared beside the clone (as CI has it), or $IODINE_CONFORMANCE_DIR
REPLAY = os.path.join(os.environ.get("IODINE_CONFORMANCE_DIR")
                      or os.path.join(os.path.dirname(ROOT), "shared", "conformance"),
                      "http_replay.py")

KNOWN = {
    "h11/test_io_L264_2":
        "obs-fold: RFC 9112 5.2 allows rejecting or unfolding; gunicorn's obs_fold_01 "
        "requires rejection, h11 acceptance. We reject: one meaning per request.",
    "h11/test_io_L561_10":
        "0x01 in a field value: RFC 9110 5.5 makes CTLs invalid; gunicorn (BEL, DEL) and "
        "llhttp (FF) require rejection, h11 acceptance. We reject every CTL but HTAB.",
    "gunicorn/valid/rfc9112_smuggle_gzip_chunked_01":
        "gzip before chunked: a transfer coding we do not implement gets 501 "
        "(RFC 9112 6.1, and the issue's rule).",
    "llhttp/invalid__http_protocol_and_announce_method":
        "RFC 9110 9.1: any token is a method; llhttp refuses ANNOUNCE for HTTP only.",
    "llhttp/method__source_request_with_ice": "ICE/1.0 is not HTTP: 400.",
    "llhttp/method__options_request_with_rtsp": "RTSP/1.0 is not HTTP: 400.",
    "llhttp/method__announce_request_with_rtsp": "RTSP/1.0 is not HTTP: 400.",
    "llhttp/sample__no_http_version": "HTTP/0.9 requests are not served: 400.",
    "llhttp/connection__upgrade_get_request":
        "a hixie-76 handshake (Upgrade: WebSocket, no Sec-WebSocket-Version): "
        "SPEC-WebSocket.md 2 answers a missing version 426 with Sec-WebSocket-Version: 13 "
        "(RFC 6455 4.4) instead of serving it as a plain request.",
}


@pytest.mark.skipif(not os.path.exists(REPLAY) and not os.environ.get("CI"),
                    reason="../shared/conformance is not beside this checkout")
def test_http_corpus_fails_only_known_contradictions(run_server, tmp_path):
    srv = run_server("hello", "--max-header-line", "4", "--max-headers", "100")
    out = tmp_path / "replay.json"
    proc = subprocess.run([sys.executable, REPLAY, "127.0.0.1", str(srv.port), "--json", str(out)],
                          capture_output=True, text=True, timeout=240)
    summary = proc.stdout[-4000:]
    data = json.loads(out.read_text())
    cases = data["results"] if isinstance(data, dict) else data
    verdict = {c["id"]: str(c.get("verdict", "")) for c in cases}
    failed = sorted(cid for cid, v in verdict.items() if v.startswith("FAIL"))
    unexpected = [cid for cid in failed if cid not in KNOWN]
    assert not unexpected, f"unexpected failures {unexpected}\n{summary}"
    accepted = [cid for cid, v in verdict.items() if v == "ACCEPTED"]
    unexplained = [cid for cid in accepted if cid not in PROBES_SERVED]
    assert not unexplained, f"smuggling probes accepted: {unexplained}\n{summary}"
    srv.assert_alive()


# Probes that a correct server may serve, with why (read against each
# payload's upstream bug title).
PROBES_SERVED = {
    "http-garden/server_bug_41":
        "the bug is stripping \\x85/\\xa0 from header values (Unicode whitespace); we "
        "serve the request with the bytes kept, as RFC 9110 5.5 obs-text allows.",
}
