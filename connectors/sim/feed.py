"""The sim venue's :class:`connectors.protocol.Feed` implementations: one market, one per account.

All venue specifics (URLs, subscribe/ping frames, REST snapshots, listen keys) live here; the
shared driver in :mod:`connectors.driver` does the rest. Both feeds hold their timing
(:class:`~connectors.feed_times.FeedTimes`) and REST side (:class:`_SimRest`) as values.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from connectors.errors import VenueDataError
from connectors.events import Event
from connectors.feed_times import FeedTimes
from connectors.protocol import BatchParse, ResyncRequest
from connectors.sim import protocol
from connectors.sim.http import http_get
from connectors.sim.venue import DEFAULTS

SUBSCRIBE = '{"op":"subscribe"}'
PING = '{"op":"ping"}'
VENUE = protocol.VENUE


class _SimRest:
    """The sim venue's REST side, shared by both feeds: plain HTTP GETs on loopback."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self._timeout_s = timeout_s

    async def get(self, target: str) -> bytes:
        return await http_get(VENUE, self.host, self.port, target, timeout_s=self._timeout_s)


class SimMarketFeed:
    """Mark prices of every sim instrument; the snapshot also carries instruments and tiers."""

    venue = VENUE
    # Plain functions, not methods: the driver calls them per batch (frame by frame after a
    # batch decoder's bug), and a bound-method hop would be pure overhead on the hot path.
    parse = staticmethod(protocol.parse)
    batch_parse: BatchParse | None = staticmethod(protocol.parse_many)

    def __init__(
        self,
        host: str,
        port: int,
        *,
        stale_after_s: float = DEFAULTS.market_stale_after_s,
        resync_interval_s: float = DEFAULTS.market_resync_interval_s,
        app_ping_interval_s: float | None = 15.0,
        max_connection_age_s: float | None = None,
        http_timeout_s: float = 10.0,
    ) -> None:
        self.times = FeedTimes(
            stale_after_s=stale_after_s,
            resync_interval_s=resync_interval_s,
            app_ping_interval_s=app_ping_interval_s,
            max_connection_age_s=max_connection_age_s,
        )
        self.host = host
        self.port = port
        self._rest = _SimRest(host, port, http_timeout_s)

    @property
    def name(self) -> str:
        return "sim/market"

    @property
    def account(self) -> str | None:
        return None

    async def connect_url(self) -> str:
        return f"ws://{self.host}:{self.port}/market"

    def subscribe_messages(self) -> Sequence[str]:
        return (SUBSCRIBE,)

    def app_ping(self) -> str | None:
        return PING

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        return None

    async def snapshot(self) -> tuple[list[Event], int]:
        return protocol.parse_marks_snapshot(await self._rest.get("/marks"))

    def snapshot_rejections(self) -> list[VenueDataError]:
        return []  # the sim's snapshots are all or nothing

    async def keepalive(self) -> None:
        return None

    async def close(self) -> None:
        return None


class SimAccountFeed:
    """One account's private stream, authorised by a listen key taken at each connect."""

    venue = VENUE
    parse = staticmethod(protocol.parse)
    # A private stream is parsed frame by frame: a streamExpired ends the batch where it is.
    batch_parse: BatchParse | None = None

    def __init__(
        self,
        host: str,
        port: int,
        account: str,
        *,
        stale_after_s: float = DEFAULTS.account_stale_after_s,
        resync_interval_s: float = DEFAULTS.account_resync_interval_s,
        app_ping_interval_s: float | None = 15.0,
        max_connection_age_s: float | None = None,
        keepalive_interval_s: float | None = 1800.0,
        http_timeout_s: float = 10.0,
    ) -> None:
        self.times = FeedTimes(
            stale_after_s=stale_after_s,
            resync_interval_s=resync_interval_s,
            app_ping_interval_s=app_ping_interval_s,
            max_connection_age_s=max_connection_age_s,
            keepalive_interval_s=keepalive_interval_s,
        )
        self.host = host
        self.port = port
        self._rest = _SimRest(host, port, http_timeout_s)
        self._account = account
        self._key: str | None = None

    @property
    def name(self) -> str:
        return f"sim/private/{self._account}"

    @property
    def account(self) -> str | None:
        return self._account

    async def connect_url(self) -> str:
        # A fresh key on every connect: after streamExpired the old key is dead.
        body = await self._rest.get(f"/listenKey?account={quote(self._account)}")
        self._key = protocol.parse_listen_key(body)
        return f"ws://{self.host}:{self.port}/private?key={quote(self._key)}"

    def subscribe_messages(self) -> Sequence[str]:
        return (SUBSCRIBE,)

    def app_ping(self) -> str | None:
        return PING

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        return None  # pushes carry absolute state; the sim lists no symbols later

    async def snapshot(self) -> tuple[list[Event], int]:
        body = await self._rest.get(f"/snapshot?account={quote(self._account)}")
        return protocol.parse_account_snapshot(body)

    def snapshot_rejections(self) -> list[VenueDataError]:
        return []  # the sim's snapshots are all or nothing

    async def keepalive(self) -> None:
        if self._key is not None:
            await self._rest.get(
                f"/listenKey?account={quote(self._account)}&key={quote(self._key)}"
            )

    async def close(self) -> None:
        return None
