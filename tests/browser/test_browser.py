"""A real browser (headless Chromium) against the server: the page served
by tests/apps/ws_browser.py opens a WebSocket and an EventSource, and the
test reads what the page saw back out of the DOM over the Chrome DevTools
Protocol (websocket-client drives it).

Chromium is Debian's package (/usr/bin/chromium). Without it the test is
skipped, unless REQUIRE_BROWSER is set in the environment: then it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
import websocket

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 30.0
PAGE_TIMEOUT = 15.0


def require_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    reason = (f"{CHROMIUM} not found (install it with `apt-get install -y chromium`); "
              "set REQUIRE_BROWSER=1 to make this a failure")
    if os.environ.get("REQUIRE_BROWSER"):
        pytest.fail(f"REQUIRE_BROWSER is set but {CHROMIUM} is missing", pytrace=False)
    pytest.skip(reason)


class Chromium:
    """A headless Chromium in its own process group, with the DevTools
    endpoint on an ephemeral port (learnt from its stderr)."""

    def __init__(self, profile_dir):
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-dev-shm-usage",
             f"--user-data-dir={profile_dir}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in iter(self.proc.stderr.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip())
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def devtools_url(self, timeout: float = START_TIMEOUT) -> str:
        rx = re.compile(r"DevTools listening on (ws://\S+)")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m.group(1)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("Chromium did not report its DevTools endpoint; "
                                         "stderr:\n" + "\n".join(self.lines[-40:]))
                self._cond.wait(min(remaining, 0.5))

    def stop(self) -> None:
        """Terminate this Chromium's process group (only what we started)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers (renderers, zygote)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass


class DevTools:
    """A minimal Chrome DevTools Protocol client (flat sessions)."""

    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, timeout=10, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def close(self) -> None:
        self.ws.close(timeout=2)

    def call(self, method: str, params: dict = None, session: str = None,
             timeout: float = 10.0) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + timeout
        while True:
            reply = self._recv(deadline, f"the reply to {method}")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise AssertionError(f"{method} failed: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method: str, session: str = None, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev.get("method") == method and (session is None or ev.get("sessionId") == session):
                    return self.events.pop(i)
            self.events.append(self._recv(deadline, f"the event {method}"))

    def _recv(self, deadline: float, what: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        self.ws.settimeout(remaining)
        try:
            return json.loads(self.ws.recv())
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"timed out waiting for {what}")

    def evaluate(self, session: str, expression: str, timeout: float = 10.0):
        result = self.call("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "timeout": int(timeout * 1000)}, session=session, timeout=timeout + 2)
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")


@pytest.fixture
def chromium(tmp_path):
    require_chromium()
    browser = Chromium(tmp_path / "profile")
    try:
        yield browser
    finally:
        browser.stop()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


@pytest.mark.parametrize("deflate", ["on", "off"])
def test_browser_websocket_and_event_source(run_server, chromium, deflate):
    """With --ws-deflate on, Chromium's permessage-deflate offer is accepted
    (ws.extensions shows it) and every message, the 100 kB text included,
    travels compressed both ways; off, the same page works uncompressed."""
    srv = run_server("ws_browser", "-t", "2", "--ws-deflate", deflate)
    page_url = f"http://{srv.host}:{srv.port}/"

    devtools = DevTools(chromium.devtools_url())
    try:
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = devtools.call("Target.attachToTarget",
                                {"targetId": target, "flatten": True})["sessionId"]
        devtools.call("Page.enable", session=session)
        nav = devtools.call("Page.navigate", {"url": page_url}, session=session)
        assert not nav.get("errorText"), f"navigation failed: {nav}"
        devtools.wait_event("Page.loadEventFired", session=session, timeout=PAGE_TIMEOUT)

        # The page's own work is bounded (8 s in the page); await its promise.
        results = devtools.evaluate(session, "window.testDone", timeout=PAGE_TIMEOUT)
        dom_text = devtools.evaluate(session, "document.getElementById('result').textContent")
    finally:
        devtools.close()

    assert json.loads(dom_text) == results, "the DOM does not show what the page collected"
    assert results.get("error") is None, results
    assert results["done"] is True
    # WebSocket: subprotocol agreed, echoes of text, binary and a 100 kB
    # text (64-bit length frames both ways), then a clean close whose code
    # the server echoed.
    assert results["protocol"] == "chat"
    if deflate == "on":
        assert results["extensions"].startswith("permessage-deflate"), results
        assert "server_no_context_takeover" in results["extensions"], results
    else:
        assert results["extensions"] == "", results
    assert results["ws"] == ["ping-from-browser", "binary:1,2,3,255", "text-of-length:100000"]
    close = results["wsClose"]
    assert (close["code"], close["wasClean"]) == (4000, True), results
    assert close["reason"] == "done", results  # the server echoes the peer's reason
    assert "wsError" not in results, results
    # EventSource: an unnamed event and a named one, with their ids.
    assert results["sse"] == [{"type": "message", "data": "one", "id": "1"},
                              {"type": "named", "data": "two", "id": "2"}]
    assert "sseErrors" not in results, results

    # The server saw both connections open and close (the browser closed
    # them: ws.close() and es.close()).
    for event in ("ws-open", "sse-open", "ws-close", "sse-close"):
        srv.wait_for_stderr(re.compile(rf"^browser browser {event}$"), timeout=5)
