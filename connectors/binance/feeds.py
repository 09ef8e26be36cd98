"""Binance USDⓈ-M / COIN-M feeds for the shared driver (:func:`connectors.driver.run_feed`).

* :class:`BinanceMarketFeed` — mark prices on the ``/market`` route, combined-stream envelope.
  Streams are sent as ``SUBSCRIBE`` frames of at most 200 names; one connection carries at most
  1024 streams (:func:`market_feeds` splits larger sets), so a connection sends at most six
  control frames, well under Binance's 10 incoming messages per second. The default stream is
  ``!markPrice@arr@1s``: every symbol, one frame per second. Snapshot: ``premiumIndex``.
* :class:`BinanceUserFeed` — one account's user-data stream on ``/private``. Each connect POSTs
  for a listenKey (Binance returns the active key, extended, or a new one); the driver's
  keepalive PUTs it every 30 min; ``-1125`` on the PUT means the key is gone, so a new one is
  taken and the connection restarted; ``listenKeyExpired`` parses to ``StreamExpired`` and the
  driver reconnects (new key, full resync). Connections are renewed at 23.5 h, before Binance's
  24 h cut. Snapshot: ``account`` + ``positionRisk`` + position/asset modes, with per-account
  ``leverageBracket`` tables and ``exchangeInfo`` contract facts cached for a day and refetched
  after an ``ACCOUNT_CONFIG_UPDATE``.

Snapshots report a time 1 ms before the request was sent: Binance's pushes are absolute values,
so re-applying a push the snapshot already contains is harmless, while skipping one is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from connectors.binance import snapshots
from connectors.binance.parse import parse_frame, parse_many
from connectors.binance.rest import BinanceRest, Credentials, ListenKeyGone, new_budget
from connectors.binance.spec import SPECS, VenueSpec
from connectors.binance.venue import DEFAULTS
from connectors.errors import SettingsError, TransientError, VenueDataError
from connectors.events import (
    AssetPrice,
    CollateralModeUpdate,
    Event,
    Instrument,
    LeverageUpdate,
    PositionFill,
    PositionSnapshot,
    TierTableUpdate,
)
from connectors.feed_times import FeedTimes
from connectors.protocol import BatchParse, Feed, ResyncRequest
from connectors.venues import FeedSettings

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
MAX_STREAMS_PER_SUBSCRIBE = 200
ALL_MARKS = "!markPrice@arr@1s"
MAX_CONNECTION_AGE_S = 23.5 * 3600.0
LISTEN_KEY_KEEPALIVE_S = 30 * 60.0
CACHE_MAX_AGE_S = 24 * 3600.0
# The default intervals live once, in the venue's registry descriptor.
USER_STALE_AFTER_S = DEFAULTS.account_stale_after_s
USER_RESYNC_S = DEFAULTS.account_resync_interval_s

NEW_SYMBOL = ResyncRequest("new_symbol")
COLLATERAL_MODE = ResyncRequest("collateral_mode")


def subscribe_frames(streams: Sequence[str], *, first_id: int = 1) -> list[str]:
    """``SUBSCRIBE`` frames of at most 200 stream names each, ids counting from ``first_id``."""
    return [
        orjson.dumps(
            {
                "method": "SUBSCRIBE",
                "params": list(streams[i : i + MAX_STREAMS_PER_SUBSCRIBE]),
                "id": first_id + n,
            }
        ).decode()
        for n, i in enumerate(range(0, len(streams), MAX_STREAMS_PER_SUBSCRIBE))
    ]


def mark_streams(symbols: Sequence[str] | None, *, one_second: bool = True) -> list[str]:
    """Stream names for ``symbols`` (``None``: the all-market array)."""
    if symbols is None:
        return [ALL_MARKS if one_second else ALL_MARKS.removesuffix("@1s")]
    suffix = "@markPrice@1s" if one_second else "@markPrice"
    return [f"{s.lower()}{suffix}" for s in symbols]


def _times(
    stale_after_s: float, resync_interval_s: float, keepalive_interval_s: float | None = None
) -> FeedTimes:
    # Binance pings us (the websocket library answers with pongs): no application pings. It
    # cuts connections at 24 h, so they are renewed before.
    return FeedTimes(
        stale_after_s=stale_after_s,
        resync_interval_s=resync_interval_s,
        max_connection_age_s=MAX_CONNECTION_AGE_S,
        keepalive_interval_s=keepalive_interval_s,
    )


class BinanceMarketFeed:
    def __init__(
        self,
        spec: VenueSpec,
        rest: BinanceRest,
        *,
        symbols: Sequence[str] | None = None,
        ws_base: str | None = None,
        part: int | None = None,
        stale_after_s: float = DEFAULTS.market_stale_after_s,
        resync_interval_s: float = DEFAULTS.market_resync_interval_s,
    ) -> None:
        self.times = _times(stale_after_s, resync_interval_s)
        self.spec = spec
        self._rest = rest
        self._streams = mark_streams(symbols)
        if len(self._streams) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError("more than 1024 streams on one connection: use market_feeds()")
        self._symbols = None if symbols is None else frozenset(symbols)
        self._ws_base = ws_base or spec.ws_base
        self._name = f"{spec.venue}/market" + ("" if part is None else f"/{part}")
        venue = spec.venue

        def parse(frame: bytes | str) -> list[Event]:
            return parse_frame(frame, venue, None)

        def batch_parse(frames: Sequence[bytes | str], out: list[Event]) -> list[VenueDataError]:
            return parse_many(frames, out, venue, None)

        # Plain function attributes: the driver calls them per batch, skip the method binding.
        # The batch decoder reports each bad item of a mark array on its own (the driver counts
        # it) while the good marks of the same frame still go through.
        self.parse = parse
        self.batch_parse: BatchParse | None = batch_parse

    @property
    def name(self) -> str:
        return self._name

    @property
    def venue(self) -> str:
        return self.spec.venue

    @property
    def account(self) -> str | None:
        return None

    async def connect_url(self) -> str:
        return f"{self._ws_base}{self.spec.market_route}/stream"

    def subscribe_messages(self) -> Sequence[str]:
        return subscribe_frames(self._streams)

    def app_ping(self) -> str | None:
        return None

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        return None  # marks carry the whole state: nothing to refetch

    async def snapshot(self) -> tuple[list[Event], int]:
        # The cut-off for buffered pushes is in the venue's time: measure our clock's offset
        # first (weight 1), as the user feed does, or a skewed local clock drops or replays marks.
        await self._rest.sync_time()
        started = self._rest.server_now_ms() - 1
        body = await self._rest.public("GET", self.spec.premium_index_path)
        marks = snapshots.parse_premium_index(body, self.venue)
        if self._symbols is not None:
            marks = [m for m in marks if m.symbol in self._symbols]
        return list(marks), started

    def snapshot_rejections(self) -> list[VenueDataError]:
        return []  # nothing is skipped: a malformed premiumIndex row fails the snapshot

    async def keepalive(self) -> None:
        return None

    async def close(self) -> None:
        await self._rest.close()


def market_feeds(
    spec: VenueSpec,
    rest_factory: Callable[[], BinanceRest],
    symbols: Sequence[str] | None,
    **kwargs: Any,
) -> list[BinanceMarketFeed]:
    """One feed for the all-market array, or one per 1024 symbols."""
    if symbols is None or len(symbols) <= MAX_STREAMS_PER_CONNECTION:
        return [BinanceMarketFeed(spec, rest_factory(), symbols=symbols, **kwargs)]
    step = MAX_STREAMS_PER_CONNECTION
    return [
        BinanceMarketFeed(spec, rest_factory(), symbols=symbols[i : i + step], part=n, **kwargs)
        for n, i in enumerate(range(0, len(symbols), step))
    ]


class _Cached:
    """A value refetched when older than ``max_age_s`` or explicitly invalidated."""

    def __init__(self, max_age_s: float, clock: Callable[[], float]) -> None:
        self._max_age_s = max_age_s
        self._clock = clock
        self._at: float | None = None
        self.value: list[Event] = []

    def fresh(self) -> bool:
        return self._at is not None and self._clock() - self._at < self._max_age_s

    def set(self, value: list[Event]) -> None:
        self.value, self._at = value, self._clock()

    def invalidate(self) -> None:
        self._at = None


class BinanceUserFeed:
    # A private stream is parsed frame by frame: a listenKeyExpired ends the batch where it is.
    batch_parse: BatchParse | None = None

    def __init__(
        self,
        spec: VenueSpec,
        account: str,
        rest: BinanceRest,
        *,
        ws_base: str | None = None,
        stale_after_s: float = USER_STALE_AFTER_S,
        resync_interval_s: float = USER_RESYNC_S,
        cache_max_age_s: float = CACHE_MAX_AGE_S,
        keepalive_interval_s: float = LISTEN_KEY_KEEPALIVE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A user stream is silent while nothing happens on the account, so silence is not
        # staleness here; liveness comes from Binance's pings and the resync timer.
        self.times = _times(stale_after_s, resync_interval_s, keepalive_interval_s)
        self.spec = spec
        self._account = account
        self._rest = rest
        self._ws_base = ws_base or spec.ws_base
        self._brackets = _Cached(cache_max_age_s, clock)
        self._instruments = _Cached(cache_max_age_s, clock)
        self.listen_key: str | None = None
        self.hedge_mode: bool | None = None
        self.multi_asset: bool | None = None
        self.notional_coefs: dict[str, float] = {}
        """Per-symbol ``notionalCoef`` of this account's brackets (only where it is scaled)."""
        self._bad_brackets: dict[str, VenueDataError] = {}
        """Symbols whose bracket table the rules rejected (cached with the tables)."""
        self._known: frozenset[str] = frozenset()
        """Symbols with both contract facts and a bracket table (or a known-bad one)."""
        self._rejections: list[VenueDataError] = []

    def snapshot_rejections(self) -> list[VenueDataError]:
        """Items the last snapshot skipped (the driver counts them as rejections), drained."""
        out, self._rejections = self._rejections, []
        return out

    @property
    def name(self) -> str:
        return f"{self.spec.venue}/private/{self._account}"

    @property
    def venue(self) -> str:
        return self.spec.venue

    @property
    def account(self) -> str | None:
        return self._account

    def parse(self, frame: bytes | str) -> list[Event]:
        return parse_frame(frame, self.spec.venue, self._account)

    def after_events(self, events: Sequence[Event]) -> ResyncRequest | None:
        """Drop the cached facts the events make stale; ask for a snapshot when the store
        cannot be right without one (no REST here: the driver acts on the request)."""
        request: ResyncRequest | None = None
        for ev in events:
            if isinstance(ev, LeverageUpdate | CollateralModeUpdate):
                # Brackets depend on the account's configuration: refetch at the next snapshot.
                self._brackets.invalidate()
                if isinstance(ev, CollateralModeUpdate) and ev.multi_asset:
                    # Collateral prices and haircuts come with a snapshot: take one now, or
                    # a non-stablecoin balance stays unpriced until the timer resync.
                    request = COLLATERAL_MODE
            elif (
                isinstance(ev, PositionSnapshot | PositionFill)
                and self._known
                and ev.symbol not in self._known
            ):
                # Listed after the caches were filled: without its contract facts and tiers the
                # leg cannot be valued. Refetch both and resync now.
                self._instruments.invalidate()
                self._brackets.invalidate()
                request = NEW_SYMBOL
        return request

    def app_ping(self) -> str | None:
        return None

    async def connect_url(self) -> str:
        self.listen_key = await self._rest.new_listen_key()
        return f"{self._ws_base}{self.spec.private_route}/ws?listenKey={self.listen_key}"

    def subscribe_messages(self) -> Sequence[str]:
        return ()

    async def keepalive(self) -> None:
        if self.listen_key is None:
            return
        try:
            await self._rest.keepalive_listen_key(self.listen_key)
        except ListenKeyGone as exc:
            # The stream on the old key is dead: take a new key and reconnect (full resync).
            self.listen_key = await self._rest.new_listen_key()
            raise TransientError(f"{self.name}: listenKey gone; reconnecting") from exc

    async def snapshot(self) -> tuple[list[Event], int]:
        rest, venue, spec = self._rest, self.spec.venue, self.spec
        await rest.sync_time()
        started = rest.server_now_ms() - 1
        instruments_cached = self._instruments.fresh()
        brackets_cached = self._brackets.fresh()
        instruments = await self._instrument_events()
        multi = await self._modes()
        tables = await self._bracket_events(started)
        account_body, risk_body = await asyncio.gather(
            rest.signed("GET", spec.account_path), rest.signed("GET", spec.position_risk_path)
        )
        facts = snapshots.parse_account_v3(account_body, venue)
        positions = snapshots.parse_position_risk_v3(risk_body, venue, self._account,
                                                     event_ms=started)  # fmt: skip
        held = {p.symbol for p in positions.positions}
        if held - self._known and (instruments_cached or brackets_cached):
            # A symbol listed after the caches were filled: refetch them now, once.
            log.info("%s: %d held symbol(s) not in the cached contract facts; refetching",
                     self.name, len(held - self._known))  # fmt: skip
            self._instruments.invalidate()
            self._brackets.invalidate()
            instruments = await self._instrument_events()
            tables = await self._bracket_events(started)
        if held - self._known:
            # Still unknown after a fresh fetch: the venue has no facts for it. Stop asking
            # (no refetch per push) until the caches are next refilled.
            log.warning("%s: %d held symbol(s) without contract facts or brackets",
                        self.name, len(held - self._known))  # fmt: skip
            self._known = self._known | held
        for symbol, exc in self._bad_brackets.items():
            # Counted every snapshot while the venue serves it; a held symbol's legs stay
            # without a table (the store holds them incomplete and the engine alerts).
            self._rejections.append(exc)
            if symbol in held:
                log.warning("%s: bracket table of held %s rejected (%s); its legs stay "
                            "unvalued", self.name, symbol, exc.reason)  # fmt: skip
        events: list[Event] = [*instruments, *tables]
        ratios: dict[str, float] = {}
        if multi:
            prices, ratios = await self._collateral(facts.balances)
            events.extend(prices)
            # A zero balance the index cannot price holds nothing, but the rules would still
            # need its price: leave it out rather than make the whole account unpriceable.
            kept = {a: b for a, b in facts.balances.items() if b != 0.0 or ratios[a] > 0.0}
            facts = dataclasses.replace(facts, balances=kept)
            ratios = {a: r for a, r in ratios.items() if a in kept}
        events.append(snapshots.account_snapshot(venue, self._account, facts, positions,
                                                 multi_asset=multi, event_ms=started,
                                                 collateral_ratios=ratios))  # fmt: skip
        return events, started

    async def _collateral(
        self, balances: Mapping[str, float]
    ) -> tuple[list[AssetPrice], dict[str, float]]:
        """Multi-assets mode: USD prices and haircuts of every balance asset, fetched with each
        snapshot (public, weight 10). The rules value an asset without a ratio at 100 %, so
        every balance asset gets one: an asset the index lacks gets 0 (counts for nothing, the
        cautious side) and no price (a non-stablecoin then stays unpriced, which is reported)."""
        path = self.spec.asset_index_path
        venue = self.spec.venue
        errors: list[VenueDataError] = []
        index = {} if path is None else snapshots.parse_asset_index(
            await self._rest.public("GET", path), venue, errors
        )  # fmt: skip
        self._rejections.extend(errors)
        prices: list[AssetPrice] = []
        ratios: dict[str, float] = {}
        for asset in balances:
            row = index.get(asset)
            if row is None:
                ratios[asset] = 0.0
                if balances[asset] != 0.0:
                    log.warning("%s: no asset index for collateral %s", self.name, asset)
                continue
            ratios[asset] = row.collateral_ratio
            prices.append(AssetPrice(venue, asset, row.price, row.event_ms))
        return prices, ratios

    async def _modes(self) -> bool:
        """Position mode and multi-assets mode, cached with the brackets: they are heavy (one
        ``accountConfig`` of weight 5 on USDⓈ-M, ``positionSide/dual`` of 30 on COIN-M), and a
        multi-assets switch is pushed (ACCOUNT_CONFIG_UPDATE) and invalidates them.
        The position mode can only change while flat, and positions carry their side anyway."""
        if self._brackets.fresh() and self.multi_asset is not None:
            return self.multi_asset
        rest, spec, venue = self._rest, self.spec, self.spec.venue
        if spec.account_config_path is not None:
            # Both modes in one answer, weight 5 instead of 30 + 30: the first snapshot of
            # hundreds of accounts must fit the IP's 2,400 per minute.
            body = await rest.signed("GET", spec.account_config_path)
            hedge = snapshots.parse_dual_side(body, venue)
            multi = snapshots.parse_multi_assets(body, venue)
        else:
            hedge = snapshots.parse_dual_side(await rest.signed("GET", spec.dual_side_path), venue)
            multi = False
            if spec.multi_assets_path is not None:
                body = await rest.signed("GET", spec.multi_assets_path)
                multi = snapshots.parse_multi_assets(body, venue)
        if hedge != self.hedge_mode:
            log.info("%s: position mode %s", self.name, "hedge" if hedge else "one-way")
            self.hedge_mode = hedge
        self.multi_asset = multi
        return multi

    async def _instrument_events(self) -> list[Event]:
        if not self._instruments.fresh():
            body = await self._rest.public("GET", self.spec.exchange_info_path)
            instruments: list[Instrument] = snapshots.parse_exchange_info(
                body, self.spec.venue, self.spec.kind
            )
            self._instruments.set(list(instruments))
            self._update_known()
        return self._instruments.value

    async def _bracket_events(self, event_ms: int) -> list[Event]:
        if not self._brackets.fresh():
            body = await self._rest.signed("GET", self.spec.leverage_bracket_path)
            errors: list[VenueDataError] = []
            sets = snapshots.decode_leverage_brackets(body, self.spec.venue, errors)
            self.notional_coefs = {s.symbol: s.notional_coef for s in sets if s.notional_coef}
            tables: list[TierTableUpdate] = snapshots.tier_table_updates(
                sets, self.spec.venue, self._account, event_ms=event_ms, errors=errors
            )
            # A malformed row whose symbol is unknown is counted once, here.
            self._bad_brackets = {e.detail: e for e in errors if e.detail}
            self._rejections.extend(e for e in errors if not e.detail)
            self._brackets.set(list(tables))
            self._update_known()
        return self._brackets.value

    def _update_known(self) -> None:
        with_facts = {e.symbol for e in self._instruments.value if type(e) is Instrument}
        with_tiers = {e.symbol for e in self._brackets.value if type(e) is TierTableUpdate}
        self._known = frozenset(with_facts & (with_tiers | self._bad_brackets.keys()))

    async def close(self) -> None:
        if self.listen_key is not None:
            with contextlib.suppress(ListenKeyGone, TransientError):  # already gone
                await self._rest.close_listen_key(self.listen_key)
            self.listen_key = None
        await self._rest.close()


def build_feeds(settings: FeedSettings) -> list[Feed]:
    """The venue's market feed(s) and one user feed per account (the registry's factory)."""
    spec = SPECS[settings.venue]
    # Binance limits REST weight per IP: every client of the venue takes its turn from one
    # budget, or each would spend the whole limit believing it is alone.
    budget = new_budget(spec, lambda: time.time() * 1000.0)
    feeds: list[Feed] = list(
        market_feeds(
            spec,
            lambda: BinanceRest(spec, base_url=settings.rest_url, budget=budget),
            None,
            ws_base=settings.ws_url,
            stale_after_s=settings.stale_after_s,
            resync_interval_s=settings.resync_interval_s,
        )
    )
    for acc in settings.accounts:
        if acc.api_key is None or acc.api_secret is None:
            raise SettingsError(
                "api_key", f"account {acc.name}: Binance needs api_key and api_secret"
            )
        creds = Credentials(acc.api_key.reveal(), acc.api_secret.reveal())
        rest = BinanceRest(spec, base_url=settings.rest_url, credentials=creds, budget=budget)
        feeds.append(
            BinanceUserFeed(
                spec,
                acc.name,
                rest,
                ws_base=settings.ws_url,
                stale_after_s=acc.stale_after_s,
                resync_interval_s=acc.resync_interval_s,
            )
        )
    return feeds
