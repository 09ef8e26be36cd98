"""A minimal HTTP/1.1 server for the fake venues' REST APIs (loopback tests and the demo).

Reads a request line, headers and a ``Content-Length`` body, calls one async handler, writes a
``Content-Length`` response, and keeps the connection alive unless the client asked otherwise.
Deliberately small: it serves our own client and well-behaved tools, nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

log = logging.getLogger(__name__)

BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    """The raw query string (without ``?``), exactly as sent: signatures are computed on it."""
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    peer: str = ""
    """The client's IP address (venues limit request weight per IP)."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Reply]]


class HttpServer:
    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # A deep accept queue: a thousand clients connecting at once must not have their SYNs
        # dropped (the kernel retries them a second later, which a test would see as a hang).
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, backlog=BACKLOG
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # the handler reads EOF and ends
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else ""
        try:
            while True:
                request = await _read_request(reader, peer)
                if request is None:
                    break
                reply = await self._handler(request)
                keep = request.headers.get("connection", "").lower() != "close"
                writer.write(_encode(reply, keep))
                await writer.drain()
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            log.debug("fake HTTP connection ended abnormally", exc_info=True)
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader, peer: str) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    path, _, query = target.partition("?")
    return Request(method, path, query, headers, body, peer)


def _encode(reply: Reply, keep_alive: bool) -> bytes:
    reason = (
        HTTPStatus(reply.status).phrase if reply.status in HTTPStatus._value2member_map_ else ""
    )
    head = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Length: {len(reply.body)}"]
    head.append("Content-Type: application/json")
    head.extend(f"{k}: {v}" for k, v in reply.headers.items())
    if not keep_alive:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
