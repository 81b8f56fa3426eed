"""Behind a proxy: X-Forwarded-For / X-Forwarded-Proto are believed only
from trusted peers (--trust-proxy), and then only the hops we trust."""
import json

from tests.server import run_cli


def who(srv, headers=None):
    resp = srv.get("/", headers=headers or {})
    assert resp.status == 200, resp
    return json.loads(resp.body)


def test_forwarded_headers_are_ignored_by_default(run_server):
    srv = run_server("whoami")
    got = who(srv, {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert got["REMOTE_ADDR"] == "127.0.0.1"
    assert got["scheme"] == "http"


def test_trusted_peer_sets_remote_addr_and_scheme(run_server):
    srv = run_server("whoami", "--trust-proxy", "127.0.0.1")
    got = who(srv, {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert got["REMOTE_ADDR"] == "203.0.113.9"
    assert got["scheme"] == "https"
    # Without the headers the peer is still the peer.
    got = who(srv)
    assert got["REMOTE_ADDR"] == "127.0.0.1" and got["scheme"] == "http"


def test_untrusted_peer_is_not_believed(run_server):
    # We connect from 127.0.0.1, which is outside the trusted network.
    srv = run_server("whoami", "--trust-proxy", "10.0.0.0/8")
    got = who(srv, {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert got["REMOTE_ADDR"] == "127.0.0.1"
    assert got["scheme"] == "http"


def test_only_trusted_hops_are_skipped(run_server):
    srv = run_server("whoami", "--trust-proxy", "127.0.0.0/8, 10.0.0.0/8")
    # The client claims 1.1.1.1; our own proxies are 10.x; the client as
    # our outermost proxy saw it is 198.51.100.4.
    got = who(srv, {"X-Forwarded-For": "1.1.1.1, 198.51.100.4, 10.0.0.7"})
    assert got["REMOTE_ADDR"] == "198.51.100.4"
    # An IPv6 client with a port, as some proxies write it.
    got = who(srv, {"X-Forwarded-For": "[2001:db8::7]:4711"})
    assert got["REMOTE_ADDR"] == "2001:db8::7"
    # Garbage keeps the peer's address; an unknown scheme keeps http.
    got = who(srv, {"X-Forwarded-For": "unknown", "X-Forwarded-Proto": "gopher"})
    assert got["REMOTE_ADDR"] == "127.0.0.1" and got["scheme"] == "http"


def test_the_last_forwarded_line_counts(run_server):
    srv = run_server("whoami", "--trust-proxy", "*")
    with srv.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\n"
               b"X-Forwarded-Proto: http\r\nX-Forwarded-For: 192.0.2.2\r\n"
               b"X-Forwarded-Proto: https\r\n\r\n")
        got = json.loads(c.read_response().body)
    assert got["REMOTE_ADDR"] == "192.0.2.2"
    assert got["scheme"] == "https"


def test_forwarded_allow_ips_from_the_environment(run_server):
    srv = run_server("whoami", env={"FORWARDED_ALLOW_IPS": "127.0.0.1"})
    got = who(srv, {"X-Forwarded-For": "203.0.113.10"})
    assert got["REMOTE_ADDR"] == "203.0.113.10"


def test_bad_trust_setting_is_one_line_and_exit_2():
    r = run_cli("tests/apps/whoami.py", "-p", "0", "--trust-proxy", "10.0.0.0/33")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "not an address or network: 10.0.0.0/33" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_rfc7239_forwarded_from_a_trusted_peer(run_server):
    srv = run_server("whoami", "--trust-proxy", "127.0.0.1, 10.0.0.0/8")
    got = who(srv, {"Forwarded": 'for=198.51.100.4;proto=https, for="10.0.0.7:8080"'})
    assert (got["REMOTE_ADDR"], got["scheme"]) == ("198.51.100.4", "https")
    got = who(srv, {"Forwarded": 'for="[2001:db8::9]:4711";proto=http'})
    assert (got["REMOTE_ADDR"], got["scheme"]) == ("2001:db8::9", "http")
    # Forwarded wins over X-Forwarded-*; a spoofed left-most hop is not believed
    got = who(srv, {"Forwarded": "for=192.0.2.1, for=203.0.113.5;proto=https",
                    "X-Forwarded-For": "192.0.2.200", "X-Forwarded-Proto": "http"})
    assert (got["REMOTE_ADDR"], got["scheme"]) == ("203.0.113.5", "https")
    # nothing usable in it: X-Forwarded-For still counts
    got = who(srv, {"Forwarded": 'for="_hidden"', "X-Forwarded-For": "192.0.2.200"})
    assert got["REMOTE_ADDR"] == "192.0.2.200"


def test_rfc7239_forwarded_from_an_untrusted_peer_is_ignored(run_server):
    srv = run_server("whoami", "--trust-proxy", "10.0.0.0/8")
    got = who(srv, {"Forwarded": "for=198.51.100.4;proto=https"})
    assert (got["REMOTE_ADDR"], got["scheme"]) == ("127.0.0.1", "http")
