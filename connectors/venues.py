"""The venue registry: every venue the product knows, each described once by its own folder.

A venue is one folder under ``connectors/`` plus one line in :data:`_REGISTRY`. The folder's
``venue.py`` exports ``DESCRIPTORS``, one :class:`VenueDescriptor` per venue key it serves; the
descriptor says everything the rest of the product needs to know about the venue: its pure frame
parser, the factory of its feeds and their default intervals, whether an account needs API
credentials, the margin model family ``calc`` reads a snapshot with, and the margin asset rule.
``monitor/`` asks this module and names no venue.

Descriptor modules are imported on first use, so a daemon watching one venue never loads the
others, and ``marginwatch calc`` never imports a websocket client.
"""

from __future__ import annotations

import enum
import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from connectors.events import Event
from connectors.protocol import Feed

FrameParser = Callable[[bytes | str], list[Event]]

DECODE_ACCOUNT = "decode"
"""Account label given to private events when frames are decoded outside a running feed."""

# venue key -> module whose ``DESCRIPTORS`` holds its descriptor. One line per venue key.
_REGISTRY: dict[str, str] = {
    "sim": "connectors.sim.venue",
    "binance-usdm": "connectors.binance.venue",
    "binance-coinm": "connectors.binance.venue",
    "bybit": "connectors.bybit.venue",
    "okx": "connectors.okx.venue",
    "hyperliquid": "connectors.hyperliquid.venue",
    "deribit": "connectors.deribit.venue",
    "dydx": "connectors.dydx.venue",
}


class ModelFamily(enum.StrEnum):
    """The shape of a venue's per-instrument maintenance-margin model (``rules/``)."""

    TIERS = "tiers"  # notional tiers, rules.tiers.TierTable
    SIZE_LINEAR = "size_linear"  # rates linear in size, rules.size_linear.SizeLinearModel
    IMF_MF = "imf_mf"  # IMF x MF with open-interest scaling, rules.imf_mf.ImfMfModel


@dataclass(frozen=True, slots=True)
class MarginRules:
    """How a venue margins a cross account, as far as the venue-neutral code must know."""

    family: ModelFamily
    snapshot_block: str
    """The ``calc`` snapshot key holding per-symbol model parameters (snapshot.schema.json)."""
    tier_deduction: bool = True
    """``False``: the whole position is margined at its tier's rate, no deduction (OKX)."""
    mmr_from_max_leverage: bool = False
    """``mmr = 1/(2·max_leverage)`` and tier caps may be omitted (Hyperliquid margin tables)."""
    inverse: bool = False
    """Contracts are coin-margined: an account with no positions still counts in its coin."""
    default_margin_asset: str | None = None
    """The collateral asset of a single-asset account that holds no position yet."""


@dataclass(frozen=True, slots=True)
class FeedDefaults:
    """Intervals that suit the venue's streams, used where the config leaves them out."""

    market_stale_after_s: float
    market_resync_interval_s: float
    account_stale_after_s: float  # inf: a quiet private stream is normal, never "stale"
    account_resync_interval_s: float


class Secret(Protocol):
    def reveal(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AccountSettings:
    """One watched account as a venue's feed factory receives it: intervals resolved."""

    name: str
    api_key: Secret | None
    api_secret: Secret | None
    stale_after_s: float
    resync_interval_s: float


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """What a venue's ``build_feeds`` receives: endpoints (``None``: production) and accounts."""

    venue: str
    rest_url: str | None
    ws_url: str | None
    stale_after_s: float
    resync_interval_s: float
    accounts: tuple[AccountSettings, ...]


FeedFactory = Callable[[FeedSettings], list[Feed]]


@dataclass(frozen=True, slots=True)
class VenueDescriptor:
    key: str
    label: str
    """The venue's name as people write it, for messages (``Binance USDⓈ-M``)."""
    margin: MarginRules
    parser: Callable[[], FrameParser] | None = None
    """Loads the pure frame parser (``marginwatch decode``); ``None``: no connector yet."""
    build_feeds: FeedFactory | None = None
    """The market feed(s) and one private feed per account; ``None``: no connector yet."""
    defaults: FeedDefaults | None = None
    needs_credentials: bool = False
    """Accounts must name an API key and secret (read-only keys suffice)."""

    @property
    def has_connector(self) -> bool:
        return self.build_feeds is not None


class UnknownVenueError(KeyError):
    """A venue key that no registry line names."""


def keys() -> list[str]:
    """Every venue key the product knows (connectors and ``calc`` models), in registry order."""
    return list(_REGISTRY)


@functools.cache
def descriptor(key: str) -> VenueDescriptor:
    """The descriptor of ``key``; :class:`UnknownVenueError` if no registry line names it."""
    module_name = _REGISTRY.get(key)
    if module_name is None:
        raise UnknownVenueError(key)
    found: dict[str, VenueDescriptor] = importlib.import_module(module_name).DESCRIPTORS
    return found[key]


def connector_keys() -> list[str]:
    """Venue keys a daemon can watch (the venue has feeds)."""
    return [k for k in keys() if descriptor(k).has_connector]


def frame_parser(key: str) -> FrameParser:
    """The pure parser for ``key``'s frames; :class:`UnknownVenueError` when it has none."""
    d = descriptor(key)
    if d.parser is None:
        raise UnknownVenueError(key)
    return d.parser()


def parser_keys() -> list[str]:
    return [k for k in keys() if descriptor(k).parser is not None]


def default_margin_asset(key: str) -> str | None:
    """The venue's margin asset for an account holding no position; ``None`` for unknown keys."""
    try:
        return descriptor(key).margin.default_margin_asset
    except UnknownVenueError:
        return None


class ConfiguredVenue(Protocol):
    """A venue as configured (``monitor.config.VenueConfig`` fits): ``None`` takes a default."""

    @property
    def rest_url(self) -> str | None: ...
    @property
    def ws_url(self) -> str | None: ...
    @property
    def stale_after_s(self) -> float | None: ...
    @property
    def resync_interval_s(self) -> float | None: ...


class ConfiguredAccount(Protocol):
    """An account as configured (``monitor.config.AccountConfig`` fits)."""

    @property
    def name(self) -> str: ...
    @property
    def api_key(self) -> Secret | None: ...
    @property
    def api_secret(self) -> Secret | None: ...
    @property
    def stale_after_s(self) -> float | None: ...
    @property
    def resync_interval_s(self) -> float | None: ...


def feed_settings(
    key: str, venue: ConfiguredVenue, accounts: Sequence[ConfiguredAccount]
) -> FeedSettings:
    """Resolve a configured venue and its accounts against the venue's default intervals."""
    d = descriptor(key)
    if d.defaults is None:
        raise UnknownVenueError(key)
    dft = d.defaults

    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    return FeedSettings(
        venue=key,
        rest_url=venue.rest_url,
        ws_url=venue.ws_url,
        stale_after_s=pick(venue.stale_after_s, dft.market_stale_after_s),
        resync_interval_s=pick(venue.resync_interval_s, dft.market_resync_interval_s),
        accounts=tuple(
            AccountSettings(
                name=a.name,
                api_key=a.api_key,
                api_secret=a.api_secret,
                stale_after_s=pick(a.stale_after_s, dft.account_stale_after_s),
                resync_interval_s=pick(a.resync_interval_s, dft.account_resync_interval_s),
            )
            for a in accounts
        ),
    )


def venue_feeds(
    key: str, venue: ConfiguredVenue, accounts: Sequence[ConfiguredAccount]
) -> list[Feed]:
    """The venue's market feed(s), then one private feed per account.

    Raises :class:`connectors.errors.SettingsError` naming the setting a venue cannot work with.
    """
    d = descriptor(key)
    if d.build_feeds is None:
        raise UnknownVenueError(key)
    return d.build_feeds(feed_settings(key, venue, accounts))
