"""Taking already-received messages without awaiting (:mod:`connectors.driver.ready`).

The taker reads websockets' internals, so these tests pin it to the installed version: if an
upgrade moves them, the fast path must fail here, loudly, not fall back unnoticed (the driver
would stay correct but lose most of its ingest speed).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.messages import Assembler
from websockets.frames import Frame, Opcode

from connectors.driver.ready import ready_taker, take_nothing
from connectors.fakes.sim.server import SimVenue
from connectors.sim.feed import SUBSCRIBE


class _Conn:
    """What ready_taker reads of a websockets ClientConnection: its real Assembler."""

    def __init__(self) -> None:
        self.resumed = 0
        self.recv_messages = Assembler(high=4, low=1, resume=self._resume)

    def _resume(self) -> None:
        self.resumed += 1


def _frame(data: bytes, *, fin: bool = True, opcode: Opcode = Opcode.TEXT) -> Frame:
    return Frame(opcode, data, fin=fin)


@pytest.fixture
async def venue() -> AsyncIterator[SimVenue]:
    async with SimVenue(autoplay=False) as v:
        yield v


async def test_the_installed_websockets_takes_the_fast_path(venue: SimVenue) -> None:
    async with connect(f"ws://{venue.host}:{venue.port}/market") as ws:
        take = ready_taker(ws)
        assert take is not take_nothing, "websockets internals moved: see connectors.driver.ready"
        await ws.send(SUBSCRIBE)
        first = await ws.recv(False)
        for symbol in ("BTC-PERP", "ETH-PERP", "SOL-PERP"):
            venue.push_mark(symbol, 100.0)
        out = [first]
        while len(out) < 4:  # whatever the taker cannot take yet, recv waits for
            take(out, 100)
            if len(out) < 4:
                out.append(await ws.recv(False))
        assert [type(m) for m in out] == [bytes] * 4
        assert [b"BTC-PERP" in out[1], b"ETH-PERP" in out[2], b"SOL-PERP" in out[3]] == [True] * 3


async def test_ready_taker_takes_complete_messages_in_order_up_to_the_limit() -> None:
    conn = _Conn()
    for k in range(6):
        conn.recv_messages.put(_frame(b"m%d" % k))
    assert conn.recv_messages.paused  # above the high-water mark: reading paused
    take = ready_taker(conn)  # type: ignore[arg-type]  # the real Assembler in a stand-in
    assert take is not take_nothing
    out = [b"first"]
    take(out, 4)
    assert out == [b"first", b"m0", b"m1", b"m2"]
    take(out, 100)
    assert out == [b"first", b"m0", b"m1", b"m2", b"m3", b"m4", b"m5"]
    assert not conn.recv_messages.paused and conn.resumed == 1  # resumed as recv would
    take(out, 100)  # nothing left: nothing happens
    assert len(out) == 7


async def test_ready_taker_leaves_fragmented_messages_to_recv() -> None:
    conn = _Conn()
    conn.recv_messages.put(_frame(b"whole"))
    conn.recv_messages.put(_frame(b"frag", fin=False))
    conn.recv_messages.put(_frame(b"ment", opcode=Opcode.CONT))
    conn.recv_messages.put(_frame(b"after"))
    out: list[bytes] = []
    ready_taker(conn)(out, 100)  # type: ignore[arg-type]
    assert out == [b"whole"]
    # recv still reassembles the fragmented one, then the taker goes on.
    assert await conn.recv_messages.get(False) == b"fragment"
    ready_taker(conn)(out, 100)  # type: ignore[arg-type]
    assert out == [b"whole", b"after"]


async def test_without_the_expected_internals_the_taker_takes_nothing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd: list[Any] = [object(), type("Odd", (), {"recv_messages": None})()]
    with caplog.at_level(logging.WARNING, logger="connectors.driver.ready"):
        takers = [ready_taker(ws) for ws in odd]
    assert takers == [take_nothing, take_nothing]
    out: list[bytes] = []
    takers[0](out, 100)
    assert out == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "one frame per await" in caplog.records[0].getMessage()
