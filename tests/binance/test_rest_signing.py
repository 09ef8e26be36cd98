"""Binance request signing: the documented HMAC-SHA256 vector and the query it is taken over."""

from __future__ import annotations

from connectors.binance.rest import Credentials, query_string, sign

DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_QUERY = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_documented_vector() -> None:
    assert sign(DOC_SECRET, DOC_QUERY) == DOC_SIGNATURE


def test_query_string_keeps_order_and_matches_the_documented_one() -> None:
    params: dict[str, str | int | float] = {
        "symbol": "LTCBTC",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": 1,
        "price": 0.1,
        "recvWindow": 5000,
        "timestamp": 1499827319559,
    }
    assert query_string(params) == DOC_QUERY
    assert sign(DOC_SECRET, query_string(params)) == DOC_SIGNATURE


def test_query_plus_body_is_signed_as_one_string() -> None:
    # Binance's totalParams: the query string directly followed by the body.
    query, body = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC",
        ("quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"),
    )
    assert (
        sign(DOC_SECRET, query + body)
        == "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"
    )


def test_booleans_are_lower_case_words() -> None:
    assert query_string({"multiAssetsMargin": True, "x": False}) == "multiAssetsMargin=true&x=false"


def test_credentials_never_print_the_secret() -> None:
    creds = Credentials("key-123", DOC_SECRET)
    assert DOC_SECRET not in repr(creds)
    assert "key-123" not in repr(creds)
