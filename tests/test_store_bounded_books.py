"""Marks of symbols no venue described and nobody holds cannot grow the store without bound
(issue #11: 5.4 KB per hostile symbol, 1.1 GB after 200,000)."""

from __future__ import annotations

from store_support import BTC_2024, VENUE, apply_all, linear, mark, position, table

from connectors.events import BalanceUpdate, MarkPrice
from monitor.store import Store
from monitor.store.books import MAX_BARE_BOOKS


def test_a_flood_of_undescribed_symbols_keeps_at_most_the_bound_and_every_real_book() -> None:
    store = Store()
    for ev in (
        linear("BTCUSDT"),
        table("BTCUSDT", BTC_2024),
        linear("ETHUSDT"),  # described, held by nobody: a venue's listing, kept
        mark("BTCUSDT", 30_000.0),
        BalanceUpdate(VENUE, "main", "USDT", 600.0, 0),
        position("main", "BTCUSDT", 1.0, 30_000.0),
    ):
        apply_all(store, ev, 1)
    before = store.figures((VENUE, "main"))
    flood = [MarkPrice(VENUE, f"JUNK{i}", 1.0 + i, 1) for i in range(20 * MAX_BARE_BOOKS)]
    for k in range(0, len(flood), 500):
        apply_all(store, flood[k : k + 500], 2)
    keys = set(store.instruments())
    assert {(VENUE, "BTCUSDT"), (VENUE, "ETHUSDT")} <= keys
    assert len(keys) <= MAX_BARE_BOOKS + 2
    # The newest junk is what is kept; the held book's figures did not move.
    assert (VENUE, f"JUNK{len(flood) - 1}") in keys
    assert store.figures((VENUE, "main")) == before
    # An evicted symbol that turns out real comes back with its next mark.
    apply_all(store, mark("JUNK0", 7.0), 3)
    book = store.book((VENUE, "JUNK0"))
    assert book is not None and book.mark == 7.0
