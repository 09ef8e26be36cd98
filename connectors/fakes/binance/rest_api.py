"""The fake venue's REST API: Binance's security types, signature check, weights and errors.

Signed endpoints verify ``signature = hex(HMAC_SHA256(secret, query_without_signature + body))``
exactly as Binance does, and answer Binance's error bodies: ``-2015`` (401) for an unknown key,
``-1022`` (400) for a bad signature, ``-1021`` for a timestamp outside ``recvWindow``, ``-1125`` for
an unknown listenKey. Every answer carries ``X-MBX-USED-WEIGHT-1M``, the weight used by the
client's IP in the current minute; over the limit it answers 429, and bans an IP that keeps
sending with 418 (:mod:`connectors.fakes.binance.limits`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from connectors.binance.rest import sign
from connectors.binance.spec import VenueSpec
from connectors.fakes.binance import views
from connectors.fakes.binance.account import Accounts, Contract, FakeAccount
from connectors.fakes.binance.limits import Verdict, WeightLimits
from connectors.fakes.http import Reply, Request

LISTEN_KEY_VALIDITY_MS = 60 * 60 * 1000

Body = Any
Route = Callable[["RestContext", FakeAccount | None, dict[str, str]], Body]


@dataclass(slots=True)
class ListenKey:
    account: str
    expires_ms: int


@dataclass(slots=True)
class RestContext:
    """State the REST API shares with the websocket side of the fake."""

    spec: VenueSpec
    accounts: Accounts
    contracts: Mapping[str, Contract]
    marks: dict[str, float]
    now_ms: Callable[[], int]
    listen_keys: dict[str, ListenKey] = field(default_factory=dict)
    delay_s: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request, for tests."""
    answers: list[tuple[int, str, int]] = field(default_factory=list)
    """(venue ms, path, status) of every answer, for tests."""
    limits: WeightLimits = field(default_factory=WeightLimits)
    """Per-IP weight per minute, 429s and bans (``limits.max_used``: the highest minute)."""
    on_listen_key_closed: Callable[[str], None] = lambda key: None


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _listen_key_post(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
    assert acct is not None
    now = ctx.now_ms()
    for key, lk in ctx.listen_keys.items():
        if lk.account == acct.name:  # an active key is returned again and extended
            lk.expires_ms = now + LISTEN_KEY_VALIDITY_MS
            return {"listenKey": key}
    key = secrets.token_hex(32)
    ctx.listen_keys[key] = ListenKey(acct.name, now + LISTEN_KEY_VALIDITY_MS)
    return {"listenKey": key}


def _listen_key_put(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
    assert acct is not None
    lk = ctx.listen_keys.get(p.get("listenKey", ""))
    if lk is None or lk.account != acct.name:
        raise ApiError(400, -1125, "This listenKey does not exist.")
    lk.expires_ms = ctx.now_ms() + LISTEN_KEY_VALIDITY_MS
    return {"listenKey": p["listenKey"]}


def _listen_key_delete(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
    key = p.get("listenKey", "")
    if ctx.listen_keys.pop(key, None) is None:
        raise ApiError(400, -1125, "This listenKey does not exist.")
    ctx.on_listen_key_closed(key)
    return {}


def _premium_index(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
    now = ctx.now_ms()
    symbol = p.get("symbol")
    if symbol is not None:
        if symbol not in ctx.marks:
            raise ApiError(400, -1121, "Invalid symbol.")
        row = views.premium_index_row(symbol, ctx.marks[symbol], now)
        return [row] if ctx.spec.multi_assets_path is None else row  # COIN-M always a list
    return [views.premium_index_row(s, m, now) for s, m in ctx.marks.items()]


def _asset_index(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
    rows = views.asset_index_body(ctx.marks, ctx.now_ms())
    symbol = p.get("symbol")
    if symbol is None:
        return rows
    for row in rows:
        if row["symbol"] == symbol:
            return row
    raise ApiError(400, -1121, "Invalid symbol.")


def _signed(view: Callable[[FakeAccount, RestContext], Body]) -> Route:
    def route(ctx: RestContext, acct: FakeAccount | None, p: dict[str, str]) -> Body:
        assert acct is not None
        return view(acct, ctx)

    return route


def routes(spec: VenueSpec) -> dict[tuple[str, str], tuple[str, int, Route]]:
    """(method, path) → (security: public|keyed|signed, weight, handler)."""
    kind = spec.kind
    table: dict[tuple[str, str], tuple[str, int, Route]] = {
        ("GET", spec.time_path): ("public", 1, lambda c, a, p: {"serverTime": c.now_ms()}),
        ("GET", spec.exchange_info_path): (
            "public", 1,
            lambda c, a, p: views.exchange_info_body(c.contracts, kind),
        ),
        ("GET", spec.premium_index_path): ("public", 1, _premium_index),  # 10 for all symbols
        ("POST", spec.listen_key_path): ("keyed", 1, _listen_key_post),
        ("PUT", spec.listen_key_path): ("keyed", 1, _listen_key_put),
        ("DELETE", spec.listen_key_path): ("keyed", 1, _listen_key_delete),
        ("GET", spec.account_path): (
            "signed", 5, _signed(lambda a, c: views.account_body(a, kind, c.now_ms()))
        ),
        ("GET", spec.position_risk_path): (
            "signed", 5, _signed(lambda a, c: views.position_risk_body(a, kind))
        ),
        ("GET", spec.leverage_bracket_path): (
            "signed", 1, _signed(lambda a, c: views.brackets_body(a, kind))
        ),
        ("GET", spec.dual_side_path): (
            "signed", 30, _signed(lambda a, c: {"dualSidePosition": a.hedge})
        ),
    }  # fmt: skip
    if spec.asset_index_path is not None:
        table[("GET", spec.asset_index_path)] = ("public", 1, _asset_index)  # 10 for all
    if spec.account_config_path is not None:
        table[("GET", spec.account_config_path)] = (
            "signed",
            5,
            _signed(lambda a, c: views.account_config_body(a, c.now_ms())),
        )
    if spec.multi_assets_path is not None:
        table[("GET", spec.multi_assets_path)] = (
            "signed",
            30,
            _signed(lambda a, c: {"multiAssetsMargin": a.multi_assets}),
        )
    return table


def _authenticate(ctx: RestContext, req: Request, security: str) -> FakeAccount | None:
    if security == "public":
        return None
    acct = ctx.accounts.by_key.get(req.headers.get("x-mbx-apikey", ""))
    if acct is None:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    if security == "keyed":
        return acct
    parts = [kv for kv in req.query.split("&") if kv and not kv.startswith("signature=")]
    given = [kv[len("signature=") :] for kv in req.query.split("&") if kv.startswith("signature=")]
    if len(given) != 1:
        raise ApiError(
            400,
            -1102,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        )
    expected = sign(acct.secret, "&".join(parts) + req.body.decode("latin-1"))
    if not hmac.compare_digest(expected, given[0]):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    params = dict(parse_qsl(req.query))
    now = ctx.now_ms()
    try:
        ts = int(params["timestamp"])
        window = int(params.get("recvWindow", "5000"))
    except (KeyError, ValueError):
        raise ApiError(
            400,
            -1102,
            "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
        ) from None
    if ts > now + 1000 or now - ts > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return acct


ALL_SYMBOL_WEIGHT = 10
"""``premiumIndex`` and ``assetIndex`` without ``symbol`` weigh 10 (1 with one)."""


def _weight(ctx: RestContext, req: Request, entry: tuple[str, int, Route] | None) -> int:
    if entry is None:
        return 1
    heavy = (ctx.spec.premium_index_path, ctx.spec.asset_index_path)
    if req.path in heavy and "symbol=" not in req.query:
        return ALL_SYMBOL_WEIGHT
    return entry[1]


def _refused(verdict: Verdict, ip: str) -> Reply:
    headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used), "Retry-After": str(verdict.retry_after_s)}
    if verdict.status == 418:
        msg = (
            f"Way too many requests; IP({ip}) banned until {verdict.until_ms}. "
            "Please use the websocket for live updates to avoid bans."
        )
    else:
        msg = (
            f"Too many requests; current limit of IP({ip}) is 2400 requests per minute. "
            "Please use the websocket for live updates to avoid polling the API."
        )
    return Reply(verdict.status, orjson.dumps({"code": -1003, "msg": msg}), headers)


def make_handler(ctx: RestContext) -> Callable[[Request], Awaitable[Reply]]:
    table = routes(ctx.spec)

    async def handle(req: Request) -> Reply:
        ctx.calls.append((req.method, req.path))
        if ctx.delay_s:
            await asyncio.sleep(ctx.delay_s)
        entry = table.get((req.method, req.path))
        now = ctx.now_ms()
        verdict = ctx.limits.check(req.peer, _weight(ctx, req, entry), now)
        if verdict.status:
            ctx.answers.append((now, req.path, verdict.status))
            return _refused(verdict, req.peer)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
        try:
            if entry is None:
                raise ApiError(404, -5000, "Path not found")  # noqa: TRY301 - one error path
            acct = _authenticate(ctx, req, entry[0])
            body = entry[2](ctx, acct, dict(parse_qsl(req.query)))
            ctx.answers.append((now, req.path, 200))
            return Reply(200, orjson.dumps(body), headers)
        except ApiError as exc:
            ctx.answers.append((now, req.path, exc.status))
            return Reply(exc.status, orjson.dumps({"code": exc.code, "msg": exc.msg}), headers)

    return handle
