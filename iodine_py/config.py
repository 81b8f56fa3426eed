"""Every setting in one place, with its default (after uvicorn's Config).

The CLI maps each flag onto one field; ``Iodine.listen`` and ``Iodine.start``
read the same object, so a setting cannot exist in one path only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

from ._native import lib

# A master has lib.CL_MAX_WORKERS relay slots (ext/cluster.h), and a
# rolling restart holds one for each replacement beside its old worker:
# half of them may serve.
MAX_WORKERS = lib.CL_MAX_WORKERS // 2
MAX_HISTORY = 1_000_000  # messages kept per channel (each ring is allocated whole)
KIB = 1024
MIB = 1024 * 1024
# Defaults that an environment variable may replace (Config's fields read
# $PORT, $THREADS, $WORKERS / $WEB_CONCURRENCY): named, so that the command
# line's help shows the same numbers (iodine_py/cli.py).
DEFAULT_PORT = 3000
DEFAULT_THREADS = 1
DEFAULT_WORKERS = 1
# Seconds between the Redis engine's health-check PINGs: the default of
# Config.redis_ping (-rp) and of Iodine.PubSub.Redis(ping=).
DEFAULT_REDIS_PING = 30.0
# The permessage-deflate windows zlib supports (2^bits bytes): ours, and the
# most a client may keep (ext/pmd.h).
DEFLATE_BITS_MIN, DEFLATE_BITS_MAX = 9, 15
ACCESS_LOG_FORMATS = ("common", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


class ConfigError(ValueError):
    """A setting with a value it cannot take (the CLI exits 2 on it)."""


def _env_int(name: str, default: int, *more: str) -> int:
    """The first of $name, $more... that is set, as a whole number."""
    for var in (name,) + more:
        raw = os.environ.get(var)
        if raw is None or raw == "":
            continue
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"${var} must be a whole number, not {raw!r}") from None
    return default


def per_cores(n: int) -> int:
    """iodine's negative -t/-w: -n means the CPU count divided by n (at
    least 1); 0 and positive counts are kept as they are."""
    return max(1, cpu_count() // -n) if n < 0 else n


@dataclass
class Listener:
    """One ``Iodine.listen`` call: where, which app, which limits."""

    app: Any
    port: int
    address: str
    max_body: int
    max_head: int
    max_header_line: int
    max_headers: int
    keepalive: float
    body_spill: int
    header_timeout: float
    min_body_rate: int
    trust_proxy: str
    ws_max_msg: int
    ping: float
    max_pending: int
    ws_deflate: bool
    ws_deflate_bits: int
    ws_deflate_min: int
    ws_deflate_mem: int
    bound_port: int = 0
    tls: bool = False               # TLS (https://, wss://) on this listener
    tls_cert: Optional[str] = None  # PEM certificate chain; None: self-signed
    tls_key: Optional[str] = None   # PEM private key (with tls_cert)
    public: Optional[str] = None    # folder whose files GET/HEAD get before the app
    fd: Optional[int] = None        # an inherited listening socket instead of binding
    service: str = "http"           # "raw": bytes to a callback object (iodine_py/connect.py)
    target: Optional[str] = None   # the name the app was imported by (a reload imports it again)


@dataclass
class Config:
    # where
    port: int = field(default_factory=lambda: _env_int("PORT", DEFAULT_PORT))
    address: str = "0.0.0.0"
    # concurrency
    threads: int = field(default_factory=lambda: per_cores(_env_int("THREADS", DEFAULT_THREADS)))
    workers: int = field(default_factory=lambda: per_cores(
        _env_int("WORKERS", DEFAULT_WORKERS, "WEB_CONCURRENCY")))
    # limits (bytes and seconds)
    max_body: int = 50 * MIB
    max_head: int = 32 * KIB
    max_header_line: int = 8 * KIB
    max_headers: int = 128
    keepalive: float = 40.0
    body_spill: int = 1 * MIB
    header_timeout: float = 10.0  # a request head must arrive whole in this
    # after header_timeout seconds, a request body must average this (408
    # under): a trickle cannot hold a connection for as long as it declares
    min_body_rate: int = 240      # bytes a second; 0: off
    max_connections: int = 0      # 0: from the open-file limit (see below)
    reuseport: bool = False       # workers bind their own SO_REUSEPORT sockets
    grace: float = 10.0
    # a worker retired by a rolling restart spreads its connections'
    # on_shutdown (WebSocket Close 1001) over this many seconds
    drain: float = 2.0
    # processes: import the app once in the master before forking (copy-on-
    # write memory; a rolling restart then reloads nothing)
    preload: bool = False
    reload: bool = False                      # restart when the app's files change
    reload_dirs: List[str] = field(default_factory=list)
    pid: Optional[str] = None                 # a file holding the master's pid
    max_requests: int = 0                     # a worker is recycled after this many
    max_requests_jitter: int = 0              # ... plus a random 0..this
    fds: List[int] = field(default_factory=list)  # inherited listening sockets
    backlog: int = 0                          # listen(2) queue; 0: the kernel's SOMAXCONN
    unix_mode: Optional[int] = None           # chmod of a Unix socket we bind
    root_path: str = field(default_factory=lambda: os.environ.get("SCRIPT_NAME", ""))
    # behind a proxy: addresses/networks whose X-Forwarded-For/-Proto count
    trust_proxy: str = field(default_factory=lambda: os.environ.get("FORWARDED_ALLOW_IPS", ""))
    # TLS: tls alone serves a self-signed development certificate
    tls: bool = False
    tls_cert: Optional[str] = None  # PEM certificate chain (implies tls)
    tls_key: Optional[str] = None   # PEM private key
    tls_pass: Optional[str] = field(default=None, repr=False)  # its passphrase, if encrypted
    # static files: GET/HEAD of a file under this folder is answered from C
    # before the app is called (README "Static files"); None: off
    public: Optional[str] = None
    # upgraded connections (WebSocket, SSE)
    ws_max_msg: int = 256 * KIB
    ping: float = 40.0
    max_pending: int = 16 * MIB
    # WebSocket permessage-deflate (RFC 7692; SPEC-WebSocket.md 6)
    ws_deflate: bool = True       # agree to compression when a client offers it
    ws_deflate_bits: int = DEFLATE_BITS_MAX  # LZ77 window, ours and the most a client may keep
    ws_deflate_min: int = 64      # messages under this many bytes go uncompressed
    ws_deflate_mem: int = 0       # inflate state a connection may keep between messages
    # pub/sub
    redis: Optional[str] = field(  # redis://[user:password@]host:port/db
        default_factory=lambda: os.environ.get("IODINE_REDIS_URL") or None)
    redis_ping: float = DEFAULT_REDIS_PING
    # history for resuming subscribers (SSE Last-Event-ID, since=): the last
    # `history` messages of each channel (0: off), of at most
    # history_channels channels, in at most history_bytes
    history: int = 0
    history_channels: int = 10000
    history_bytes: int = 64 * MIB
    # logging
    log: bool = False
    quiet: bool = False
    log_level: str = "info"      # the server's own messages (iodine_py/log.py)
    access_log_format: str = "common"  # or "json": one JSON object a line

    def validate(self) -> "Config":
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {self.port}")
        if self.threads < 1:
            raise ConfigError(f"threads must be at least 1, not {self.threads}")
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 (one per CPU core) or more, not {self.workers}")
        if self.workers > MAX_WORKERS:
            raise ConfigError(f"workers must be at most {MAX_WORKERS}, not {self.workers}")
        if self.max_connections < 0:
            raise ConfigError(f"max_connections must be 0 (from the file limit) or more, "
                              f"not {self.max_connections}")
        if self.min_body_rate < 0:
            raise ConfigError(f"min_body_rate must not be negative, not {self.min_body_rate}")
        if self.header_timeout < 0:
            raise ConfigError(f"header timeout must not be negative, not {self.header_timeout}")
        for name in ("max_body", "max_head", "max_header_line", "max_headers",
                     "body_spill", "ws_max_msg", "max_pending"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.max_head < 64:
            raise ConfigError("max_head must be at least 64 bytes")
        if self.keepalive <= 0:
            raise ConfigError(f"keep-alive timeout must be positive, not {self.keepalive}")
        if self.ping <= 0:
            raise ConfigError(f"ping interval must be positive, not {self.ping}")
        if self.redis is not None and not self.redis.startswith(("redis://", "unix://")):
            raise ConfigError(f"redis URL must start with redis:// or unix:// (TLS to Redis, "
                              f"rediss://, is not supported), not {self.redis!r}")
        if not 0 <= self.history <= MAX_HISTORY:
            raise ConfigError(f"history must be 0 (off) to {MAX_HISTORY} messages a channel, "
                              f"not {self.history}")
        if self.history_channels < 1:
            raise ConfigError(f"history_channels must be positive, not {self.history_channels}")
        if self.history_bytes < 1:
            raise ConfigError(f"history_bytes must be positive, not {self.history_bytes}")
        if self.history and self.history * 8 >= self.history_bytes:
            # each channel's ring of N pointers is allocated whole
            raise ConfigError(f"history_bytes ({self.history_bytes}) cannot hold even one "
                              f"channel's ring of {self.history} messages (8 bytes each)")
        if self.redis_ping <= 0:
            raise ConfigError(f"redis ping interval must be positive, not {self.redis_ping}")
        if not DEFLATE_BITS_MIN <= self.ws_deflate_bits <= DEFLATE_BITS_MAX:
            raise ConfigError(f"ws_deflate_bits must be {DEFLATE_BITS_MIN}..{DEFLATE_BITS_MAX}, "
                              f"not {self.ws_deflate_bits}")
        if self.ws_deflate_min < 0 or self.ws_deflate_mem < 0:
            raise ConfigError("ws_deflate_min and ws_deflate_mem must not be negative")
        if self.grace < 0:
            raise ConfigError(f"grace must not be negative, not {self.grace}")
        if self.drain < 0:
            raise ConfigError(f"drain must not be negative, not {self.drain}")
        if self.max_requests < 0 or self.max_requests_jitter < 0:
            raise ConfigError("max_requests and max_requests_jitter must not be negative")
        if self.backlog < 0:
            raise ConfigError(f"backlog must not be negative, not {self.backlog}")
        if self.access_log_format not in ACCESS_LOG_FORMATS:
            raise ConfigError(f"access log format must be common or json, "
                              f"not {self.access_log_format!r}")
        if self.log_level.upper() not in {level.upper() for level in LOG_LEVELS}:
            raise ConfigError(f"log level must be debug, info, warning, error or critical, "
                              f"not {self.log_level!r}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(f"root path must start with / and not end with one, "
                              f"not {self.root_path!r}")
        for d in self.reload_dirs:
            if not os.path.isdir(d):
                raise ConfigError(f"reload dir {d}: no such folder")
        check_tls(self.tls_cert, self.tls_key)
        self.public = check_public(self.public)
        return self

    def listener(self, app: Any, port: Optional[int] = None,
                 address: Optional[str] = None, **limits: Any) -> Listener:
        service = limits.pop("service", "http")
        if service not in ("http", "raw"):
            raise ConfigError(f"listen(service={service!r}): expected 'http' or 'raw'")
        unknown = set(limits) - set(LIMIT_NAMES)
        if unknown:
            raise TypeError(f"unknown listen() setting(s): {', '.join(sorted(unknown))}")
        values = {k: limits.get(k, getattr(self, k)) for k in LIMIT_NAMES}
        check_tls(values["tls_cert"], values["tls_key"])
        values["tls"] = bool(values["tls"] or values["tls_cert"])  # a cert means TLS
        values["public"] = check_public(values["public"])
        return Listener(app=app,
                        port=self.port if port is None else int(port),
                        address=self.address if address is None else address,
                        service=service, **values)


# Settings a single listen() call may override.
LIMIT_NAMES = ("max_body", "max_head", "max_header_line", "max_headers",
               "keepalive", "body_spill", "header_timeout", "min_body_rate", "ws_max_msg", "ping",
               "max_pending", "trust_proxy", "tls", "tls_cert", "tls_key", "public",
               "ws_deflate", "ws_deflate_bits", "ws_deflate_min", "ws_deflate_mem")


def check_public(folder: Any) -> Optional[str]:
    """The public folder as a str path (None stays None); it must exist."""
    if folder is None:
        return None
    path: Union[str, bytes] = os.fspath(folder)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.isdir(path):
        why = "no such folder" if not os.path.exists(path) else "not a folder"
        raise ConfigError(f"public {path}: {why}")
    return path


def check_tls(cert: Optional[str], key: Optional[str]) -> None:
    """A certificate and its key come together, and both must be readable
    (the PEM contents are checked when the listener is bound)."""
    if bool(cert) != bool(key):
        given, missing = ("tls_cert", "tls_key") if cert else ("tls_key", "tls_cert")
        raise ConfigError(f"{given} needs {missing} too: give both files, or neither "
                          f"(tls alone makes a self-signed development certificate)")
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        if path and not os.access(path, os.R_OK):
            why = "no such file" if not os.path.exists(path) else "not readable"
            raise ConfigError(f"{name} {path}: {why}")


def cpu_count() -> int:
    """CPUs this process may run on (what -w 0 means)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
