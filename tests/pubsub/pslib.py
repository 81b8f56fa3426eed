"""Client-side helpers for the pub/sub tests (app: tests/apps/ps_app.py)."""

from __future__ import annotations

import itertools
import json
import re
import time
from typing import Any, Optional
from urllib.parse import urlencode

from tests.rawhttp import Connection
from tests.websocket.wsraw import OP_BINARY, OP_TEXT, RawWebSocket, connect_srv

_ids = itertools.count(1)


def q(path: str, **params: Any) -> str:
    params = {k: v for k, v in params.items() if v is not None}
    return f"{path}?{urlencode(params)}" if params else path


def http_json(srv, method: str, target: str, body: bytes = b"", timeout: float = 10.0):
    resp = srv.request(method, target, body=body, timeout=timeout)
    assert resp.status == 200, f"{method} {target}: {resp!r}"
    return json.loads(resp.body)


def publish(srv, ch: str, msg, engine: Optional[str] = None) -> bool:
    is_bytes = isinstance(msg, bytes)
    body = msg if is_bytes else msg.encode("utf-8")
    return http_json(srv, "POST", q("/publish", ch=ch, engine=engine,
                                    bytes="1" if is_bytes else None), body)["r"]


def reach(srv, ch: str, msg: str = "probe") -> int:
    """How many subscriptions a local publish reaches (counted in C)."""
    return http_json(srv, "POST", q("/reach", ch=ch), msg.encode())["reached"]


def stats(srv) -> dict:
    return http_json(srv, "GET", "/stats")


def global_sub(srv, name: str, ch: str, pattern: bool = False) -> None:
    assert http_json(srv, "GET", q("/global/sub", name=name, ch=ch,
                                   pattern="1" if pattern else None))["r"]


def global_log(srv, name: str) -> list:
    return http_json(srv, "GET", q("/global/log", name=name))


def wait_global(srv, name: str, channel: str, message, timeout: float = 5.0, start: int = 0):
    """Wait for the global callback NAME to log (channel, message)."""
    line = f"ps-global {name} {json.dumps([channel, message])}"
    return srv.wait_for_stderr(re.compile("^" + re.escape(line) + "$"), timeout, start=start)


def wait_log(srv, name: str, event: str, timeout: float = 5.0, start: int = 0):
    return srv.wait_for_stderr(re.compile(rf"^ps-log {re.escape(name)} {event}$"), timeout,
                               start=start)


class PsClient:
    """A WebSocket peer of ps_app: JSON commands answered by acks; other
    messages (pub/sub deliveries) wait in `inbox`, in arrival order."""

    def __init__(self, srv, name: str = "c", timeout: float = 5.0, **params: Any):
        self.srv = srv
        self.name = name
        self.ws: RawWebSocket = connect_srv(srv, q("/ws", name=name, ready="1", **params),
                                            timeout=timeout)
        self.inbox: list[tuple[int, bytes]] = []
        op, data = self.ws.recv_message(timeout)
        assert (op, data) == (OP_TEXT, b"ready"), f"expected 'ready', got {(op, data)!r}"

    def __enter__(self) -> "PsClient":
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close_socket()

    def close(self) -> None:
        self.ws.close_socket()

    def cmd(self, op: str, timeout: float = 5.0, **kw: Any):
        ident = next(_ids)
        self.ws.send_text(json.dumps({"op": op, "id": ident, **kw}))
        deadline = time.monotonic() + timeout
        while True:
            op_, data = self.ws.recv_message(max(0.0, deadline - time.monotonic()))
            if op_ == OP_TEXT and data.startswith(b'{"ack"'):
                ack = json.loads(data)
                assert ack["ack"] == ident, f"ack for {ack['ack']}, expected {ident}"
                return ack["r"]
            self.inbox.append((op_, data))

    def sub(self, ch: str, cb: bool = False, pattern: bool = False, **kw: Any):
        r = self.cmd("sub", ch=ch, cb=cb, pattern=pattern, **kw)
        if "since" in kw:
            assert isinstance(r, list), f"subscribe({ch!r}, since=...) returned {r!r}"
            return r
        assert r is True, f"subscribe({ch!r}, cb={cb}, pattern={pattern}) returned {r!r}"
        return r

    def unsub(self, ch: str, pattern: bool = False):
        return self.cmd("unsub", ch=ch, pattern=pattern)

    def pub(self, ch: str, msg, engine: Optional[str] = None):
        if isinstance(msg, bytes):
            return self.cmd("pub", ch=ch, msg=msg.decode("utf-8"), bytes=True, engine=engine)
        return self.cmd("pub", ch=ch, msg=msg, engine=engine)

    def recv(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next delivery (opcode, payload)."""
        if self.inbox:
            return self.inbox.pop(0)
        return self.ws.recv_message(timeout)

    def recv_text(self, timeout: float = 5.0) -> str:
        op, data = self.recv(timeout)
        assert op == OP_TEXT, f"expected a text frame, got opcode {op:#x}: {data[:80]!r}"
        return data.decode("utf-8")

    def recv_cb(self, timeout: float = 5.0) -> dict:
        """The next callback report {"cb": [channel, message], "type", "same"}."""
        text = self.recv_text(timeout)
        obj = json.loads(text)
        assert "cb" in obj, f"expected a callback report, got {text!r}"
        return obj

    def recv_n(self, n: int, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        deadline = time.monotonic() + timeout
        return [self.recv(max(0.0, deadline - time.monotonic())) for _ in range(n)]

    def assert_silent(self, within: float = 0.3) -> None:
        """Nothing arrives within `within` seconds (only for negative checks
        that follow a positive sync point)."""
        assert not self.inbox, f"unexpected deliveries: {self.inbox!r}"
        if self.ws.conn.readable(within):
            try:
                got = self.ws.recv_message(1.0)
            except Exception as e:  # noqa: BLE001
                got = repr(e)
            raise AssertionError(f"{self.name}: unexpected delivery {got!r}")

    def sync(self) -> None:
        """Round-trip a no-op command: deliveries queued for this
        connection before it are now in `inbox`."""
        self.cmd("unsub", ch="\0sync-nothing")


# -- SSE -------------------------------------------------------------------------

def without_id(ev: dict) -> dict:
    """An event without its `id` (whether a message has one depends on its
    engine: SPEC-PubSub.md section 8)."""
    return {k: v for k, v in ev.items() if k != "id"}



class SseClient:
    """An EventSource-like peer of ps_app. Events that arrive before the
    "ready" event (a resume's replay) wait in `early`; the ready event's
    JSON is `ready` ({"pid", "resume"})."""

    def __init__(self, srv, name: str = "s", timeout: float = 5.0,
                 last_event_id: Optional[str] = None, **params: Any):
        self.conn = srv.connect(timeout)
        self.early: list[dict] = []
        headers = [("Accept", "text/event-stream")]
        if last_event_id is not None:
            headers.append(("Last-Event-ID", last_event_id))
        self.conn.request("GET", q("/sse", name=name, ready="1", **params), headers)
        resp = self.conn.read_head(timeout)
        assert resp.status == 200, resp
        while True:
            ev = self.read_event(timeout)
            if ev.get("event") == "ready":
                break
            self.early.append(ev)
        self.ready = json.loads(ev["data"])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "SseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def next_event(self, timeout: float = 5.0) -> dict:
        """The next event {"event"?, "data", "id"?, "retry"?}; comment
        blocks skipped; events that arrived before "ready" first."""
        if self.early:
            return self.early.pop(0)
        return self.read_event(timeout)

    def read_event(self, timeout: float = 5.0) -> dict:
        """The next event off the wire."""
        deadline = time.monotonic() + timeout
        c: Connection = self.conn
        while True:
            while b"\n\n" not in c.buf:
                if not c._fill(deadline):
                    raise AssertionError(f"SSE stream ended; have {bytes(c.buf)!r}")
            i = c.buf.index(b"\n\n")
            block = bytes(c.buf[:i]).decode("utf-8", "replace")
            del c.buf[:i + 2]
            ev: dict = {}
            data = []
            for line in block.split("\n"):
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "data":
                    data.append(value)
                elif field in ("event", "id", "retry"):
                    ev[field] = value
            if not data and not ev:
                continue
            ev["data"] = "\n".join(data)
            return ev


def is_ack(op: int, data: bytes) -> bool:
    return op == OP_TEXT and data.startswith(b'{"ack"')


__all__ = ["PsClient", "SseClient", "OP_TEXT", "OP_BINARY", "publish", "reach", "stats",
           "global_sub", "global_log", "wait_global", "wait_log", "http_json", "q"]
