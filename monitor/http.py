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

At most ``max_connections`` are open at once, so a flood of slow clients cannot eat the process's
file descriptors (which the venue websockets and the broker need too). A connection over the cap
evicts the oldest one still waiting for its request line: a slow-loris client loses its seat, a
probe that sends its request at once gets an answer. When every seat is busy answering, the new
connection is closed at once. If descriptors run out anyway (another part of the process, or a low
``ulimit -n``), asyncio's accept loop reports it on every retry; :class:`ResourceErrorFilter` logs
that once per interval with the count, instead of flooding the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

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
MAX_CONNECTIONS: Final = 256
_RESOURCE_LOG_INTERVAL_S: Final = 60.0
_OUT_OF_RESOURCE: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
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
        where: str = "--http",
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections: must be >= 1")
        self._host = host
        self._port = port
        self._where = where
        self._readiness = readiness
        self._metrics = metrics
        self._max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # Connections still reading their request head, oldest first (dicts keep order).
        self._waiting: dict[asyncio.Task[None], None] = {}
        self._filter: ResourceErrorFilter | None = None
        self.refused = 0
        """Connections closed at once because every seat was busy answering."""
        self.evicted = 0
        """Connections closed to give their seat to a newer one (they had sent no request)."""

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
                f"{self._where} {self._host}:{self._port}: cannot listen: {exc.strerror}"
            ) from exc
        self._filter = ResourceErrorFilter.install(asyncio.get_running_loop())
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
        if self._filter is not None:
            self._filter.uninstall()
            self._filter = None

    @property
    def open_connections(self) -> int:
        return len(self._handlers)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._handlers) >= self._max_connections:
            if not self._waiting:
                self.refused += 1
                writer.transport.abort()  # every seat is answering: no reply, no fd kept
                return
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            self.evicted += 1
            oldest.cancel()
            # Its fd is released when the cancelled handler closes it, on its next step.
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._handlers.add(task)
        self._waiting[task] = None
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._waiting.pop(task, None)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                if me is not None:
                    self._waiting.pop(me, None)  # answering now: not evictable
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


class ResourceErrorFilter:
    """Logs asyncio's out-of-descriptors reports once per interval, with how many were folded.

    asyncio reports ``EMFILE`` from its accept loop through the loop's exception handler at every
    retry; under fd pressure that was 52,658 log lines a minute. Other reports pass through to
    the handler that was installed before (or asyncio's default).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        interval_s: float = _RESOURCE_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loop = loop
        self._previous = loop.get_exception_handler()
        self._interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self.folded = 0
        self.seen = 0

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> ResourceErrorFilter:
        f = cls(loop)
        loop.set_exception_handler(f)
        return f

    def uninstall(self) -> None:
        if self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCE:
            self.seen += 1
            now = self._clock()
            if self._last is not None and now - self._last < self._interval_s:
                self.folded += 1
                return
            self._last = now
            log.error(
                "out of file descriptors or buffers (%s): %s; %d more such reports in the last "
                "%.0f s were folded into this line",
                errno.errorcode.get(exc.errno or 0, "?"),
                context.get("message", ""),
                self.folded,
                self._interval_s,
            )
            self.folded = 0
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)
