"""The probe/metrics HTTP server over a real loopback socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from monitor.errors import UsageError
from monitor.http import HttpServer, MetricsRender

Fetch = Callable[[str], Awaitable[tuple[int, dict[str, str], bytes]]]


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()  # the server closes after one response
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


class Probes:
    def __init__(self) -> None:
        self.not_ready: dict[str, str] = {}


async def serving(
    probes: Probes, metrics: MetricsRender | None = None
) -> AsyncIterator[tuple[HttpServer, int]]:
    server = HttpServer("127.0.0.1", 0, readiness=lambda: probes.not_ready, metrics=metrics)
    started = asyncio.Event()
    task = asyncio.create_task(server.serve(started))
    await started.wait()
    try:
        yield server, server.port
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_healthz_answers_ok() -> None:
    probes = Probes()
    async for _, port in serving(probes):
        status, headers, body = await request(port, get("/healthz"))
        assert (status, body) == (200, b"ok\n")
        assert headers["content-length"] == "3"
        assert headers["connection"] == "close"


async def test_readyz_goes_from_503_naming_feeds_to_200() -> None:
    probes = Probes()
    probes.not_ready = {"sim/market": "disconnected", "sim/private/alice": "stale"}
    async for _, port in serving(probes):
        status, headers, body = await request(port, get("/readyz"))
        assert status == 503
        assert headers["content-type"] == "application/json"
        assert orjson.loads(body) == {
            "ready": False,
            "feeds": {"sim/market": "disconnected", "sim/private/alice": "stale"},
        }
        probes.not_ready = {"sim/private/alice": "stale"}
        status, _, body = await request(port, get("/readyz?verbose=1"))
        assert (status, orjson.loads(body)) == (
            503,
            {"ready": False, "feeds": {"sim/private/alice": "stale"}},
        )
        probes.not_ready = {}
        status, _, body = await request(port, get("/readyz"))
        assert (status, orjson.loads(body)) == (200, {"ready": True})


async def test_metrics_absent_is_404_and_unknown_paths_are_404() -> None:
    async for _, port in serving(Probes()):
        assert (await request(port, get("/metrics")))[0] == 404
        assert (await request(port, get("/nope")))[0] == 404


async def test_metrics_sync_and_async_renderers() -> None:
    def sync_render() -> tuple[bytes, str]:
        return b"up 1\n", "text/plain; version=0.0.4"

    async def async_render() -> tuple[bytes, str]:
        await asyncio.sleep(0)  # yields like a chunked renderer would
        return b"up 2\n", "text/plain; version=0.0.4"

    for render, want in ((sync_render, b"up 1\n"), (async_render, b"up 2\n")):
        async for _, port in serving(Probes(), render):
            status, headers, body = await request(port, get("/metrics"))
            assert (status, body) == (200, want)
            assert headers["content-type"] == "text/plain; version=0.0.4"


async def test_failing_renderer_is_500_and_logged_and_probes_survive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> tuple[bytes, str]:
        raise RuntimeError("renderer bug")

    async for _, port in serving(Probes(), broken):
        assert (await request(port, get("/metrics")))[0] == 500
        assert (await request(port, get("/healthz")))[0] == 200
    assert any(
        r.levelname == "ERROR" and "renderer failed" in r.getMessage() for r in caplog.records
    )


async def test_method_head_and_garbage() -> None:
    async for _, port in serving(Probes()):
        assert (await request(port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == 405
        status, headers, body = await request(port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
        assert (status, headers["content-length"], body) == (200, "3", b"")
        assert (await request(port, b"hello\r\n\r\n"))[0] == 400


async def test_busy_port_is_a_usage_error() -> None:
    async for _, port in serving(Probes()):
        other = HttpServer("127.0.0.1", port, readiness=dict)
        with pytest.raises(UsageError, match=f"127.0.0.1:{port}: cannot listen"):
            await other.start()


async def _idle_clients(
    port: int, n: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``n`` connections that never send a request (a slow-loris client)."""
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]


async def test_idle_connections_are_capped_and_healthz_still_answers() -> None:
    server = HttpServer("127.0.0.1", 0, readiness=dict, max_connections=4)
    started = asyncio.Event()
    task = asyncio.create_task(server.serve(started))
    await started.wait()
    try:
        idle = await _idle_clients(server.port, 10)
        # The listener accepts in arrival order, so once the probe is answered every idle
        # client before it has been seen: 4 seated, then each newcomer evicts the oldest idle.
        status, _, body = await request(server.port, get("/healthz"))
        assert (status, body) == (200, b"ok\n")
        assert (server.evicted, server.refused) == (7, 0)
        assert server.open_connections <= 4
        # The evicted clients see their connection closed at once (no 5 s request timeout).
        data = await asyncio.wait_for(idle[0][0].read(), 1.0)
        assert data == b""
        for _, w in idle:
            w.close()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_listen_error_names_where_the_address_came_from() -> None:
    async for _, port in serving(Probes()):
        other = HttpServer("127.0.0.1", port, readiness=dict, where="demo.toml: daemon.http")
        with pytest.raises(UsageError, match=f"^demo.toml: daemon.http 127.0.0.1:{port}: cannot"):
            await other.start()


def test_out_of_descriptor_reports_are_folded_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import errno

    from monitor.http import ResourceErrorFilter

    loop = asyncio.new_event_loop()
    passed: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: passed.append(ctx))
    now = [0.0]
    flt = ResourceErrorFilter(loop, interval_s=60.0, clock=lambda: now[0])
    emfile = OSError(errno.EMFILE, "Too many open files")
    try:
        with caplog.at_level("ERROR", logger="monitor.http"):
            for step in range(1000):
                now[0] = step * 0.1  # 1000 reports over 100 s
                flt(
                    loop, {"message": "socket.accept() out of system resource", "exception": emfile}
                )
            flt(loop, {"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    lines = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
    assert len(lines) == 2  # t=0 and t=60
    assert "599 more" in lines[1].getMessage()
    assert (flt.seen, len(passed)) == (1000, 1)  # the other report went to the old handler
