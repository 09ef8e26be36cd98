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
