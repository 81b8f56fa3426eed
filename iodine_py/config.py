"""Every setting in one place, with its default (after uvicorn's Config).

The CLI maps each flag onto one field; ``Iodine.listen`` and ``Iodine.start``
read the same object, so a setting cannot exist in one path only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional

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
    ws_max_msg: int
    ping: float
    max_pending: int
    bound_port: int = 0


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
    grace: float = 10.0
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
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, not {self.workers}")
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
        return self

    def listener(self, app: Any, port: Optional[int] = None,
                 address: Optional[str] = None, **limits: Any) -> Listener:
        unknown = set(limits) - set(LIMIT_NAMES)
        if unknown:
            raise TypeError(f"unknown listen() setting(s): {', '.join(sorted(unknown))}")
        values = {k: limits.get(k, getattr(self, k)) for k in LIMIT_NAMES}
        return Listener(app=app,
                        port=self.port if port is None else int(port),
                        address=self.address if address is None else address,
                        **values)


# Settings a single listen() call may override.
LIMIT_NAMES = ("max_body", "max_head", "max_header_line", "max_headers",
               "keepalive", "body_spill", "ws_max_msg", "ping", "max_pending")
