"""iodine's command line and environment: every single-dash long spelling,
negative -t/-w (CPU cores / n), -V N as verbosity, -C config files,
-tls-pass, THREADS / WORKERS / WEB_CONCURRENCY / IODINE_REDIS_URL /
SCRIPT_NAME, --root-path, and Iodine.stop/running/master/worker/on_idle."""
import json
import shutil
import ssl
import subprocess

import pytest

from iodine_py import cli
from iodine_py.config import Config, cpu_count
from tests.rawhttp import Connection


def parse(*argv):
    return cli.config_from_args(cli.build_parser().parse_args(list(argv)))


def test_every_iodine_spelling_sets_its_setting(tmp_path):
    cfg = parse("-bind", "127.0.0.2", "-port", "8123", "-threads", "3", "-workers", "2",
                "-public", str(tmp_path), "-keep-alive", "7", "-log", "-max-body", "3",
                "-max-header", "16", "-max-msg", "64", "-ping", "25", "-redis",
                "redis://127.0.0.1:6390/0", "-redis-ping", "9", "-pid", str(tmp_path / "p"),
                "-verbosity", "2", "-warmup")
    assert (cfg.address, cfg.port, cfg.threads, cfg.workers) == ("127.0.0.2", 8123, 3, 2)
    assert cfg.public == str(tmp_path) and cfg.keepalive == 7 and cfg.log
    assert (cfg.max_body, cfg.max_head, cfg.ws_max_msg) == (3 << 20, 16 << 10, 64 << 10)
    assert cfg.ping == 25 and cfg.redis == "redis://127.0.0.1:6390/0" and cfg.redis_ping == 9
    assert cfg.pid == str(tmp_path / "p") and cfg.log_level == "warning" and cfg.preload
    assert parse("-www", str(tmp_path), "-address", "::1").address == "::1"
    ns = cli.build_parser().parse_args(["-tls-cert", "c.pem", "-tls-key", "k.pem",
                                        "-tls-pass", "secret", "-config", "conf.py"])
    assert (ns.tls_cert, ns.tls_key, ns.tls_pass, ns.config_file) == \
        ("c.pem", "k.pem", "secret", "conf.py")


def test_negative_threads_and_workers_divide_the_cores():
    cores = cpu_count()
    assert parse("-w", "-1").workers == cores
    assert parse("-t", "-2").threads == max(1, cores // 2)
    assert parse("-w", "-64").workers == 1


def test_unix_socket_spellings():
    assert parse("-b", "/run/app.sock").address == "unix:/run/app.sock"
    assert parse("-b", "./app.sock").address == "unix:./app.sock"


def test_environment(monkeypatch):
    for var in ("THREADS", "WORKERS", "WEB_CONCURRENCY", "IODINE_REDIS_URL", "SCRIPT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert Config().workers == 3
    monkeypatch.setenv("WORKERS", "5")  # iodine's name wins
    monkeypatch.setenv("THREADS", "4")
    monkeypatch.setenv("IODINE_REDIS_URL", "redis://127.0.0.1:6391/2")
    monkeypatch.setenv("SCRIPT_NAME", "/mounted")
    cfg = Config()
    assert (cfg.workers, cfg.threads) == (5, 4)
    assert cfg.redis == "redis://127.0.0.1:6391/2" and cfg.root_path == "/mounted"
    assert parse("-w", "2", "-t", "1").workers == 2  # a flag wins


def mount(srv, target):
    keys = json.loads(srv.get(target).body)["keys"]
    return keys["SCRIPT_NAME"]["value"], keys["PATH_INFO"]["value"]


def test_environment_reaches_the_server(run_server):
    srv = run_server("basic", env={"THREADS": "3", "WORKERS": "2", "SCRIPT_NAME": "/app"})
    srv.wait_for_stderr("threads: 3, workers: 2", timeout=5)
    assert mount(srv, "/app/environ") == ("/app", "/environ")


def test_root_path(run_server):
    srv = run_server("basic", "--root-path", "/api")
    assert mount(srv, "/api/environ/x") == ("/api", "/environ/x")
    assert mount(srv, "/environ") == ("/api", "/environ")  # outside the prefix: kept


API_APP = '''
import json, os, sys
from iodine_py import Iodine

Iodine.on_idle(lambda: sys.stderr.write("idle ran in %d\\n" % os.getpid()))

def app(environ, start_response):
    if environ["PATH_INFO"] == "/stop":
        Iodine.stop()
    body = json.dumps({"running": Iodine.running(), "master": Iodine.master(),
                       "worker": Iodine.worker(), "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def test_process_roles_on_idle_and_stop(run_server, tmp_path):
    (tmp_path / "api_app.py").write_text(API_APP)
    srv = run_server(str(tmp_path / "api_app.py"))
    srv.wait_for_stderr(f"idle ran in {srv.proc.pid}", timeout=5)
    state = json.loads(srv.get("/").body)
    assert state == {"running": True, "master": True, "worker": True, "pid": srv.proc.pid}
    assert json.loads(srv.get("/stop").body)["running"] is True  # answered, then stops
    assert srv.wait_exit(10) == 0
    srv = run_server(str(tmp_path / "api_app.py"), "-w", "2")
    srv.wait_for_lines("idle ran in", 2, timeout=10)
    state = json.loads(srv.get("/").body)
    assert (state["master"], state["worker"]) == (False, True)
    state = json.loads(srv.get("/stop").body)  # that worker stops; the master replaces it
    srv.wait_for_stderr(f"(pid {state['pid']}) exited with status 0", timeout=10)
    srv.assert_alive()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl tool")
def test_tls_pass_decrypts_an_encrypted_key(run_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-passout", "pass:s3cret",
                    "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60)
    assert "ENCRYPTED" in key.read_text()
    srv = run_server("hello", "-tls-cert", str(cert), "-tls-key", str(key),
                     "-tls-pass", "s3cret")
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    import socket
    with socket.create_connection((srv.host, srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
    from tests.server import run_cli
    proc = run_cli("tests/apps/hello.py", "-p", "0", "-tls-cert", str(cert), "-tls-key",
                   str(key), "-tls-pass", "wrong")
    assert proc.returncode == 2 and b"cannot be decrypted" in proc.stderr, proc.stderr
    assert Connection  # the raw client is used elsewhere in this package
