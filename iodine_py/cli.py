"""The ``iodine`` command: flags map one-to-one onto Config fields.

Flag names follow Ruby iodine's (``-p``, ``-t``, ``-w``, ``-maxbd``,
``-maxhd``, ``-k``...), each with a long form. Every error is one line on
stderr and exit status 2; a bad flag never shows a traceback. The defaults
--help shows are read from Config, never written here
(tests/test_cli_defaults.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import runpy
import sys
from typing import Any, Callable, List, NoReturn, Optional, Sequence

from . import __version__
from ._native import lib
from .cluster import BootError
from .config import (ACCESS_LOG_FORMATS, DEFAULT_PORT, DEFAULT_THREADS, DEFAULT_WORKERS,
                     DEFLATE_BITS_MAX, DEFLATE_BITS_MIN, KIB, LOG_LEVELS, MIB, Config,
                     ConfigError, cpu_count, per_cores)
from .importer import ImportFromStringError, NoAppError, describe_error, load_app
from .log import level_for_verbosity, logger
from .server import Iodine


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"iodine: error: {message} (see iodine --help)\n")
        raise SystemExit(2)


def _int(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"{what} must be at least {lo}, not {value}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"seconds must be positive, not {text}")
    return value


def _seconds_or_off(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _seconds(text)


def _nonneg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seconds must not be negative, not {text}")
    return value


def _count(what: str, lo: int) -> Callable[[str], int]:
    """-t/-w: a count (at least `lo`), or -N for the CPU cores / N."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}") from None
        if 0 <= value < lo:
            raise argparse.ArgumentTypeError(f"{what} must be at least {lo} (or -N: "
                                             f"CPU cores / N), not {value}")
        return per_cores(value)
    return parse


def _mode(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"mode must be octal like 660, not {text!r}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"mode must be 000..777, not {text}")
    return value


def _port(text: str) -> int:
    value = _int(0, "port")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _default(name: str, unit: int = 1) -> str:
    """Config's default for a field as --help shows it, in the flag's unit
    (KIB, MIB): the help never repeats a number Config holds."""
    value = _FIELDS[name].default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        scaled = value / unit
        return str(int(scaled)) if scaled == int(scaled) else f"{scaled:g}"
    return str(value)


def build_parser() -> _Parser:
    d = _default
    p = _Parser(
        prog="iodine",
        description="Serve a WSGI application with iodine-py's C core.",
        allow_abbrev=False,
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="APP is a file (app.py, app.py:attr) or a module (pkg.module:attr); "
               "the attribute defaults to 'app'.",
    )
    p.add_argument("app", nargs="?", metavar="APP", help="the WSGI application to serve")
    g = p.add_argument_group("listening")
    g.add_argument("-p", "-port", "--port", type=_port, default=None,
                   help=f"TCP port (default: $PORT or {DEFAULT_PORT}; 0 picks a free port)")
    g.add_argument("-b", "-bind", "-address", "--bind", "--address", dest="address",
                   default=None,
                   help="address to bind; unix:/path, /path or ./path: a Unix socket "
                        f"(default: {d('address')})")
    g.add_argument("--fd", dest="fds", type=_int(0, "fd"), action="append", default=None,
                   metavar="N",
                   help="serve on the listening socket inherited as descriptor N (repeatable; "
                        "systemd's $LISTEN_FDS is used when given) instead of binding")
    g.add_argument("--backlog", type=_int(0, "backlog"), default=None,
                   help="listen(2) queue of connections not yet accepted "
                        f"(default: {d('backlog')}, the kernel's SOMAXCONN)")
    g.add_argument("--unix-mode", dest="unix_mode", type=_mode, default=None, metavar="MODE",
                   help="permissions of a Unix socket we bind, octal like 660 "
                        "(default: as the umask has it)")
    g = p.add_argument_group("TLS (https://, wss://)")
    g.add_argument("-tls", "--tls", dest="tls", action="store_true",
                   help="serve TLS; alone, with a self-signed certificate for localhost "
                        "made at start (development only)")
    g.add_argument("-tls-cert", "--tls-cert", dest="tls_cert", default=None, metavar="FILE",
                   help="PEM certificate (chain) to serve; implies -tls, needs -tls-key")
    g.add_argument("-tls-key", "--tls-key", dest="tls_key", default=None, metavar="FILE",
                   help="PEM private key of -tls-cert")
    g.add_argument("-tls-pass", "--tls-pass", dest="tls_pass", default=None, metavar="PASS",
                   help="passphrase of an encrypted -tls-key (default: $IODINE_TLS_PASS)")
    g = p.add_argument_group("static files")
    g.add_argument("-www", "-public", "--public", dest="public", default=None, metavar="DIR",
                   help="serve GET/HEAD for files under DIR from C, before the app "
                        "(folders: index.html; .gz siblings; ETag, Range); with no APP, "
                        "only these files (404 for the rest)")
    g = p.add_argument_group("concurrency")
    g.add_argument("-t", "-threads", "--threads", type=_count("threads", 1), default=None,
                   help="Python threads running the app; -N: CPU cores / N "
                        f"(default: $THREADS or {DEFAULT_THREADS}, on the event loop)")
    g.add_argument("-w", "-workers", "--workers", type=_count("workers", 0), default=None,
                   help="worker processes; 0: one per CPU core; -N: cores / N "
                        f"(default: $WORKERS, $WEB_CONCURRENCY or {DEFAULT_WORKERS})")
    g.add_argument("--preload", "-warmup", dest="preload", action="store_true", default=None,
                   help="import the app once in the master before forking workers (shared "
                        "memory; a rolling restart then keeps the old code) instead of in "
                        "each worker after the fork")
    g.add_argument("--reuseport", action="store_true", default=None,
                   help="each worker binds its own SO_REUSEPORT socket instead of sharing "
                        "the master's (connections arriving before workers bind, or queued "
                        "on a worker that stops, are refused: see README)")
    g = p.add_argument_group("limits")
    g.add_argument("-maxbd", "-max-body", "--max-body", dest="max_body", type=_int(1, "max body (MiB)"),
                   default=None, help=f"largest request body, MiB (default: {d('max_body', MIB)})")
    g.add_argument("-maxhd", "-max-header", "--max-head", dest="max_head", type=_int(1, "max head (KiB)"),
                   default=None,
                   help=f"largest request line + headers, KiB (default: {d('max_head', KIB)})")
    g.add_argument("--max-header-line", dest="max_header_line",
                   type=_int(1, "max header line (KiB)"), default=None,
                   help=f"longest single header line, KiB (default: {d('max_header_line', KIB)})")
    g.add_argument("--max-headers", dest="max_headers", type=_int(1, "max headers"),
                   default=None,
                   help=f"most header fields in a request (default: {d('max_headers')})")
    g.add_argument("-k", "-keep-alive", "--keep-alive", dest="keepalive", type=_seconds, default=None,
                   help=f"idle keep-alive timeout, seconds (default: {d('keepalive')})")
    g.add_argument("--body-spill", dest="body_spill", type=_int(1, "body spill (KiB)"),
                   default=None,
                   help="bodies over this many KiB go to a temp file "
                        f"(default: {d('body_spill', KIB)})")
    g.add_argument("--header-timeout", dest="header_timeout", type=_seconds_or_off, default=None,
                   help="a request head must arrive whole within this, seconds; 0: off "
                        f"(default: {d('header_timeout')})")
    g.add_argument("--min-body-rate", dest="min_body_rate", type=_int(0, "min body rate"),
                   default=None,
                   help="after --header-timeout, a request body must average this many bytes a "
                        f"second (408 under); 0: off (default: {d('min_body_rate')})")
    g.add_argument("--max-connections", dest="max_connections", type=_int(0, "max connections"),
                   default=None,
                   help="connections open at once; at the cap new ones wait in the backlog "
                        f"(default {d('max_connections')}: the open-file limit less an eighth)")
    g = p.add_argument_group("WebSocket and SSE")
    g.add_argument("-maxms", "-max-msg", "--max-msg", dest="ws_max_msg", type=_int(1, "max message (KiB)"),
                   default=None,
                   help="largest incoming WebSocket message, KiB "
                        f"(default: {d('ws_max_msg', KIB)})")
    g.add_argument("-ping", "--ping", dest="ping", type=_seconds, default=None,
                   help="WebSocket ping / SSE keep-alive interval and silence limit, seconds "
                        f"(default: {d('ping')})")
    g.add_argument("--max-pending", dest="max_pending", type=_int(1, "max pending (KiB)"),
                   default=None,
                   help="output a WebSocket/SSE client may leave unread before it is cut off, KiB "
                        f"(default: {d('max_pending', KIB)})")
    g.add_argument("--ws-deflate", dest="ws_deflate", choices=("on", "off"), default=None,
                   help="agree to permessage-deflate when a WebSocket client offers it "
                        f"(default: {d('ws_deflate')})")
    g.add_argument("--ws-deflate-bits", dest="ws_deflate_bits",
                   type=_int(DEFLATE_BITS_MIN, "deflate window bits"), default=None,
                   help=f"compression window, {DEFLATE_BITS_MIN}..{DEFLATE_BITS_MAX}: the "
                        "server's, and the most a client may keep "
                        f"(default: {d('ws_deflate_bits')})")
    g.add_argument("--ws-deflate-min", dest="ws_deflate_min", type=_int(0, "deflate minimum"),
                   default=None,
                   help="outgoing messages under this many bytes are sent uncompressed "
                        f"(default: {d('ws_deflate_min')})")
    g.add_argument("--ws-deflate-mem", dest="ws_deflate_mem", type=_int(0, "deflate memory (KiB)"),
                   default=None,
                   help="inflate state a connection may keep between messages, KiB (a client's "
                        "window plus 7 KiB); under it the client must reset its context every "
                        f"message (default: {d('ws_deflate_mem', KIB)})")
    g = p.add_argument_group("pub/sub")
    g.add_argument("-r", "-redis", "--redis", dest="redis", default=None, metavar="URL",
                   help="share pub/sub through Redis: redis://[user:password@]host:port/db "
                        "(default: $IODINE_REDIS_URL)")
    g.add_argument("-rp", "-redis-ping", "--redis-ping", dest="redis_ping", type=_seconds, default=None,
                   help="seconds between PINGs that detect a dead Redis connection "
                        f"(default: {d('redis_ping')})")
    g.add_argument("--history", dest="history", type=_int(0, "history"), default=None,
                   metavar="N",
                   help="keep the last N messages of each channel for subscribers that resume "
                        f"(SSE Last-Event-ID, since=); 0 is off (default: {d('history')})")
    g.add_argument("--history-channels", dest="history_channels",
                   type=_int(1, "history channels"), default=None, metavar="N",
                   help="channels with history at most; the least recently published "
                        f"goes first (default: {d('history_channels')})")
    g.add_argument("--history-bytes", dest="history_bytes", type=_int(1, "history bytes (MiB)"),
                   default=None, metavar="MIB",
                   help=f"memory for all history, MiB (default: {d('history_bytes', MIB)})")
    g = p.add_argument_group("behind a proxy")
    g.add_argument("--trust-proxy", "--forwarded-allow-ips", dest="trust_proxy", default=None,
                   metavar="ADDRS",
                   help="addresses/networks (e.g. 127.0.0.1,10.0.0.0/8, or *) whose Forwarded "
                        "(RFC 7239), else X-Forwarded-For and X-Forwarded-Proto, set REMOTE_ADDR "
                        "and wsgi.url_scheme (default: $FORWARDED_ALLOW_IPS or none)")
    g.add_argument("--root-path", dest="root_path", default=None, metavar="PATH",
                   help="the app is mounted under PATH: SCRIPT_NAME is PATH, and PATH_INFO "
                        "loses that prefix (default: $SCRIPT_NAME or none)")
    g = p.add_argument_group("restarts and shutdown")
    g.add_argument("--grace", type=_nonneg, default=None,
                   help="seconds in-flight requests get to finish on shutdown; the process "
                        f"exits within this + 1 s whatever the app does (default: {d('grace')})")
    g.add_argument("--drain", type=_nonneg, default=None,
                   help="a worker retired by a rolling restart closes its WebSocket/SSE "
                        f"connections spread over this many seconds (default: {d('drain')})")
    g.add_argument("--max-requests", dest="max_requests", type=_int(0, "max requests"),
                   default=None,
                   help="a worker is replaced after this many requests; 0: never "
                        f"(default: {d('max_requests')})")
    g.add_argument("--max-requests-jitter", dest="max_requests_jitter",
                   type=_int(0, "max requests jitter"), default=None,
                   help="add a random 0..N to --max-requests per worker "
                        f"(default: {d('max_requests_jitter')})")
    g.add_argument("--reload", action="store_true", default=None,
                   help="development: restart when a .py file of the app's folder changes")
    g.add_argument("--reload-dir", dest="reload_dirs", action="append", default=None,
                   metavar="DIR", help="also watch DIR for --reload (repeatable)")
    g.add_argument("-pid", "--pid", dest="pid", default=None, metavar="FILE",
                   help="write the master's pid to FILE (removed at exit)")
    g = p.add_argument_group("logging")
    g.add_argument("-v", "-log", "--verbose", "--access-log", dest="log", action="store_true",
                   help="access log to stderr")
    g.add_argument("--access-log-format", dest="access_log_format",
                   choices=ACCESS_LOG_FORMATS, default=None,
                   help="common: Common Log Format plus the time taken; json: one JSON "
                        f"object a line (default: {d('access_log_format')})")
    g.add_argument("--log-level", dest="log_level", type=str.lower,
                   choices=LOG_LEVELS, default=None,
                   help=f"the server's own messages (default: {d('log_level')})")
    g.add_argument("-V", "-verbosity", dest="verbosity", type=_int(0, "verbosity"),
                   default=None, metavar="N",
                   help="iodine's verbosity 0..5 (0: fatal only, 3: info, 5: debug); "
                        "sets --log-level")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors")
    g = p.add_argument_group("configuration")
    g.add_argument("-C", "-config", "--config", dest="config_file", default=None, metavar="FILE",
                   help="a Python file run before start (it may call Iodine.on_state, "
                        "set Iodine.threads...)")
    g = p.add_argument_group("help")
    g.add_argument("-h", "--help", action="help", help="show this help and exit")
    g.add_argument("--version", action="version", version=f"iodine-py {__version__}")
    return p


# The README's command-line reference is made from the parser (make docs),
# and a test fails when the two differ, so the document cannot drift.
README_START = "<!-- cli-reference: generated by `make docs` from iodine_py/cli.py -->"
README_END = "<!-- /cli-reference -->"
_DEFAULT = re.compile(r"\s*\(default:?\s*(.*)\)\s*$", re.S)


def markdown_reference() -> str:
    """The flags as Markdown tables, one per group of --help."""
    out = []
    for group in build_parser()._action_groups:
        acts = [a for a in group._group_actions if a.option_strings]
        if not acts or group.title in ("help",):
            continue
        out += [f"**{group.title}**", "", "| flag | meaning | default |", "|---|---|---|"]
        for a in acts:
            flags = ", ".join(f"`{o}`" for o in a.option_strings)
            text = " ".join((a.help or "").split())
            m = _DEFAULT.search(text)
            default = m.group(1) if m else ("off" if a.nargs == 0 else "none")
            meaning = text[:m.start()] if m else text
            out.append(f"| {flags} | {meaning.replace('|', '/')} | {default.replace('|', '/')} |")
        out.append("")
    out.append("`-h`, `--help` shows this grouped by topic; `--version` the version.")
    return "\n".join(out)


def update_readme(path: str) -> bool:
    """Rewrite the generated section of README; True when it changed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.index(README_START), text.index(README_END)
    new = text[:start + len(README_START)] + "\n" + markdown_reference() + "\n" + text[end:]
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


# Flags that set a Config field of the same name when given, with the
# factor from the flag's unit to the field's (bytes from KiB or MiB).
_SCALED = (
    ("port", 1), ("address", 1), ("threads", 1), ("workers", 1),
    ("max_body", MIB), ("max_head", KIB), ("max_header_line", KIB), ("max_headers", 1),
    ("keepalive", 1), ("body_spill", KIB), ("ws_max_msg", KIB), ("ping", 1),
    ("max_pending", KIB), ("redis", 1), ("redis_ping", 1), ("header_timeout", 1),
    ("min_body_rate", 1), ("max_connections", 1), ("trust_proxy", 1), ("grace", 1),
    ("public", 1), ("history", 1), ("history_channels", 1), ("history_bytes", MIB),
    ("ws_deflate_bits", 1), ("ws_deflate_min", 1), ("ws_deflate_mem", KIB),
    ("public", 1), ("drain", 1), ("max_requests", 1), ("max_requests_jitter", 1),
    ("backlog", 1), ("unix_mode", 1), ("root_path", 1), ("pid", 1), ("log_level", 1),
    ("access_log_format", 1), ("reload_dirs", 1), ("fds", 1),
)


def config_from_args(ns: argparse.Namespace) -> Config:
    cfg = Config()
    for name, factor in _SCALED:
        value = getattr(ns, name)
        if value is not None:
            setattr(cfg, name, value * factor if factor != 1 else value)
    if ns.reuseport:
        cfg.reuseport = True
    if ns.ws_deflate is not None:
        cfg.ws_deflate = ns.ws_deflate == "on"
    if ns.preload:
        cfg.preload = True
    if ns.reload or ns.reload_dirs:
        cfg.reload = True
    if ns.verbosity is not None and ns.log_level is None:
        cfg.log_level = logging.getLevelName(level_for_verbosity(ns.verbosity)).lower()
    if cfg.address.startswith(("/", "./")):  # iodine's form of a Unix socket
        cfg.address = "unix:" + cfg.address
    if not cfg.fds:
        cfg.fds = systemd_fds()
    cfg.log = ns.log
    cfg.quiet = ns.quiet
    cfg.tls = ns.tls or ns.tls_cert is not None
    cfg.tls_cert = ns.tls_cert
    cfg.tls_key = ns.tls_key
    cfg.tls_pass = ns.tls_pass if ns.tls_pass is not None else os.environ.get("IODINE_TLS_PASS")
    return cfg.validate()


def systemd_fds() -> List[int]:
    """Sockets passed by systemd socket activation (sd_listen_fds(3)):
    $LISTEN_FDS of them from descriptor 3, when $LISTEN_PID is us."""
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)  # not for the workers or the app's children
    return list(range(3, 3 + max(0, n)))


def static_only(environ: Any, start_response: Any) -> List[bytes]:
    """The app of `iodine -www DIR` with no APP: the files are answered
    from C before this is called; the rest is not found."""
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                     ("Content-Length", "10")])
    return [b"Not Found\n"]


def _tls_available() -> bool:
    return bool(lib.tls_available())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        cfg = config_from_args(ns)
    except ConfigError as exc:
        parser.error(str(exc))
    if not ns.app and not cfg.public:
        parser.error("no application given: iodine APP (a file like app.py or module:attr), "
                     "or -www DIR to serve only files")
    if cfg.tls and not _tls_available():
        sys.stderr.write("iodine: error: TLS is not available: this build lacked the OpenSSL "
                         "headers (or had IODINE_NO_TLS=1); install libssl-dev, then rebuild: "
                         "pip install --force-reinstall --no-cache-dir iodine-py, or make install "
                         "in a checkout\n")
        return 2
    Iodine.config = cfg  # before any import: listen() calls made there see the flags
    # The app: with workers (and no --preload) each worker imports it after
    # the fork (new code on every restart), and here we only pass the name
    # on. A single process, or --preload, imports it here, before binding,
    # so that a file of raw services only (docs/raw.md) has declared its
    # listeners by then; the name is kept for a reload (SIGHUP).
    app: Any = static_only
    target: Optional[str] = None
    if ns.app:
        workers = cfg.workers or cpu_count()
        target = app = ns.app
        if not (workers > 1 or cfg.reload or cfg.max_requests) or cfg.preload:
            try:
                app = load_app(ns.app)
            except NoAppError as exc:
                if not Iodine.listening():  # a file of raw services only
                    parser.error(str(exc))
                app = None
            except ImportFromStringError as exc:
                parser.error(str(exc))
            except Exception as exc:
                parser.error(f"cannot load the application: {describe_error(exc)}")
    if app is not None:
        fds: List[Optional[int]] = list(cfg.fds) or [None]
        for fd in fds:
            lst = Iodine.listen(app)
            lst.fd = fd
            lst.target = target
    if ns.config_file:
        try:
            runpy.run_path(ns.config_file, run_name="__iodine_config__")
        except Exception as exc:
            parser.error(f"config file {ns.config_file}: {describe_error(exc)}")
    try:
        Iodine.start()
    except ImportFromStringError as exc:
        parser.error(str(exc))
    except ConfigError as exc:
        parser.error(str(exc))
    except OSError as exc:
        sys.stderr.write(f"iodine: error: {exc.strerror or exc}\n")
        return 2
    except Exception as exc:
        if isinstance(exc, BootError):
            logger.error(f"{exc}: stopped (fix the error above and start again)")
            return 3
        # the app's own import failed (no workers): one line, not a traceback
        logger.error(f"cannot load the application: {describe_error(exc)}")
        return 1
    return 0
