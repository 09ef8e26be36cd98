"""A minimal asyncio HTTP/1.1 server for probes and metrics (no framework, no new dependency).

Routes, all ``GET`` (``HEAD`` too):

    /healthz   200 ``ok`` while the event loop answers: the process is alive
    /readyz    200 when every configured feed is connected and fresh, else 503 with a JSON body
               naming the feeds that are not: ``{"ready": false, "feeds": {"sim/market": "stale"}}``
    /metrics   delegated to a renderer (sync or async) returning ``(body, content_type)``;
               404 when the daemon was started without one. ``body`` may be a sequence of
               bytes pieces: they are sent without joining them into one buffer.

Large bodies (a metrics exposition of 10,000 accounts is ~8 MB) are written in slices of
``_WRITE_SLICE`` bytes with a drain between slices: a single ``write`` of the whole body would
copy it into the transport buffer in one loop step and stall ticks for several ms.

One request per connection (``Connection: close``): probes and Prometheus scrapes open a fresh
connection each time, and it keeps this server small. Slow or broken clients are cut off by a
timeout and never affect the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

import orjson

from monitor.errors import UsageError

log = logging.getLogger(__name__)

Body = bytes | Sequence[bytes]
MetricsRender = Callable[[], tuple[Body, str] | Awaitable[tuple[Body, str]]]
# () -> {feed name: why it is not ready}; empty mapping means ready.
Readiness = Callable[[], Mapping[str, str]]

_MAX_HEADER_BYTES: Final = 8192
_WRITE_SLICE: Final = 256 * 1024
_REQUEST_TIMEOUT_S: Final = 5.0
_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TEXT: Final = "text/plain; charset=utf-8"
_JSON: Final = "application/json"


class HttpServer:
    """Serves the probes on ``host:port`` (port 0 picks a free one; see :attr:`port`)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: Readiness,
        metrics: MetricsRender | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._readiness = readiness
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("HttpServer.port read before start()")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return self._host

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._accept, self._host, self._port, limit=_MAX_HEADER_BYTES
            )
        except OSError as exc:
            # A busy or unassignable address is the operator's to fix, not a crash.
            raise UsageError(
                f"--http {self._host}:{self._port}: cannot listen: {exc.strerror}"
            ) from exc
        log.info("http: serving /healthz /readyz /metrics on %s:%d", self._host, self.port)

    async def serve(self, started: asyncio.Event | None = None) -> None:
        """Run until cancelled, then close the listener and every open connection."""
        if self._server is None:
            await self.start()
        if started is not None:
            started.set()
        try:
            await asyncio.Future()  # the server runs on its own; we only own its lifetime
        finally:
            await self.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                status, ctype, body, head_only = await self._respond(head)
                await self._write(writer, status, ctype, body, head_only)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            TimeoutError,
        ):
            pass  # the client went away or dawdled: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _respond(self, head: bytes) -> tuple[int, str, Body, bool]:
        if len(head) > _MAX_HEADER_BYTES:
            return 400, _TEXT, b"request too large\n", False
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, _TEXT, b"bad request\n", False
        method, target, _ = parts
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n", False
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return 200, _TEXT, b"ok\n", head_only
        if path == "/readyz":
            not_ready = dict(self._readiness())
            if not_ready:
                body = orjson.dumps(
                    {"ready": False, "feeds": not_ready}, option=orjson.OPT_SORT_KEYS
                )
                return 503, _JSON, body + b"\n", head_only
            return 200, _JSON, b'{"ready":true}\n', head_only
        if path == "/metrics" and self._metrics is not None:
            try:
                result = self._metrics()
                if inspect.isawaitable(result):
                    result = await result
                exposition, ctype = result
            except Exception:
                # A renderer bug must be visible but must not take the probes down with it.
                log.exception("http: /metrics renderer failed")
                return 500, _TEXT, b"metrics renderer failed\n", head_only
            return 200, ctype, exposition, head_only
        return 404, _TEXT, b"not found\n", head_only

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, status: int, ctype: str, body: Body, head_only: bool
    ) -> None:
        pieces = (body,) if isinstance(body, bytes) else body
        header = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"Content-Type: {ctype}\r\n"
            f"Content-Length: {sum(len(p) for p in pieces)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        writer.write(header)
        if not head_only:
            for piece in pieces:
                view = memoryview(piece)
                for lo in range(0, len(view), _WRITE_SLICE):
                    writer.write(view[lo : lo + _WRITE_SLICE])
                    await writer.drain()
        await writer.drain()
