"""TLS settings: the CLI's flags and their one-line errors (exit status 2),
Config/listen() validation, and the message a build without OpenSSL gives.
No server needs to come up for any of these."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from iodine_py.config import Config, ConfigError
from tests.server import run_cli


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("iodine: error: "), lines
    assert "Traceback" not in proc.stderr.decode()
    return lines[0]


@pytest.fixture(scope="module")
def pem_pair(tmp_path_factory):
    """A certificate and key (the openssl tool, when present)."""
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("the openssl command line tool is not installed")
    d = tmp_path_factory.mktemp("pem")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_cert_without_key(pem_pair):
    cert, _ = pem_pair
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "-tls-cert", str(cert)))
    assert "tls_cert needs tls_key" in msg


def test_key_without_cert(pem_pair):
    _, key = pem_pair
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "--tls-key", str(key)))
    assert "tls_key needs tls_cert" in msg


def test_missing_files(tmp_path, pem_pair):
    cert, key = pem_pair
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "-tls-cert",
                                 str(tmp_path / "nope.pem"), "-tls-key", str(key)))
    assert "no such file" in msg and "nope.pem" in msg


def _needs_tls_build():
    from iodine_py._native import lib

    if not lib.tls_available():
        pytest.skip("this build has no TLS: PEM contents are never read")


@pytest.mark.parametrize("what", ["cert", "key"])
def test_file_that_is_not_pem(tmp_path, pem_pair, what):
    _needs_tls_build()
    cert, key = pem_pair
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    args = ["-tls-cert", str(junk if what == "cert" else cert),
            "-tls-key", str(junk if what == "key" else key)]
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", *args))
    assert "junk.pem" in msg and "PEM" in msg


def test_key_of_another_certificate(tmp_path, pem_pair):
    _needs_tls_build()
    cert, _ = pem_pair
    other_key = tmp_path / "other.pem"
    subprocess.run([shutil.which("openssl"), "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(other_key)],
                   check=True, capture_output=True, timeout=60)
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "-tls-cert", str(cert),
                                 "-tls-key", str(other_key)))
    assert "does not match" in msg


def test_encrypted_key_fails_instead_of_prompting(tmp_path, pem_pair):
    _needs_tls_build()
    cert, key = pem_pair
    enc = tmp_path / "enc.pem"
    subprocess.run([shutil.which("openssl"), "pkey", "-in", str(key), "-aes256",
                    "-passout", "pass:secret", "-out", str(enc)],
                   check=True, capture_output=True, timeout=60)
    # stdin is /dev/null and a timeout bounds it: a pass phrase prompt would hang
    msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "-tls-cert", str(cert),
                                 "-tls-key", str(enc), timeout=20))
    assert "encrypted" in msg


def test_help_lists_the_flags():
    out = run_cli("--help").stdout.decode()
    for flag in ("-tls", "-tls-cert", "-tls-key"):
        assert flag in out


def test_without_openssl_the_message_says_how_to_rebuild():
    """A build without OpenSSL cannot be made in-test cheaply; what can be
    checked: -tls's outcome matches what the build says about itself."""
    from iodine_py._native import lib

    if lib.tls_available():
        proc = run_cli("tests/apps/tls_app.py", "-p", "0", "-tls", "--version")
        assert proc.returncode == 0  # --version wins; -tls parses
    else:
        msg = one_line_error(run_cli("tests/apps/tls_app.py", "-p", "0", "-tls"))
        assert "OpenSSL" in msg and "libssl-dev" in msg and "rebuild" in msg


# -- Config and listen() ----------------------------------------------------------------------

def test_config_validation_pairs_cert_and_key(pem_pair):
    cert, key = pem_pair
    with pytest.raises(ConfigError, match="tls_cert needs tls_key"):
        Config(tls_cert=str(cert)).validate()
    with pytest.raises(ConfigError, match="tls_key needs tls_cert"):
        Config(tls_key=str(key)).validate()
    Config(tls_cert=str(cert), tls_key=str(key)).validate()
    Config(tls=True).validate()


def test_listener_settings(pem_pair):
    cert, key = pem_pair
    cfg = Config()
    app = lambda env, sr: []  # noqa: E731
    assert cfg.listener(app).tls is False
    assert cfg.listener(app, tls=True).tls is True
    lst = cfg.listener(app, tls_cert=str(cert), tls_key=str(key))
    assert (lst.tls, lst.tls_cert, lst.tls_key) == (True, str(cert), str(key))  # cert implies TLS
    with pytest.raises(ConfigError):
        cfg.listener(app, tls_cert=str(cert))
    # the config's own TLS settings are every listener's default
    cfg = Config(tls=True)
    assert cfg.listener(app).tls is True
    assert cfg.listener(app, tls=False).tls is False
