"""Every instrument's book, by ``(venue, symbol)``, and per venue the books nobody holds."""

from __future__ import annotations

from collections.abc import ItemsView

from monitor.store.book import InstrumentBook

InstrumentKey = tuple[str, str]

MAX_BARE_BOOKS = 1024
"""Per venue, books made by a mark alone (no instrument facts, no tier table, no leg) that are
kept. A venue describes every instrument it lists (its snapshot's ``Instrument`` events), so a
mark of an undescribed symbol is a newly listed one or garbage: a hostile stream of fresh
symbols cost 5.4 KB each, 1.1 GB after 200,000 (issue #11). Past the bound the oldest bare idle
book is dropped; its instrument, if real, is made again by its next mark or description."""


class Books:
    """The store's instrument books. A book is made on first sight of its instrument and kept.

    Each venue's *idle* map (symbol → book nobody holds) is shared with its books, which keep
    themselves in or out of it (:class:`~monitor.store.book.InstrumentBook`): recording a
    venue's idle marks is then one lookup per mark.
    """

    __slots__ = ("_bare", "_by_key", "_by_venue", "_idle", "evicted")

    def __init__(self) -> None:
        self._by_key: dict[InstrumentKey, InstrumentBook] = {}
        self._by_venue: dict[str, dict[str, InstrumentBook]] = {}  # venue -> symbol -> book
        self._idle: dict[str, dict[str, InstrumentBook]] = {}  # venue -> symbol -> idle book
        # venue -> symbols whose book was bare when made, oldest first (an ordered set).
        self._bare: dict[str, dict[str, None]] = {}
        self.evicted = 0

    def get(self, key: InstrumentKey) -> InstrumentBook | None:
        return self._by_key.get(key)

    def book(self, venue: str, symbol: str) -> InstrumentBook:
        """The instrument's book, made (idle) on first sight."""
        book = self._by_key.get((venue, symbol))
        if book is None:
            idle = self._idle.setdefault(venue, {})
            book = self._by_key[(venue, symbol)] = InstrumentBook(venue, symbol, idle)
            self._by_venue.setdefault(venue, {})[symbol] = book
            bare = self._bare.setdefault(venue, {})
            bare[symbol] = None
            if len(bare) > MAX_BARE_BOOKS:
                self._evict_bare(venue, bare)
        return book

    def _evict_bare(self, venue: str, bare: dict[str, None]) -> None:
        """Drop the oldest bare books until the bound holds; a symbol that gained facts or legs
        since it was made just leaves the candidates. The newest (the caller's) is never the
        oldest: O(1) per book made, however long a flood of fresh symbols lasts."""
        by_venue = self._by_venue[venue]
        idle = self._idle[venue]
        while len(bare) > MAX_BARE_BOOKS:
            symbol = next(iter(bare))
            del bare[symbol]
            book = by_venue.get(symbol)
            if book is None or not _is_bare(book):
                continue  # described or held now: no longer a candidate
            del self._by_key[(venue, symbol)]
            del by_venue[symbol]
            idle.pop(symbol, None)  # a bare book is idle: it holds no leg
            self.evicted += 1

    def of_venue(self, venue: str) -> dict[str, InstrumentBook] | None:
        """Symbol → book of every instrument of ``venue`` seen so far (do not mutate)."""
        return self._by_venue.get(venue)

    def idle(self, venue: str) -> dict[str, InstrumentBook] | None:
        """Symbol → book of ``venue``'s instruments nobody holds (do not mutate)."""
        return self._idle.get(venue)

    def idle_maps(self) -> dict[str, dict[str, InstrumentBook]]:
        """Venue → :meth:`idle` map, live (for the hot loop over a feed's marks; do not
        mutate)."""
        return self._idle

    def by_key(self) -> dict[InstrumentKey, InstrumentBook]:
        """``(venue, symbol)`` → book, live (for the hot loops over marks; do not mutate)."""
        return self._by_key

    def holds(self, key: InstrumentKey) -> bool:
        """Whether any leg (active or held) sits on the instrument: only then does its mark
        move an account, and only then must a repeated mark be screened before the next."""
        book = self._by_key.get(key)
        return book is not None and (book.n > 0 or bool(book.held))

    def items(self) -> ItemsView[InstrumentKey, InstrumentBook]:
        return self._by_key.items()

    def venues(self) -> list[str]:
        return list(self._idle)


def _is_bare(book: InstrumentBook) -> bool:
    """Made by marks alone: the venue never described it and no account holds it."""
    return (
        book.kind is None
        and book.model is None
        and book.contract_size is None
        and book.n == 0
        and not book.held
    )
