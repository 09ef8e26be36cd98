"""A minimal HTTP/1.1 GET client on asyncio streams, for the sim venue's REST snapshot endpoints.

The sim speaks plain HTTP on loopback with ``Connection: close``, so reading to EOF is the whole
protocol; this keeps sync HTTP off the event loop without adding a dependency.
"""

from __future__ import annotations

import asyncio

from connectors.errors import AuthError, TransientError

MAX_BODY = 64 * 1024 * 1024


async def http_get(
    venue: str, host: str, port: int, target: str, *, timeout_s: float = 10.0
) -> bytes:
    """``GET target`` → body of a 200 response. 401/403 → AuthError; other statuses → Transient."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("ascii"))
            await writer.drain()
            raw = await reader.read(MAX_BODY)
            while chunk := await reader.read(MAX_BODY):
                raw += chunk
        finally:
            writer.close()
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if not sep or len(status_line) < 2 or not status_line[1].isdigit():
        raise TransientError(f"{venue}: malformed HTTP response")
    status = int(status_line[1])
    if status in (401, 403):
        raise AuthError(venue, status, "credentials refused")
    if status != 200:
        raise TransientError(f"{venue}: HTTP {status} for {target.split('?', 1)[0]}")
    return body
