"""The chat example (examples/chat.py + chat.html) in a real browser, the
way a person uses it: four tabs of one headless Chromium, two on WebSocket
and two with WebSocket removed from the page (`delete window.WebSocket`
before any script runs), so chat.html falls back to EventSource + POST on
its own. Text is typed into one tab's input with keyboard events and
submitted with Enter; every other tab's DOM is read back until the line
shows up.

Uses the Chromium and DevTools helpers of test_browser.py (same skip rules:
no /usr/bin/chromium skips, unless REQUIRE_BROWSER is set).
"""

from __future__ import annotations

import json

from tests.browser.test_browser import PAGE_TIMEOUT, DevTools, chromium  # noqa: F401

NO_WEBSOCKET = "delete window.WebSocket;"


class Tab:
    def __init__(self, devtools: DevTools, url: str, websocket: bool):
        self.dt = devtools
        target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = devtools.call("Target.attachToTarget",
                                     {"targetId": target, "flatten": True})["sessionId"]
        devtools.call("Page.enable", session=self.session)
        # headless tabs in the background still take keyboard input
        devtools.call("Emulation.setFocusEmulationEnabled", {"enabled": True},
                      session=self.session)
        if not websocket:
            devtools.call("Page.addScriptToEvaluateOnNewDocument", {"source": NO_WEBSOCKET},
                          session=self.session)
        nav = devtools.call("Page.navigate", {"url": url}, session=self.session)
        assert not nav.get("errorText"), f"navigation failed: {nav}"
        devtools.wait_event("Page.loadEventFired", session=self.session, timeout=PAGE_TIMEOUT)

    def js(self, expression: str, timeout: float = 10.0):
        return self.dt.evaluate(self.session, expression, timeout=timeout)

    def wait_ready(self) -> str:
        """The page's status line once its connection is open."""
        return self.js("""new Promise((resolve, reject) => {
            const s = document.getElementById("status"), t0 = Date.now();
            (function check() {
              if (s.dataset.ready === "1") return resolve(s.textContent);
              if (Date.now() - t0 > 8000) return reject(new Error("not connected: " + s.textContent));
              setTimeout(check, 50);
            })();
          })""")

    def type_and_send(self, text: str) -> None:
        self.js("document.getElementById('text').focus()")
        self.dt.call("Input.insertText", {"text": text}, session=self.session)
        for kind in ("keyDown", "keyUp"):
            self.dt.call("Input.dispatchKeyEvent", {
                "type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13,
                "nativeVirtualKeyCode": 13, **({"text": "\r"} if kind == "keyDown" else {})},
                session=self.session)

    def wait_line(self, line: str) -> list:
        """Wait (bounded, in the page) until the log shows `line`; the
        whole log as the DOM has it."""
        return self.js("""new Promise((resolve, reject) => {
            const want = %s, t0 = Date.now();
            const lines = () => Array.from(document.querySelectorAll("#log p"), (p) => p.textContent);
            (function check() {
              if (lines().includes(want)) return resolve(lines());
              if (Date.now() - t0 > 8000) return reject(new Error("never saw " + want + " in " + JSON.stringify(lines())));
              setTimeout(check, 50);
            })();
          })""" % json.dumps(line))

    def input_value(self) -> str:
        return self.js("document.getElementById('text').value")


def test_chat_between_tabs_over_websocket_and_event_source(run_server, chromium):  # noqa: F811
    srv = run_server("examples/chat.py", "-t", "2")
    base = f"http://{srv.host}:{srv.port}/"
    devtools = DevTools(chromium.devtools_url())
    try:
        tabs = {}
        for name, websocket, how in (("ann", True, "WebSocket"), ("ben", True, "WebSocket"),
                                     ("cat", False, "EventSource"),
                                     ("dan", False, "EventSource")):
            tab = tabs[name] = Tab(devtools, f"{base}?name={name}", websocket=websocket)
            assert tab.wait_ready() == f"connected as {name} ({how})"
            tab.wait_line(f"{name} joined")  # its own join: it is subscribed
        # the tabs opened earlier saw the later ones arrive
        for tab in tabs.values():
            tab.wait_line("dan joined")

        # WebSocket -> WebSocket and -> EventSource
        tabs["ann"].type_and_send("hello from a WebSocket tab")
        assert tabs["ann"].input_value() == "", "the form was not submitted"
        for name in ("ben", "cat", "dan", "ann"):
            tabs[name].wait_line("ann: hello from a WebSocket tab")

        # EventSource (POST /say) -> EventSource and -> WebSocket
        tabs["cat"].type_and_send("caf\u00e9 <b>not bold</b>")
        for name in ("dan", "ann", "ben", "cat"):
            log = tabs[name].wait_line("cat: caf\u00e9 <b>not bold</b>")
            # in the same order everywhere, and shown as text, never as HTML
            assert log[-2:] == ["ann: hello from a WebSocket tab",
                                "cat: caf\u00e9 <b>not bold</b>"], (name, log)
            assert tabs[name].js("document.querySelectorAll('#log b').length") == 0
    finally:
        devtools.close()
