"""A minimal asyncio HTTP/1.1 client for venue REST APIs (no third-party HTTP dependency).

Enough HTTP for JSON REST: one request at a time per :class:`HttpClient`, a kept-alive
connection reused while the server allows it, ``Content-Length`` and ``chunked`` bodies, a
per-request timeout, TLS through an :class:`ssl.SSLContext` for ``https`` (plain ``http`` for
loopback fakes). Failures of the transport raise :class:`~connectors.errors.TransientError`;
HTTP error statuses are returned, because each venue maps its own error bodies.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.errors import TransientError

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    """Header names lower-cased; repeated headers keep the last value."""
    body: bytes


class HttpClient:
    """Requests to one origin (``scheme://host[:port]``), reusing one kept-alive connection."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "marginwatch",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported base URL {base_url!r}")
        self._host = parts.hostname
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc
        self._timeout_s = timeout_s
        self._ssl = (ssl_context or ssl.create_default_context()) if self._tls else None
        self._user_agent = user_agent
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Response:
        """Send ``method target`` (path and query) and read the whole response."""
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await self._exchange(method, target, headers or {}, body)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                self._abandon()
                raise TransientError(f"{method} {self._host_header}: {type(exc).__name__}") from exc
            except BaseException:
                # Cancelled mid-exchange: the connection may hold an unread response, and the
                # next request would read it as its own. Never reuse it.
                self._abandon()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Response:
        reused = self._conn is not None
        reader, writer = await self._connection()
        head = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        head.append(f"User-Agent: {self._user_agent}")
        head.extend(f"{k}: {v}" for k, v in headers.items())
        if body or method in ("POST", "PUT", "DELETE"):
            head.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        try:
            await writer.drain()
            status_line = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError):
            if not reused:
                raise
            status_line = b""
        if not status_line and reused:
            # The server closed the idle kept-alive connection: one fresh attempt.
            await self._drop()
            return await self._exchange(method, target, headers, body)
        response, keep_alive = await _read_response(status_line, reader, method)
        if not keep_alive:
            await self._drop()
        return response

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._conn is None:
            self._conn = await asyncio.open_connection(
                self._host, self._port, ssl=self._ssl, limit=MAX_HEADER_BYTES
            )
        return self._conn

    def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn[1].close()
            try:
                await conn[1].wait_closed()
            except (OSError, ssl.SSLError):
                log.debug("error while closing a REST connection", exc_info=True)


async def _read_response(
    status_line: bytes, reader: asyncio.StreamReader, method: str
) -> tuple[Response, bool]:
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("bad status line")
    status = int(parts[1])
    headers: dict[str, str] = {}
    size = 0
    while True:
        line = await reader.readline()
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise ValueError("headers too large")
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = parts[0] == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, b""), keep_alive
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if not 0 <= length <= MAX_BODY_BYTES:
            raise ValueError("bad content-length")
        body = await reader.readexactly(length)
    else:  # body delimited by the server closing the connection
        body = await reader.read(MAX_BODY_BYTES)
        keep_alive = False
    return Response(status, headers, body), keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readline()
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers: ignored
            return b"".join(chunks)
        total += size
        if total > MAX_BODY_BYTES:
            raise ValueError("body too large")
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk
