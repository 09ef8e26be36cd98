"""The sim venue's :class:`connectors.protocol.Feed` implementations: one market, one per account.

All venue specifics (URLs, subscribe/ping frames, REST snapshots, listen keys) live here; the
shared driver in :mod:`connectors.driver` does the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from connectors.events import Event
from connectors.feed_times import FeedTimes
from connectors.sim import protocol
from connectors.sim.http import http_get

SUBSCRIBE = '{"op":"subscribe"}'
PING = '{"op":"ping"}'


class _SimFeedBase(FeedTimes):
    venue = protocol.VENUE
    # A plain function, not a method: the driver calls feed.parse per frame and a bound-method
    # hop would be pure overhead on the hot path.
    parse = staticmethod(protocol.parse)
    # The driver's optional batch entry point (see connectors.driver): one call per batch.
    parse_many = staticmethod(protocol.parse_many)

    def __init__(
        self,
        host: str,
        port: int,
        *,
        stale_after_s: float,
        resync_interval_s: float,
        app_ping_interval_s: float | None,
        max_connection_age_s: float | None,
        http_timeout_s: float,
    ) -> None:
        super().__init__(
            stale_after_s=stale_after_s,
            resync_interval_s=resync_interval_s,
            app_ping_interval_s=app_ping_interval_s,
            max_connection_age_s=max_connection_age_s,
        )
        self.host = host
        self.port = port
        self._http_timeout_s = http_timeout_s

    def subscribe_messages(self) -> Sequence[str]:
        return (SUBSCRIBE,)

    def app_ping(self) -> str | None:
        return PING

    async def _get(self, target: str) -> bytes:
        return await http_get(
            self.venue, self.host, self.port, target, timeout_s=self._http_timeout_s
        )

    async def close(self) -> None:
        return None


class SimMarketFeed(_SimFeedBase):
    """Mark prices of every sim instrument; the snapshot also carries instruments and tiers."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        stale_after_s: float = 5.0,
        resync_interval_s: float = 300.0,
        app_ping_interval_s: float | None = 15.0,
        max_connection_age_s: float | None = None,
        http_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            host,
            port,
            stale_after_s=stale_after_s,
            resync_interval_s=resync_interval_s,
            app_ping_interval_s=app_ping_interval_s,
            max_connection_age_s=max_connection_age_s,
            http_timeout_s=http_timeout_s,
        )

    @property
    def name(self) -> str:
        return "sim/market"

    @property
    def account(self) -> str | None:
        return None

    @property
    def keepalive_interval_s(self) -> float | None:
        return None

    async def connect_url(self) -> str:
        return f"ws://{self.host}:{self.port}/market"

    async def snapshot(self) -> tuple[list[Event], int]:
        return protocol.parse_marks_snapshot(await self._get("/marks"))

    async def keepalive(self) -> None:
        return None


class SimAccountFeed(_SimFeedBase):
    """One account's private stream, authorised by a listen key taken at each connect."""

    def __init__(
        self,
        host: str,
        port: int,
        account: str,
        *,
        stale_after_s: float = 60.0,
        resync_interval_s: float = 120.0,
        app_ping_interval_s: float | None = 15.0,
        max_connection_age_s: float | None = None,
        keepalive_interval_s: float | None = 1800.0,
        http_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(
            host,
            port,
            stale_after_s=stale_after_s,
            resync_interval_s=resync_interval_s,
            app_ping_interval_s=app_ping_interval_s,
            max_connection_age_s=max_connection_age_s,
            http_timeout_s=http_timeout_s,
        )
        self._account = account
        self._keepalive_interval_s = keepalive_interval_s
        self._key: str | None = None

    @property
    def name(self) -> str:
        return f"sim/private/{self._account}"

    @property
    def account(self) -> str | None:
        return self._account

    @property
    def keepalive_interval_s(self) -> float | None:
        return self._keepalive_interval_s

    async def connect_url(self) -> str:
        # A fresh key on every connect: after streamExpired the old key is dead.
        body = await self._get(f"/listenKey?account={quote(self._account)}")
        self._key = protocol.parse_listen_key(body)
        return f"ws://{self.host}:{self.port}/private?key={quote(self._key)}"

    async def snapshot(self) -> tuple[list[Event], int]:
        body = await self._get(f"/snapshot?account={quote(self._account)}")
        return protocol.parse_account_snapshot(body)

    async def keepalive(self) -> None:
        if self._key is not None:
            await self._get(f"/listenKey?account={quote(self._account)}&key={quote(self._key)}")
