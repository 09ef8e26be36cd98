"""Every instrument's book, by ``(venue, symbol)``, and per venue the books nobody holds."""

from __future__ import annotations

from collections.abc import ItemsView

from monitor.store.book import InstrumentBook

InstrumentKey = tuple[str, str]


class Books:
    """The store's instrument books. A book is made on first sight of its instrument and kept.

    Each venue's *idle* map (symbol → book nobody holds) is shared with its books, which keep
    themselves in or out of it (:class:`~monitor.store.book.InstrumentBook`): recording a
    venue's idle marks is then one lookup per mark.
    """

    __slots__ = ("_by_key", "_by_venue", "_idle")

    def __init__(self) -> None:
        self._by_key: dict[InstrumentKey, InstrumentBook] = {}
        self._by_venue: dict[str, dict[str, InstrumentBook]] = {}  # venue -> symbol -> book
        self._idle: dict[str, dict[str, InstrumentBook]] = {}  # venue -> symbol -> idle book

    def get(self, key: InstrumentKey) -> InstrumentBook | None:
        return self._by_key.get(key)

    def book(self, venue: str, symbol: str) -> InstrumentBook:
        """The instrument's book, made (idle) on first sight."""
        book = self._by_key.get((venue, symbol))
        if book is None:
            idle = self._idle.setdefault(venue, {})
            book = self._by_key[(venue, symbol)] = InstrumentBook(venue, symbol, idle)
            self._by_venue.setdefault(venue, {})[symbol] = book
        return book

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
