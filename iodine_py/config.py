"""Every setting in one place, with its default (after uvicorn's Config).

The CLI maps each flag onto one field; ``Iodine.listen`` and ``Iodine.start``
read the same object, so a setting cannot exist in one path only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Union

MAX_WORKERS = 1024  # pub/sub relay channels in the master (ext/cluster.c)
KIB = 1024
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A setting with a value it cannot take (the CLI exits 2 on it)."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"${name} must be a whole number, not {raw!r}") from None


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
    bound_port: int = 0
    tls: bool = False               # TLS (https://, wss://) on this listener
    tls_cert: Optional[str] = None  # PEM certificate chain; None: self-signed
    tls_key: Optional[str] = None   # PEM private key (with tls_cert)
    public: Optional[str] = None    # folder whose files GET/HEAD get before the app
    service: str = "http"           # "raw": bytes to a callback object (iodine_py/connect.py)


@dataclass
class Config:
    # where
    port: int = field(default_factory=lambda: _env_int("PORT", 3000))
    address: str = "0.0.0.0"
    # concurrency
    threads: int = 1
    workers: int = field(default_factory=lambda: _env_int("WEB_CONCURRENCY", 1))
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
    # behind a proxy: addresses/networks whose X-Forwarded-For/-Proto count
    trust_proxy: str = field(default_factory=lambda: os.environ.get("FORWARDED_ALLOW_IPS", ""))
    # TLS: tls alone serves a self-signed development certificate
    tls: bool = False
    tls_cert: Optional[str] = None  # PEM certificate chain (implies tls)
    tls_key: Optional[str] = None   # PEM private key, not encrypted
    # static files: GET/HEAD of a file under this folder is answered from C
    # before the app is called (README "Static files"); None: off
    public: Optional[str] = None
    # upgraded connections (WebSocket, SSE)
    ws_max_msg: int = 256 * KIB
    ping: float = 40.0
    max_pending: int = 16 * MIB
    # pub/sub
    redis: Optional[str] = None  # redis://[user:password@]host:port/db
    redis_ping: float = 30.0
    # logging
    log: bool = False
    quiet: bool = False

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
        if self.redis is not None and not self.redis.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis URL must start with redis://, rediss:// or unix://, not {self.redis!r}")
        if self.redis_ping <= 0:
            raise ConfigError(f"redis ping interval must be positive, not {self.redis_ping}")
        if self.grace < 0:
            raise ConfigError(f"grace must not be negative, not {self.grace}")
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
               "max_pending", "trust_proxy", "tls", "tls_cert", "tls_key", "public")


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
