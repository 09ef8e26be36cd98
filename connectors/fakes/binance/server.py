"""FakeBinance: a loopback Binance futures venue (REST on one port, websockets on another).

Websocket routes (``spec.market_route``/``spec.private_route`` prefixes; ``/market`` and
``/private`` for USDⓈ-M since the 2026 split):

* ``{market}/stream?streams=a/b`` — combined envelope ``{"stream":…, "data":…}``;
  ``{market}/ws[/a/b]`` — raw payloads. Streams: ``<sym>@markPrice[@1s]``, ``!markPrice@arr[@1s]``.
  ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` are answered; > 1024 streams is refused.
* ``{private}/ws?listenKey=K`` (or ``/ws/K``) — the account's user-data events, raw.

Binance's connection rules run on the injected clock: a ping frame every 3 min, close when no pong
for 10 min, close at 24 h, close on more than 10 incoming messages per second; a listenKey lives
60 min unless extended, and on expiry its connections get ``listenKeyExpired`` and go quiet.
:meth:`tick` applies these rules (tests call it after moving a :class:`ManualClock`; with
``autotick`` a background task calls it).

Fault switches: :meth:`drop_sockets`, :meth:`expire_listen_key`, :meth:`go_silent`,
:meth:`delay_rest`, :meth:`send_malformed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from connectors.binance.spec import USDM, VenueSpec
from connectors.fakes.binance import views
from connectors.fakes.binance.account import Accounts, Contract, FakeAccount, Payload, _Market
from connectors.fakes.binance.clock import Clock, WallClock
from connectors.fakes.binance.contracts import COINM_CONTRACTS, USDM_CONTRACTS
from connectors.fakes.binance.rest_api import RestContext, make_handler
from connectors.fakes.http import BACKLOG, HttpServer
from rules.types import ContractKind

log = logging.getLogger(__name__)
_WS_LOG = logging.getLogger(f"{__name__}.websockets")
# websockets' DEBUG lines print the request line (a listenKey) and every frame, and its INFO
# lines narrate every connection: the demo runs this fake in-process, where the venue's own
# server chatter is noise beside the monitor's output. Warnings and errors still show.
_WS_LOG.setLevel(logging.WARNING)

PING_INTERVAL_MS = 3 * 60 * 1000
PONG_DEADLINE_MS = 10 * 60 * 1000
MAX_CONNECTION_AGE_MS = 24 * 60 * 60 * 1000
MAX_INCOMING_PER_S = 10
MAX_STREAMS = 1024
MALFORMED = (b"{not json", b'{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"x"}', b"[1,2")


@dataclass(eq=False, slots=True)
class _Conn:
    ws: ServerConnection
    combined: bool
    opened_ms: int
    streams: set[str] = field(default_factory=set)
    account: str | None = None
    listen_key: str | None = None
    last_ping_ms: int = 0
    last_pong_ms: int = 0
    incoming_ms: deque[int] = field(default_factory=deque)
    queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class FakeBinance:
    def __init__(
        self,
        spec: VenueSpec = USDM,
        *,
        clock: Clock | None = None,
        contracts: Mapping[str, Contract] | None = None,
        marks: Mapping[str, float] | None = None,
        autotick: bool = False,
    ) -> None:
        self.spec = spec
        self.clock = clock or WallClock()
        linear = spec.kind is ContractKind.LINEAR
        self.contracts = dict(contracts or (USDM_CONTRACTS if linear else COINM_CONTRACTS))
        default_marks = {"BTCUSDT": 60_000.0, "ETHUSDT": 3_000.0} if linear else {
            "BTCUSD_PERP": 60_000.0, "ETHUSD_PERP": 3_000.0}  # fmt: skip
        self.marks: dict[str, float] = dict(marks or default_marks)
        self.accounts = Accounts()
        self.rest = RestContext(spec, self.accounts, self.contracts, self.marks, self.clock.now_ms)
        self.rest.on_listen_key_closed = self._mute_key
        self._http = HttpServer(make_handler(self.rest))
        self._ws: Server | None = None
        self._conns: set[_Conn] = set()
        self._autotick = autotick
        self._ticker: asyncio.Task[None] | None = None
        self.silent = False
        self.pongs = 0
        self.changed = asyncio.Event()
        """Set whenever a pong, connect or disconnect happens (tests wait on it, then clear)."""
        """Pongs received for our pings (tests check that clients answer them)."""
        self.connects = 0
        self.disconnects: list[str] = []
        """Why the fake closed a connection (``no_pong``, ``24h``, ``rate``, ``dropped``…)."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> FakeBinance:
        await self._http.start()
        self._ws = await serve(
            self._handler,
            "127.0.0.1",
            0,
            ping_interval=None,
            max_queue=None,
            logger=_WS_LOG,
            backlog=BACKLOG,  # many accounts connect at once (see connectors.fakes.http)
        )
        if self._autotick:
            self._ticker = asyncio.create_task(self._tick_loop(), name="fake-binance-tick")
        return self

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
        await self._http.close()

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self._http.port}"

    @property
    def ws_url(self) -> str:
        assert self._ws is not None, "start() first"
        port = next(iter(self._ws.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def add_account(self, account: FakeAccount) -> FakeAccount:
        market = _Market(self.spec.kind, self.contracts, self.marks, self.clock.now_ms,
                         lambda payload: self._push_user(account.name, payload))  # fmt: skip
        account.bind(market)
        self.accounts.add(account)
        return account

    def account(self, name: str) -> FakeAccount:
        return self.accounts.by_name[name]

    # --- market --------------------------------------------------------------------------------

    def set_mark(self, symbol: str, mark: float) -> None:
        """Move a mark and push ``markPriceUpdate`` to every subscriber of it."""
        self.marks[symbol] = mark
        payload = views.mark_price_update(symbol, mark, self.clock.now_ms(), self.spec.kind)
        low = symbol.lower()
        for conn in self._conns:
            if conn.account is not None:
                continue
            for stream in conn.streams:
                if stream in (f"{low}@markPrice", f"{low}@markPrice@1s"):
                    self._send(conn, stream, payload)
                elif stream.startswith("!markPrice@arr"):
                    self._send(conn, stream, [payload])

    def set_marks(self, marks: Mapping[str, float]) -> None:
        """Move several marks at once, as Binance's all-market stream reports them: one
        ``!markPrice@arr`` frame carries every moved symbol; per-symbol streams get one each."""
        now = self.clock.now_ms()
        payloads: dict[str, dict[str, Any]] = {}
        for symbol, mark in marks.items():
            self.marks[symbol] = mark
            payloads[symbol.lower()] = views.mark_price_update(symbol, mark, now, self.spec.kind)
        if not payloads:
            return
        every = list(payloads.values())
        for conn in self._conns:
            if conn.account is not None:
                continue
            for stream in conn.streams:
                if stream.startswith("!markPrice@arr"):
                    self._send(conn, stream, every)
                    continue
                low, _, kind = stream.partition("@")
                if kind in ("markPrice", "markPrice@1s") and low in payloads:
                    self._send(conn, stream, payloads[low])

    # --- fault switches ------------------------------------------------------------------------

    def drop_sockets(self) -> None:
        """Cut every websocket without a close handshake (as a network failure would)."""
        for conn in list(self._conns):
            self.disconnects.append("dropped")
            conn.ws.transport.abort()

    def expire_listen_key(self, account: str) -> None:
        """Expire the account's listenKey now: ``listenKeyExpired`` is pushed, then silence."""
        for key, lk in list(self.rest.listen_keys.items()):
            if lk.account == account:
                self._expire(key)

    def go_silent(self, silent: bool = True) -> None:
        """Keep sockets open but send nothing (no pushes, no pings): a stalled feed."""
        self.silent = silent

    def delay_rest(self, seconds: float) -> None:
        self.rest.delay_s = seconds

    def send_malformed(self, n: int) -> None:
        """Send ``n`` undecodable frames on every connection."""
        for conn in self._conns:
            for i in range(n):
                conn.queue.put_nowait(MALFORMED[i % len(MALFORMED)])

    # --- Binance's connection rules ------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock.now_ms()
        for key, lk in list(self.rest.listen_keys.items()):
            if now >= lk.expires_ms:
                self._expire(key)
        for conn in list(self._conns):
            if now - conn.opened_ms >= MAX_CONNECTION_AGE_MS:
                await self._close(conn, "24h", 1000)
            elif now - conn.last_pong_ms > PONG_DEADLINE_MS:
                await self._close(conn, "no_pong", 1008)
            elif not self.silent and now - conn.last_ping_ms >= PING_INTERVAL_MS:
                conn.last_ping_ms = now
                with contextlib.suppress(ConnectionClosed):
                    waiter = await conn.ws.ping()
                    asyncio.ensure_future(waiter).add_done_callback(
                        functools.partial(self._pong, conn)
                    )

    def _pong(self, conn: _Conn, fut: asyncio.Future[float]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            conn.last_pong_ms = self.clock.now_ms()
            self.pongs += 1
            self.changed.set()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            await self.tick()

    async def _close(self, conn: _Conn, why: str, code: int) -> None:
        self.disconnects.append(why)
        self.changed.set()
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.close(code, why)

    def _expire(self, key: str) -> None:
        lk = self.rest.listen_keys.pop(key, None)
        if lk is None:
            return
        now = self.clock.now_ms()
        for conn in self._conns:
            if conn.listen_key == key:
                self._send(conn, key, {"e": "listenKeyExpired", "E": now, "listenKey": key})
        self._mute_key(key)

    def _mute_key(self, key: str) -> None:
        for conn in self._conns:
            if conn.listen_key == key:
                conn.listen_key = None  # still open, but no more user events

    # --- websocket plumbing --------------------------------------------------------------------

    def _push_user(self, account: str, payload: Payload) -> None:
        for conn in self._conns:
            if conn.account == account and conn.listen_key in self.rest.listen_keys:
                self._send(conn, conn.listen_key or "", payload)

    def _send(self, conn: _Conn, stream: str, payload: Any) -> None:
        if self.silent:
            return
        doc = {"stream": stream, "data": payload} if conn.combined else payload
        conn.queue.put_nowait(orjson.dumps(doc))

    def _route(self, ws: ServerConnection, now: int) -> _Conn | None:
        assert ws.request is not None
        url = urlsplit(ws.request.path)
        path, query = url.path, parse_qs(url.query)
        market, private = self.spec.market_route, self.spec.private_route
        key = (query.get("listenKey") or [""])[0]
        tail = path.removeprefix(f"{private}/ws/")
        if not key and tail != path and "@" not in tail and "/" not in tail:
            key = tail  # the legacy /ws/<listenKey> form
        if key and path in (f"{private}/ws", f"{private}/ws/{key}"):
            lk = self.rest.listen_keys.get(key)
            if lk is None:
                return None
            return _Conn(ws, False, now, account=lk.account, listen_key=key)
        if path == f"{market}/stream":
            streams = (query.get("streams") or [""])[0]
            return _Conn(ws, True, now, {s for s in streams.split("/") if s})
        if path == f"{market}/ws" or path.startswith(f"{market}/ws/"):
            streams = path.removeprefix(f"{market}/ws").strip("/")
            return _Conn(ws, False, now, {s for s in streams.split("/") if s})
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        now = self.clock.now_ms()
        conn = self._route(ws, now)
        if conn is None:
            await ws.close(1008, "invalid path or listenKey")
            return
        conn.last_ping_ms = conn.last_pong_ms = now
        self._conns.add(conn)
        self.connects += 1
        self.changed.set()
        sender = asyncio.create_task(self._send_loop(conn))
        try:
            async for message in ws:
                if not await self._on_message(conn, message):
                    break
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            self.changed.set()
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await sender

    async def _send_loop(self, conn: _Conn) -> None:
        while (frame := await conn.queue.get()) is not None:
            await conn.ws.send(frame.decode())

    async def _on_message(self, conn: _Conn, message: str | bytes) -> bool:
        now = self.clock.now_ms()
        conn.incoming_ms.append(now)
        while conn.incoming_ms and now - conn.incoming_ms[0] >= 1000:
            conn.incoming_ms.popleft()
        if len(conn.incoming_ms) > MAX_INCOMING_PER_S:
            await self._close(conn, "rate", 1008)
            return False
        try:
            req = orjson.loads(message)
            method, rid = req["method"], req["id"]
            params = req.get("params", [])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            conn.queue.put_nowait(orjson.dumps({"code": 3, "msg": "Invalid JSON"}))
            return True
        reply: dict[str, Any] = {"result": None, "id": rid}
        if method == "SUBSCRIBE":
            if len(conn.streams | set(params)) > MAX_STREAMS:
                reply = {"code": 2, "msg": "Invalid request: too many streams", "id": rid}
            else:
                conn.streams.update(params)
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(params)
        elif method == "LIST_SUBSCRIPTIONS":
            reply["result"] = sorted(conn.streams)
        else:
            reply = {"code": 2, "msg": f"Invalid request: unknown method {method}", "id": rid}
        conn.queue.put_nowait(orjson.dumps(reply))
        return True
