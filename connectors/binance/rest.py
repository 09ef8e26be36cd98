"""Binance futures REST: HMAC-SHA256 signing, server-clock offset, weight back-off, error map.

Signed (USER_DATA) requests carry ``timestamp`` (the server's clock as we estimate it) and
``recvWindow``; ``signature = hex(HMAC_SHA256(secret, query_string + body))``; the API key goes in
the ``X-MBX-APIKEY`` header. listenKey calls (USER_STREAM) carry the key header only.

Error map (Binance's own codes):

* ``-1022`` bad signature, ``-2014``/``-2015`` bad or unauthorised key, HTTP 401 →
  :class:`AuthError`
* ``-1125`` listenKey does not exist → :class:`ListenKeyGone` (POST a new key)
* ``-1021`` timestamp outside recvWindow → :class:`TransientError` after re-syncing the clock
* HTTP 429 (too many requests) → every client of the venue's :class:`WeightBudget` pauses for
  ``Retry-After`` and the request is sent again (at most :data:`MAX_TOO_MANY` times, then
  :class:`RateLimited`); HTTP 418 (IP ban) → :class:`RestBanned`, and no client of the budget
  calls the venue again until the ban ends
* HTTP 5xx, transport failures → :class:`TransientError`; any other error → :class:`VenueRejected`

Every request first takes its weight (Binance's published weight of the endpoint) from the
budget shared by every client of the venue and IP (:mod:`connectors.ratelimit`), and reports
the ``X-MBX-USED-WEIGHT-1M`` of the answer back to it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from connectors.binance.spec import VenueSpec
from connectors.errors import AuthError, TransientError, VenueDataError, VenueRejected
from connectors.http import HttpClient, Response
from connectors.ratelimit import RateLimited, RestBanned, WeightBudget, WeightRule

log = logging.getLogger(__name__)

WEIGHT_RULE = WeightRule(limit=2400, window_ms=60_000, used_header="x-mbx-used-weight-1m")
"""Binance futures: 2,400 request weight per IP per minute, reported in ``X-MBX-USED-WEIGHT-1M``."""
MAX_TOO_MANY = 3
"""Answers 429 in a row for one request before it gives up (each after the pause it asked)."""
BAN_DEFAULT_S = 120.0
"""A 418 without ``Retry-After``: Binance's shortest ban."""
DEFAULT_WEIGHT = 10
"""Weight assumed for a path missing from :func:`request_weight`'s table: the cautious side."""
AUTH_CODES = frozenset({-1022, -2014, -2015})
LISTEN_KEY_MISSING = -1125
TIMESTAMP_OUTSIDE_WINDOW = -1021

Params = Mapping[str, str | int | float | bool]


class ListenKeyGone(VenueRejected):
    """``-1125``: the listenKey does not exist (expired or closed); POST a new one."""


__all__ = ["BinanceRest", "Credentials", "ListenKeyGone", "RateLimited", "RestBanned"]


def request_weight(spec: VenueSpec, method: str, path: str, params: Params | None) -> int:
    """Binance's published request weight of an endpoint (the all-symbol forms weigh more)."""
    has_symbol = bool(params) and "symbol" in (params or {})
    table: dict[str | None, int] = {
        spec.time_path: 1,
        spec.exchange_info_path: 1,
        spec.premium_index_path: 1 if has_symbol else 10,
        spec.listen_key_path: 1,
        spec.account_path: 5,
        spec.position_risk_path: 5,
        spec.leverage_bracket_path: 1,
        spec.dual_side_path: 30,
        spec.multi_assets_path: 30,
        spec.account_config_path: 5,
        spec.asset_index_path: 1 if has_symbol else 10,
    }
    return table.get(path, DEFAULT_WEIGHT)


def new_budget(spec: VenueSpec, wall_ms: Callable[[], float]) -> WeightBudget:
    """The budget every REST client of ``spec``'s venue from one IP must share."""
    return WeightBudget(spec.venue, WEIGHT_RULE, now_ms=wall_ms)


def _retry_after_s(response: Response) -> float | None:
    text = response.headers.get("retry-after", "")
    return float(text) if text.isdigit() else None


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    secret: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(api_key=<redacted>, secret=<redacted>)"


def sign(secret: str, payload: str) -> str:
    """Binance's signature: lower-case hex HMAC-SHA256 of the total params with the secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _bool_text(value: str | int | float | bool) -> str | int | float:
    return ("true" if value else "false") if isinstance(value, bool) else value


def query_string(params: Params) -> str:
    return urlencode([(k, _bool_text(v)) for k, v in params.items()])


def parse_listen_key(body: bytes | str, venue: str) -> str:
    try:
        doc = orjson.loads(body)
        key = doc["listenKey"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise VenueDataError(venue, "bad_listen_key") from exc
    if type(key) is not str or not key:
        raise VenueDataError(venue, "bad_listen_key")
    return key


class BinanceRest:
    """REST calls of one Binance product for one account (or none, for public data)."""

    def __init__(
        self,
        spec: VenueSpec,
        *,
        base_url: str | None = None,
        credentials: Credentials | None = None,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000.0,
        http: HttpClient | None = None,
        budget: WeightBudget | None = None,
    ) -> None:
        self.spec = spec
        self._http = http or HttpClient(base_url or spec.rest_base, timeout_s=timeout_s)
        self._credentials = credentials
        self._recv_window_ms = recv_window_ms
        self._wall_ms = wall_ms
        self.offset_ms = 0.0
        """Server clock minus ours, estimated at the midpoint of a ``/time`` round trip."""
        self.budget = budget or new_budget(spec, wall_ms)
        """Shared by every client of the venue and IP (the feed factory hands one to all)."""
        self._exchange_ms = (0.0, 0.0)
        """When the last request went out and its answer came back (our clock)."""
        self.used_weight_1m: int | None = None
        """The venue's ``X-MBX-USED-WEIGHT-1M`` in the last answer (every client's weight)."""

    @property
    def venue(self) -> str:
        return self.spec.venue

    def server_now_ms(self) -> int:
        return int(self._wall_ms() + self.offset_ms)

    async def sync_time(self) -> int:
        """Measure the clock offset against the server's time; returns the server time."""
        doc = await self.public("GET", self.spec.time_path)
        # The round trip of the request itself: the turn it waited in the budget is not in it.
        sent, received = self._exchange_ms
        try:
            server = int(doc["serverTime"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueDataError(self.venue, "bad_server_time") from exc
        self.offset_ms = server - (sent + received) / 2.0
        return server

    # --- the three security types ------------------------------------------------------------

    async def public(self, method: str, path: str, params: Params | None = None) -> Any:
        query = query_string(params or {})
        return await self._call(method, path, params, lambda: query, {})

    async def keyed(self, method: str, path: str, params: Params | None = None) -> Any:
        """USER_STREAM: API key header, no signature (listenKey endpoints)."""
        query = query_string(params or {})
        return await self._call(method, path, params, lambda: query, self._key_header())

    async def signed(self, method: str, path: str, params: Params | None = None) -> Any:
        creds = self._require_credentials()

        def signed_query() -> str:
            # Built when the request is sent, not when it was asked for: a turn in the budget
            # may take longer than the recvWindow.
            query = query_string(
                {
                    **(params or {}),
                    "recvWindow": self._recv_window_ms,
                    "timestamp": self.server_now_ms(),
                }
            )
            return f"{query}&signature={sign(creds.secret, query)}"

        try:
            return await self._call(method, path, params, signed_query, self._key_header())
        except VenueRejected as exc:
            if exc.code == TIMESTAMP_OUTSIDE_WINDOW:
                await self.sync_time()
                raise TransientError(f"{self.venue}: clock re-synced after -1021") from exc
            raise

    # --- listenKey -----------------------------------------------------------------------------

    async def new_listen_key(self) -> str:
        """POST: a new key, or the current one extended if one is active."""
        doc = await self.keyed("POST", self.spec.listen_key_path)
        return parse_listen_key(orjson.dumps(doc), self.venue)

    async def keepalive_listen_key(self, listen_key: str) -> None:
        """PUT: extend the key 60 min; raises :class:`ListenKeyGone` if it is unknown."""
        await self.keyed("PUT", self.spec.listen_key_path, {"listenKey": listen_key})

    async def close_listen_key(self, listen_key: str) -> None:
        await self.keyed("DELETE", self.spec.listen_key_path, {"listenKey": listen_key})

    async def close(self) -> None:
        await self._http.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _require_credentials(self) -> Credentials:
        if self._credentials is None:
            raise AuthError(self.venue, "no-key", "this call needs API credentials")
        return self._credentials

    def _key_header(self) -> dict[str, str]:
        return {"X-MBX-APIKEY": self._require_credentials().api_key}

    async def _call(
        self,
        method: str,
        path: str,
        params: Params | None,
        query: Callable[[], str],
        headers: dict[str, str],
    ) -> Any:
        weight = request_weight(self.spec, method, path, params)
        budget = self.budget
        for _ in range(MAX_TOO_MANY):
            await budget.take(weight)
            used: int | None = None
            try:
                q = query()
                target = f"{path}?{q}" if q else path
                sent = self._wall_ms()
                response = await self._http.request(method, target, headers=headers)
                self._exchange_ms = (sent, self._wall_ms())
                header = response.headers.get("x-mbx-used-weight-1m")
                if header is not None and header.isdigit():
                    used = self.used_weight_1m = int(header)
            finally:
                budget.answered(weight, used)
            if response.status == 429:
                retry_s = _retry_after_s(response)
                if retry_s is None:  # without Retry-After: the rest of Binance's minute
                    retry_s = 60.0 - self._wall_ms() % 60_000 / 1000.0
                budget.too_many(retry_s)
                continue
            return self._decode(response)
        raise RateLimited(f"{self.venue}: HTTP 429 {MAX_TOO_MANY} times in a row", 60.0)

    def _decode(self, response: Response) -> Any:
        status = response.status
        if status == 418:
            retry_s = _retry_after_s(response)
            raise self.budget.banned(BAN_DEFAULT_S if retry_s is None else retry_s)
        if status >= 500:
            raise TransientError(f"{self.venue}: HTTP {status}")
        try:
            doc = orjson.loads(response.body) if response.body else {}
        except orjson.JSONDecodeError as exc:
            if status >= 400:
                raise VenueRejected(self.venue, status, "non-JSON error body") from exc
            raise VenueDataError(self.venue, "bad_json") from exc
        if status < 400:
            return doc
        code = doc.get("code", status) if type(doc) is dict else status
        msg = str(doc.get("msg", ""))[:200] if type(doc) is dict else ""
        if code in AUTH_CODES or status == 401:
            raise AuthError(self.venue, code, msg)
        if code == LISTEN_KEY_MISSING:
            raise ListenKeyGone(self.venue, code, msg)
        raise VenueRejected(self.venue, code, msg)
