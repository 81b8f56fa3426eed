"""The ``iodine`` command: flags map one-to-one onto Config fields.

Flag names follow Ruby iodine's (``-p``, ``-t``, ``-w``, ``-maxbd``,
``-maxhd``, ``-k``...), each with a long form. Every error is one line on
stderr and exit status 2; a bad flag never shows a traceback.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, List, NoReturn, Optional, Sequence

from . import __version__
from .config import KIB, MIB, Config, ConfigError
from .importer import ImportFromStringError, NoAppError, load_app


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"iodine: error: {message} (see iodine --help)\n")
        raise SystemExit(2)


def _int(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number, not {text!r}")
        if value < lo:
            raise argparse.ArgumentTypeError(f"{what} must be at least {lo}, not {value}")
        return value
    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"seconds must be positive, not {text}")
    return value


def _seconds_or_off(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _seconds(text)


def _port(text: str) -> int:
    value = _int(0, "port")(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


def build_parser() -> _Parser:
    d = Config.__dataclass_fields__  # defaults, shown in --help
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
    g.add_argument("-p", "--port", type=_port, default=None,
                   help="TCP port (default: $PORT or 3000; 0 picks a free port)")
    g.add_argument("-b", "--bind", "--address", dest="address", default=None,
                   help="address to bind, or unix:/path (default: 0.0.0.0)")
    g = p.add_argument_group("TLS (https://, wss://)")
    g.add_argument("-tls", "--tls", dest="tls", action="store_true",
                   help="serve TLS; alone, with a self-signed certificate for localhost "
                        "made at start (development only)")
    g.add_argument("-tls-cert", "--tls-cert", dest="tls_cert", default=None, metavar="FILE",
                   help="PEM certificate (chain) to serve; implies -tls, needs -tls-key")
    g.add_argument("-tls-key", "--tls-key", dest="tls_key", default=None, metavar="FILE",
                   help="PEM private key of -tls-cert (not encrypted)")
    g = p.add_argument_group("static files")
    g.add_argument("-www", "--public", dest="public", default=None, metavar="DIR",
                   help="serve GET/HEAD for files under DIR from C, before the app "
                        "(folders: index.html; .gz siblings; ETag, Range)")
    g = p.add_argument_group("concurrency")
    g.add_argument("-t", "--threads", type=_int(1, "threads"), default=None,
                   help="Python threads running the app (default: 1, on the event loop)")
    g.add_argument("-w", "--workers", type=_int(0, "workers"), default=None,
                   help="worker processes; 0: one per CPU core (default: $WEB_CONCURRENCY or 1)")
    g.add_argument("--reuseport", action="store_true", default=None,
                   help="each worker binds its own SO_REUSEPORT socket instead of sharing "
                        "the master's (connections arriving before workers bind, or queued "
                        "on a worker that stops, are refused: see README)")
    g = p.add_argument_group("limits")
    g.add_argument("-maxbd", "--max-body", dest="max_body", type=_int(1, "max body (MiB)"),
                   default=None, help="largest request body, MiB (default: 50)")
    g.add_argument("-maxhd", "--max-head", dest="max_head", type=_int(1, "max head (KiB)"),
                   default=None, help="largest request line + headers, KiB (default: 32)")
    g.add_argument("--max-header-line", dest="max_header_line",
                   type=_int(1, "max header line (KiB)"), default=None,
                   help="longest single header line, KiB (default: 8)")
    g.add_argument("--max-headers", dest="max_headers", type=_int(1, "max headers"),
                   default=None, help="most header fields in a request (default: 128)")
    g.add_argument("-k", "--keep-alive", dest="keepalive", type=_seconds, default=None,
                   help="idle keep-alive timeout, seconds (default: 40)")
    g.add_argument("--body-spill", dest="body_spill", type=_int(1, "body spill (KiB)"),
                   default=None, help="bodies over this many KiB go to a temp file (default: 1024)")
    g.add_argument("--header-timeout", dest="header_timeout", type=_seconds_or_off, default=None,
                   help="a request head must arrive whole within this, seconds; 0: off (default: 10)")
    g.add_argument("--min-body-rate", dest="min_body_rate", type=_int(0, "min body rate"),
                   default=None,
                   help="after --header-timeout, a request body must average this many bytes a "
                        "second (408 under); 0: off (default: 240)")
    g.add_argument("--max-connections", dest="max_connections", type=_int(0, "max connections"),
                   default=None,
                   help="connections open at once; at the cap new ones wait in the backlog "
                        "(default 0: the open-file limit less an eighth)")
    g = p.add_argument_group("WebSocket and SSE")
    g.add_argument("-maxms", "--max-msg", dest="ws_max_msg", type=_int(1, "max message (KiB)"),
                   default=None, help="largest incoming WebSocket message, KiB (default: 256)")
    g.add_argument("-ping", "--ping", dest="ping", type=_seconds, default=None,
                   help="WebSocket ping / SSE keep-alive interval and silence limit, seconds (default: 40)")
    g.add_argument("--max-pending", dest="max_pending", type=_int(1, "max pending (KiB)"),
                   default=None,
                   help="output a WebSocket/SSE client may leave unread before it is cut off, KiB (default: 16384)")
    g = p.add_argument_group("pub/sub")
    g.add_argument("-r", "--redis", dest="redis", default=None, metavar="URL",
                   help="share pub/sub through Redis: redis://[user:password@]host:port/db")
    g.add_argument("-rp", "--redis-ping", dest="redis_ping", type=_seconds, default=None,
                   help="seconds between PINGs that detect a dead Redis connection (default: 30)")
    g = p.add_argument_group("behind a proxy")
    g.add_argument("--trust-proxy", "--forwarded-allow-ips", dest="trust_proxy", default=None,
                   metavar="ADDRS",
                   help="addresses/networks (e.g. 127.0.0.1,10.0.0.0/8, or *) whose X-Forwarded-For "
                        "and X-Forwarded-Proto set REMOTE_ADDR and wsgi.url_scheme "
                        "(default: $FORWARDED_ALLOW_IPS or none)")
    g = p.add_argument_group("shutdown")
    g.add_argument("--grace", type=float, default=None,
                   help="seconds in-flight requests get to finish on shutdown (default: 10)")
    g = p.add_argument_group("logging")
    g.add_argument("-v", "--verbose", dest="log", action="store_true",
                   help="access log to stderr")
    g.add_argument("-q", "--quiet", action="store_true", help="only errors")
    g = p.add_argument_group("help")
    g.add_argument("-h", "--help", action="help", help="show this help and exit")
    g.add_argument("-V", "--version", action="version", version=f"iodine-py {__version__}")
    del d
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
    out.append("`-h`, `--help` shows this grouped by topic; `-V`, `--version` the version.")
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
    ("public", 1),
)


def config_from_args(ns: argparse.Namespace) -> Config:
    cfg = Config()
    for name, factor in _SCALED:
        value = getattr(ns, name)
        if value is not None:
            setattr(cfg, name, value * factor if factor != 1 else value)
    if ns.reuseport:
        cfg.reuseport = True
    cfg.log = ns.log
    cfg.quiet = ns.quiet
    cfg.tls = ns.tls or ns.tls_cert is not None
    cfg.tls_cert = ns.tls_cert
    cfg.tls_key = ns.tls_key
    return cfg.validate()


def _tls_available() -> bool:
    from ._native import lib

    return bool(lib.tls_available())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        cfg = config_from_args(ns)
    except ConfigError as exc:
        parser.error(str(exc))
    if not ns.app:
        parser.error("no application given: iodine APP (a file like app.py or module:attr)")
    if cfg.tls and not _tls_available():
        sys.stderr.write("iodine: error: TLS is not available: this build lacked the OpenSSL "
                         "headers (or had IODINE_NO_TLS=1); install libssl-dev, then rebuild: "
                         "pip install --force-reinstall --no-cache-dir iodine-py, or make install "
                         "in a checkout\n")
        return 2
    from .server import Iodine

    Iodine.config = cfg  # before the import: listen() calls made there see the flags
    try:
        app = load_app(ns.app)
    except NoAppError as exc:
        if not Iodine.listening():  # a file of raw services only (docs/raw.md)
            parser.error(str(exc))
        app = None
    except ImportFromStringError as exc:
        parser.error(str(exc))
    if app is not None:
        Iodine.listen(app)
    try:
        Iodine.start()
    except ConfigError as exc:
        parser.error(str(exc))
    except OSError as exc:
        sys.stderr.write(f"iodine: error: {exc.strerror or exc}\n")
        return 2
    return 0
