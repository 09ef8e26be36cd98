"""Binance futures REST: HMAC-SHA256 signing, server-clock offset, weight back-off, error map.

Signed (USER_DATA) requests carry ``timestamp`` (the server's clock as we estimate it) and
``recvWindow``; ``signature = hex(HMAC_SHA256(secret, query_string + body))``; the API key goes in
the ``X-MBX-APIKEY`` header. listenKey calls (USER_STREAM) carry the key header only.

Error map (Binance's own codes):

* ``-1022`` bad signature, ``-2014``/``-2015`` bad or unauthorised key, HTTP 401 →
  :class:`AuthError`
* ``-1125`` listenKey does not exist → :class:`ListenKeyGone` (POST a new key)
* ``-1021`` timestamp outside recvWindow → :class:`TransientError` after re-syncing the clock
* HTTP 418 (IP ban) / 429 (too many requests) → :class:`RateLimited` with ``Retry-After``
* HTTP 5xx, transport failures → :class:`TransientError`; any other error → :class:`VenueRejected`

Before each request the client checks ``X-MBX-USED-WEIGHT-1M`` from the previous answer and waits
for the next minute window when it is near the 2400 limit; while a ban or 429 is in force it
refuses to call the venue at all (raising :class:`RateLimited`) so the driver backs off.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from connectors.binance.spec import VenueSpec
from connectors.errors import AuthError, TransientError, VenueDataError, VenueRejected
from connectors.http import HttpClient, Response

log = logging.getLogger(__name__)

WEIGHT_LIMIT_1M = 2400
WEIGHT_HEADROOM = 200
"""Stop sending when the used weight is this close to the limit (our heaviest call is < 50)."""
AUTH_CODES = frozenset({-1022, -2014, -2015})
LISTEN_KEY_MISSING = -1125
TIMESTAMP_OUTSIDE_WINDOW = -1021

Params = Mapping[str, str | int | float | bool]


class ListenKeyGone(VenueRejected):
    """``-1125``: the listenKey does not exist (expired or closed); POST a new one."""


class RateLimited(TransientError):  # noqa: N818 - Binance's own term; it is an error
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        http: HttpClient | None = None,
    ) -> None:
        self.spec = spec
        self._http = http or HttpClient(base_url or spec.rest_base, timeout_s=timeout_s)
        self._credentials = credentials
        self._recv_window_ms = recv_window_ms
        self._wall_ms = wall_ms
        self._sleep = sleep
        self.offset_ms = 0.0
        """Server clock minus ours, estimated at the midpoint of a ``/time`` round trip."""
        self.used_weight_1m = 0
        self._weight_seen_ms = 0.0
        self._blocked_until_ms = 0.0

    @property
    def venue(self) -> str:
        return self.spec.venue

    def server_now_ms(self) -> int:
        return int(self._wall_ms() + self.offset_ms)

    async def sync_time(self) -> int:
        """Measure the clock offset against the server's time; returns the server time."""
        sent = self._wall_ms()
        doc = await self.public("GET", self.spec.time_path)
        received = self._wall_ms()
        try:
            server = int(doc["serverTime"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VenueDataError(self.venue, "bad_server_time") from exc
        self.offset_ms = server - (sent + received) / 2.0
        return server

    # --- the three security types ------------------------------------------------------------

    async def public(self, method: str, path: str, params: Params | None = None) -> Any:
        return await self._call(method, path, query_string(params or {}), {})

    async def keyed(self, method: str, path: str, params: Params | None = None) -> Any:
        """USER_STREAM: API key header, no signature (listenKey endpoints)."""
        return await self._call(method, path, query_string(params or {}), self._key_header())

    async def signed(self, method: str, path: str, params: Params | None = None) -> Any:
        creds = self._require_credentials()
        query = query_string(
            {
                **(params or {}),
                "recvWindow": self._recv_window_ms,
                "timestamp": self.server_now_ms(),
            }
        )
        query = f"{query}&signature={sign(creds.secret, query)}"
        try:
            return await self._call(method, path, query, self._key_header())
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

    async def _call(self, method: str, path: str, query: str, headers: dict[str, str]) -> Any:
        await self._respect_limits()
        target = f"{path}?{query}" if query else path
        response = await self._http.request(method, target, headers=headers)
        self._note_weight(response)
        return self._decode(response)

    async def _respect_limits(self) -> None:
        now = self._wall_ms()
        if now < self._blocked_until_ms:
            wait_s = (self._blocked_until_ms - now) / 1000.0
            raise RateLimited(f"{self.venue}: rate limited for {wait_s:.0f} s", wait_s)
        # Weight is counted per wall-clock minute; near the limit, wait for the next window.
        same_window = int(now // 60_000) == int(self._weight_seen_ms // 60_000)
        if same_window and self.used_weight_1m >= WEIGHT_LIMIT_1M - WEIGHT_HEADROOM:
            wait_s = (60_000 - now % 60_000) / 1000.0
            log.warning("%s: REST weight %d near the limit; waiting %.1f s", self.venue,
                        self.used_weight_1m, wait_s)  # fmt: skip
            await self._sleep(wait_s)
            self.used_weight_1m = 0

    def _note_weight(self, response: Response) -> None:
        used = response.headers.get("x-mbx-used-weight-1m")
        if used is not None and used.isdigit():
            self.used_weight_1m = int(used)
            self._weight_seen_ms = self._wall_ms()

    def _decode(self, response: Response) -> Any:
        status = response.status
        if status in (418, 429):
            retry = response.headers.get("retry-after", "")
            retry_s = float(retry) if retry.isdigit() else 60.0
            self._blocked_until_ms = self._wall_ms() + retry_s * 1000.0
            raise RateLimited(f"{self.venue}: HTTP {status}, retry after {retry_s:g} s", retry_s)
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
