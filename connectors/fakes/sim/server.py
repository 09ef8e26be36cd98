"""``SimVenue``: the simulated exchange — a websockets server on loopback plus its REST endpoints.

Routes on one port (REST answered from websockets' ``process_request`` hook, so no extra server):

* ``ws /market`` — after ``{"op":"subscribe"}``: mark frames of every instrument each tick.
* ``ws /private?key=K`` — after subscribe: the account's position/balance pushes.
* ``GET /marks`` — instruments, tier tables and current marks; ``GET /snapshot?account=A``;
  ``GET /listenKey?account=A[&key=K]`` — a new (or extended) listen key; 401 for unknown accounts.

Market time runs at ``time_scale`` × the injected monotonic clock, so tests play the crash fast.
Fault switches for tests: :meth:`drop_connections`, :meth:`go_silent` / :meth:`resume`,
:meth:`send_malformed`, :meth:`expire_private_stream`, :meth:`hold_snapshots`.
The firehose mode (see :mod:`connectors.fakes.sim.firehose`) streams pre-encoded marks at full
speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from connectors.clock import wall_ms
from connectors.fakes.sim.market import AccountSpec, MarketPath, World
from connectors.sim import protocol

_LOG = logging.getLogger(__name__)

MALFORMED: dict[str, bytes] = {
    "bad_json": b'{"e":"mark","s":"BTC-PERP","p":',
    "unknown_event": b'{"e":"trade","s":"BTC-PERP","p":"1","E":1700000000000}',
    "nan_price": b'{"e":"mark","s":"BTC-PERP","p":"NaN","E":1700000000000}',
    "negative_price": b'{"e":"mark","s":"BTC-PERP","p":"-5","E":1700000000000}',
    "bad_type": b'{"e":"mark","s":"BTC-PERP","p":60000.5,"E":1700000000000}',
    "missing_field": b'{"e":"mark","s":"BTC-PERP","E":1700000000000}',
}


@dataclass(frozen=True, slots=True)
class Firehose:
    """Stream ``frames`` mark frames (arrays of ``batch`` marks when batch > 1) to each market
    subscriber, once a ``/marks`` snapshot was served, as fast as the socket takes them."""

    frames: int
    batch: int = 1


class SimVenue:
    def __init__(
        self,
        *,
        path: MarketPath | None = None,
        world: World | None = None,
        time_scale: float = 1.0,
        autoplay: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = wall_ms,
        host: str = "127.0.0.1",
        port: int = 0,
        firehose: Firehose | None = None,
    ) -> None:
        self.path = path or MarketPath()
        self.world = world or World()
        self.time_scale = time_scale
        self.autoplay = autoplay
        self._clock = clock
        self.wall_ms = wall_ms
        self._host = host
        self._port = port
        self._firehose = firehose
        self._server: Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._started = 0.0
        self._silent_until = -math.inf
        self._keys: dict[str, str] = {}  # listen key -> account
        self._key_seq = 0
        self._market: set[ServerConnection] = set()
        self._private: dict[ServerConnection, str] = {}
        self._action_idx = 0
        self._marks_served = asyncio.Event()
        self._fire_tasks: set[asyncio.Task[None]] = set()
        self._snapshot_gate = asyncio.Event()
        self._snapshot_gate.set()
        self.snapshot_requested = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.snapshots_served = 0
        self.keys_issued: list[str] = []
        self.subscriptions = 0

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        self._started = self._clock()
        self._server = await serve(
            self._handler,
            self._host,
            self._port,
            process_request=self._process_request,
            compression=None,
            max_size=2**16,
        )
        if self.autoplay:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._fire_tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> SimVenue:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        sock = next(iter(self._server.sockets))
        port: int = sock.getsockname()[1]
        return port

    def market_time(self) -> float:
        return (self._clock() - self._started) * self.time_scale

    # --- fault switches ----------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Abort every websocket connection (no close handshake): a venue outage."""
        conns = [*self._market, *self._private]
        for conn in conns:
            conn.transport.abort()
        return len(conns)

    def go_silent(self, seconds: float | None = None) -> None:
        """Send nothing (no marks, pushes, acks, pongs) for ``seconds`` or until :meth:`resume`.

        Connections stay open and protocol pings are still answered: a live but mute venue.
        """
        self._silent_until = math.inf if seconds is None else self._clock() + seconds

    def resume(self) -> None:
        self._silent_until = -math.inf

    @property
    def silent(self) -> bool:
        return self._clock() < self._silent_until

    def send_malformed(self, n: int = 1, kind: str = "bad_json") -> int:
        """Send ``n`` bad frames of ``kind`` (a key of :data:`MALFORMED`) to market subscribers."""
        frame = MALFORMED[kind]
        for _ in range(n):
            broadcast(self._market, frame.decode())
        return len(self._market)

    def expire_private_stream(self, account: str) -> None:
        """Invalidate the account's listen keys and tell its connections (``streamExpired``)."""
        self._keys = {k: a for k, a in self._keys.items() if a != account}
        frame = protocol.encode_expired(account, self.wall_ms()).decode()
        broadcast([c for c, a in self._private.items() if a == account], frame)

    def hold_snapshots(self) -> None:
        """Block REST snapshot answers until :meth:`release_snapshots` (ordering tests)."""
        self._snapshot_gate.clear()

    def release_snapshots(self) -> None:
        self._snapshot_gate.set()

    # --- test pushes -------------------------------------------------------------------------

    def push_mark(self, symbol: str, price: float, event_ms: int | None = None) -> None:
        ms = self.wall_ms() if event_ms is None else event_ms
        broadcast(self._market, protocol.encode_mark(symbol, price, ms).decode())

    def push_raw_market(self, frame: str | bytes) -> None:
        broadcast(self._market, frame if isinstance(frame, str) else frame.decode())

    def push_balance(
        self, account: str, asset: str, balance: float, event_ms: int | None = None
    ) -> None:
        ms = self.wall_ms() if event_ms is None else event_ms
        frame = protocol.encode_balance(account, asset, balance, ms).decode()
        self._send_private(account, frame)

    def _send_private(self, account: str, frame: str) -> None:
        if not self.silent:
            broadcast([c for c, a in self._private.items() if a == account], frame)

    # --- market ticker -----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        interval = self.path.tick_s / self.time_scale
        last: dict[str, float] = {}
        while True:
            t = self.market_time()
            self._play_actions(t)
            if not self.silent and self._market:
                ms = self.wall_ms()
                for symbol, price in self.path.prices(t).items():
                    if last.get(symbol) != price:
                        last[symbol] = price
                        broadcast(self._market, protocol.encode_mark(symbol, price, ms).decode())
            await asyncio.sleep(interval)

    def _play_actions(self, t: float) -> None:
        actions = sorted([*self.world.actions, *self.world.extra], key=lambda a: a.t_s)
        while self._action_idx < len(actions) and actions[self._action_idx].t_s <= t:
            act = actions[self._action_idx]
            self._action_idx += 1
            ms = self.wall_ms()
            if act.balance is not None:
                frame = protocol.encode_balance(act.account, *act.balance, ms)
                self._send_private(act.account, frame.decode())
            if act.position is not None:
                p = act.position
                wire = protocol.position_wire(p.symbol, p.side, p.qty, p.entry, p.mode)
                self._send_private(
                    act.account, protocol.encode_position(act.account, wire, ms).decode()
                )

    # --- HTTP --------------------------------------------------------------------------------

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/market":
            return None
        if url.path == "/private":
            if query.get("key") not in self._keys:
                return conn.respond(HTTPStatus.UNAUTHORIZED, "unknown or expired listen key\n")
            return None
        if url.path == "/listenKey":
            return self._listen_key(conn, query)
        if url.path in ("/marks", "/snapshot"):
            self.snapshot_requested.set()
            await self._snapshot_gate.wait()
            self.snapshots_served += 1
            if url.path == "/marks":
                doc = self._marks_doc()
                self._marks_served.set()
                return _json(doc)
            accounts = self.world.accounts_at(self.market_time())
            acct = accounts.get(query.get("account", ""))
            if acct is None:
                return conn.respond(HTTPStatus.NOT_FOUND, "unknown account\n")
            return _json(self._account_doc(acct))
        return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")

    def _listen_key(self, conn: ServerConnection, query: dict[str, str]) -> Response:
        account = query.get("account", "")
        if account not in self.world.accounts_at(0.0):
            return conn.respond(HTTPStatus.UNAUTHORIZED, "unknown account\n")
        key = query.get("key")
        if key is not None:  # keepalive of an existing key
            if self._keys.get(key) != account:
                return conn.respond(HTTPStatus.NOT_FOUND, "unknown listen key\n")
        else:
            self._key_seq += 1
            key = f"{account}-{self._key_seq}"
            self._keys[key] = account
            self.keys_issued.append(key)
        return _json({"listenKey": key})

    def _marks_doc(self) -> dict[str, Any]:
        t = self.market_time()
        rows = []
        for spec in self.path.instruments.values():
            rows.append(
                {
                    "s": spec.symbol,
                    "kind": spec.kind.value,
                    "cs": protocol.fmt(spec.contract_size),
                    "settle": spec.settle,
                    "p": protocol.fmt(self.path.price(spec.symbol, t)),
                    "tiers": [[protocol.fmt(x) for x in tier] for tier in spec.tiers],
                }
            )
        return {"E": self.wall_ms(), "instruments": rows}

    def _account_doc(self, acct: AccountSpec) -> dict[str, Any]:
        return {
            "a": acct.name,
            "E": self.wall_ms(),
            "balances": {k: protocol.fmt(v) for k, v in acct.balances.items()},
            "positions": [
                protocol.position_wire(p.symbol, p.side, p.qty, p.entry, p.mode)
                for p in acct.positions
            ],
        }

    # --- websocket handler -------------------------------------------------------------------

    async def _handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        url = urlsplit(conn.request.path)
        account = None
        if url.path == "/private":
            key = parse_qs(url.query).get("key", [""])[0]
            account = self._keys.get(key)
            if account is None:  # expired between handshake and handler
                return
        try:
            async for message in conn:
                self._on_client_message(conn, message, account)
        except ConnectionClosed:
            pass
        finally:
            self._market.discard(conn)
            self._private.pop(conn, None)

    def _on_client_message(
        self, conn: ServerConnection, message: str | bytes, account: str | None
    ) -> None:
        try:
            op = orjson.loads(message).get("op")
        except (orjson.JSONDecodeError, AttributeError):
            return
        if op == "subscribe":
            if account is None:
                self._market.add(conn)
                if self._firehose is not None:
                    self._start_firehose(conn)
            else:
                self._private[conn] = account
            self.subscriptions += 1
            self.subscribed.set()
            if not self.silent:
                broadcast([conn], '{"e":"subscribed"}')
        elif op == "ping" and not self.silent:
            broadcast([conn], f'{{"e":"pong","E":{self.wall_ms()}}}')

    # --- firehose ----------------------------------------------------------------------------

    def _start_firehose(self, conn: ServerConnection) -> None:
        task = asyncio.get_running_loop().create_task(self._fire(conn))
        self._fire_tasks.add(task)
        task.add_done_callback(self._fire_tasks.discard)

    async def _fire(self, conn: ServerConnection) -> None:
        spec = self._firehose
        assert spec is not None
        # Start once a /marks snapshot was served (it may race the subscribe frame), and give
        # the response a moment to reach the client, so the stream is live, not buffered.
        await self._marks_served.wait()
        await asyncio.sleep(0.05)
        chunk_frames = 2048
        # Venue time strictly after the snapshot served before the stream started.
        chunk = _firehose_chunk(self.path, spec.batch, chunk_frames, self.wall_ms() + 1)
        sent = 0
        try:
            while sent < spec.frames:
                n = min(chunk_frames, spec.frames - sent)
                conn.transport.write(chunk[0] if n == chunk_frames else chunk[1](n))
                sent += n
                await conn.drain()
        except (ConnectionError, ConnectionClosed):
            _LOG.info("firehose: client went away after %d frames", sent)


def _firehose_chunk(
    path: MarketPath, batch: int, frames: int, event_ms: int
) -> tuple[bytes, Callable[[int], bytes]]:
    """Pre-serialised, unmasked server→client text frames (valid websocket wire bytes).

    Writing them straight to the transport takes the producer out of the measurement: the
    benchmark is about the consumer's receive path.
    """
    symbols = list(path.instruments)
    starts = [path.instruments[s].start_price for s in symbols]
    encoded: list[bytes] = []
    for i in range(frames):
        marks = []
        for j in range(batch):
            k = (i * batch + j) % len(symbols)
            marks.append((symbols[k], round(starts[k] * (1.0 + ((i * 7 + j) % 101) * 1e-4), 4)))
        payload = (
            protocol.encode_mark(marks[0][0], marks[0][1], event_ms)
            if batch == 1
            else protocol.encode_marks(marks, event_ms)
        )
        encoded.append(Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[]))
    whole = b"".join(encoded)
    return whole, lambda n: b"".join(encoded[:n])


def _json(doc: object) -> Response:
    body = orjson.dumps(doc)
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)
