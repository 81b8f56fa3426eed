"""permessage-deflate and close codes against clients nobody here wrote:
websockets (asyncio), aiohttp, and websocket-client (which has no
permessage-deflate: it must get uncompressed frames). Each runs with and
without compression against tests/apps/ws_deflate.py (-maxms 2048, so
1 MiB messages fit both ways)."""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest
import websocket as wsclient
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.websocket import wsraw

MESSAGES = ["hello", "é" * 5000, "x" * (1 << 20), os.urandom(70000), b"\0" * 300000, ""]


@pytest.fixture
def srv(run_server):
    return run_server("ws_deflate", "-maxms", "2048", "--ws-deflate-mem", "64")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("factory,expected", [
    (None, None),
    (ClientPerMessageDeflateFactory(client_max_window_bits=None),
     "permessage-deflate; server_no_context_takeover"),
    (ClientPerMessageDeflateFactory(),  # offers client_max_window_bits
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=15"),
    (ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=9),
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
     "client_max_window_bits=9"),
    (ClientPerMessageDeflateFactory(client_no_context_takeover=True,
                                    server_no_context_takeover=True,
                                    client_max_window_bits=None),
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
], ids=["plain", "bare", "default", "windows", "no-context"])
def test_websockets_round_trip(srv, factory, expected):
    async def main():
        ext = [factory] if factory else None
        async with websockets.connect(wsraw.url(srv), extensions=ext, compression=None,
                                      max_size=4 << 20) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") == expected
            for m in MESSAGES:
                await ws.send(m)
                assert await ws.recv() == m
            # a fragmented message (websockets sends an iterable as fragments)
            await ws.send(["part one, ", "part two, ", "part three " * 100])
            assert await ws.recv() == "part one, part two, " + "part three " * 100
            await ws.close(4002, "bye from websockets")
            # the server echoed the code and reason
            rcvd = ws.protocol.close_rcvd
            assert rcvd is not None
            assert (rcvd.code, rcvd.reason) == (4002, "bye from websockets")
    run(main())
    srv.wait_for_stderr("ws-log close 4002|bye from websockets")


def test_websockets_sees_the_apps_close_code(srv):
    async def main():
        async with websockets.connect(wsraw.url(srv, "/close")) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
            await ws.send("4321 over and out")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4321, "over and out")
    run(main())


@pytest.mark.parametrize("compress", [0, 15, 10])
def test_aiohttp_round_trip(srv, compress):
    async def main():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(wsraw.url(srv), compress=compress,
                                          max_msg_size=4 << 20) as ws:
                # aiohttp's compress=10 offers server_max_window_bits=10
                assert bool(ws.compress) == bool(compress)
                if compress == 10:
                    ext = ws._response.headers["Sec-WebSocket-Extensions"]
                    assert "server_max_window_bits=10" in ext, ext
                for m in MESSAGES:
                    if isinstance(m, str):
                        await ws.send_str(m)
                        assert (await ws.receive_str()) == m
                    else:
                        await ws.send_bytes(m)
                        assert (await ws.receive_bytes()) == m
                await ws.close(code=4003, message=b"aiohttp done")
                assert ws.close_code == 4003
    run(main())
    srv.wait_for_stderr("ws-log close 4003|aiohttp done")


def test_websocket_client_without_deflate_gets_plain_frames(srv):
    """websocket-client offers no extension: the server must not compress
    (websocket-client fails on RSV1), at every size."""
    ws = wsclient.create_connection(wsraw.url(srv), timeout=10)
    try:
        for m in MESSAGES:
            if isinstance(m, str):
                ws.send(m)
            else:
                ws.send_binary(m)
            frame = ws.recv_frame()
            assert (frame.rsv1, frame.rsv2, frame.rsv3) == (0, 0, 0)
            got = frame.data
            assert got == (m.encode() if isinstance(m, str) else m)
        ws.close(status=4004, reason=b"wsclient")
    finally:
        ws.shutdown()
    srv.wait_for_stderr("ws-log close 4004|wsclient")


def test_fan_out_reaches_websockets_and_aiohttp_compressed_and_plain(srv):
    """One publish, four kinds of subscriber (websockets with and without
    compression, aiohttp with and without): every one gets every message."""
    async def main():
        async with aiohttp.ClientSession() as session:
            a_z = await session.ws_connect(wsraw.url(srv, "/sub"), compress=15)
            a_p = await session.ws_connect(wsraw.url(srv, "/sub"), compress=0)
            w_z = await websockets.connect(wsraw.url(srv, "/sub"))
            w_p = await websockets.connect(wsraw.url(srv, "/sub"), compression=None)
            try:
                assert await a_z.receive_str() == "subscribed"
                assert await a_p.receive_str() == "subscribed"
                assert await w_z.recv() == "subscribed"
                assert await w_p.recv() == "subscribed"
                async with session.get(f"http://{srv.host}:{srv.port}/publish?n=20&size=1024") as r:
                    assert (await r.json())["reached"] == 80
                for seq in range(20):
                    for got in (await a_z.receive_str(), await a_p.receive_str(),
                                await w_z.recv(), await w_p.recv()):
                        assert json.loads(got)["seq"] == seq
            finally:
                await a_z.close()
                await a_p.close()
                await w_z.close()
                await w_p.close()
    run(main())


def test_default_settings_make_every_client_reset_its_context(run_server):
    """With the default --ws-deflate-mem 0 the server adds
    client_no_context_takeover to every answer (RFC 7692 7.1.1.2 lets it):
    websockets and aiohttp, which did not offer it, accept it and compress
    each message on its own."""
    srv = run_server("ws_deflate", "-maxms", "2048")

    async def main():
        async with websockets.connect(wsraw.url(srv), max_size=4 << 20) as ws:
            ext = ws.response.headers["Sec-WebSocket-Extensions"]
            assert "client_no_context_takeover" in ext, ext
            for m in MESSAGES:
                await ws.send(m)
                assert await ws.recv() == m
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(wsraw.url(srv), compress=15,
                                          max_msg_size=4 << 20) as ws:
                ext = ws._response.headers["Sec-WebSocket-Extensions"]
                assert "client_no_context_takeover" in ext, ext
                for m in MESSAGES:
                    if isinstance(m, str):
                        await ws.send_str(m)
                        assert (await ws.receive_str()) == m
                    else:
                        await ws.send_bytes(m)
                        assert (await ws.receive_bytes()) == m
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{srv.host}:{srv.port}/stats") as r:
                assert (await r.json())["inflaters"] <= 16  # the pool only
    run(main())
