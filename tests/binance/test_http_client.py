"""The minimal HTTP/1.1 client: Content-Length, chunked, keep-alive reuse, transport errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from connectors.errors import TransientError
from connectors.http import HttpClient


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            seen.append(line.decode().strip())
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            if line.startswith(b"GET /chunked"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b'4\r\n{"a"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n'
                )
            elif line.startswith(b"GET /close"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\ngone")
                await writer.drain()
                break
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Y: z\r\n\r\nok")
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    srv.close()
    await srv.wait_closed()


async def test_content_length_chunked_and_reuse(server: tuple[str, list[str]]) -> None:
    url, seen = server
    client = HttpClient(url)
    first = await client.request("GET", "/a?b=1", headers={"X-K": "v"})
    assert (first.status, first.body, first.headers["x-y"]) == (200, b"ok", "z")
    chunked = await client.request("GET", "/chunked")
    assert chunked.body == b'{"a":1}'
    closing = await client.request("GET", "/close")
    assert (closing.status, closing.body) == (404, b"gone")
    again = await client.request("POST", "/after-close")
    assert again.body == b"ok"
    assert seen == [
        "GET /a?b=1 HTTP/1.1",
        "GET /chunked HTTP/1.1",
        "GET /close HTTP/1.1",
        "POST /after-close HTTP/1.1",
    ]
    await client.close()


async def test_refused_connection_is_transient() -> None:
    srv = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()
    client = HttpClient(f"http://127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(TransientError):
        await client.request("GET", "/")
    await client.close()
