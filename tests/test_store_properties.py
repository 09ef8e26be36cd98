"""Property tests: the incremental store equals a from-scratch recomputation after EVERY event.

An independent reference model (plain dicts, written here without the store's code) follows the
same random event sequence; after each event:

* every leg's figures in the store are bit-identical to ``rules.account.position_figures`` of the
  reference leg;
* the store's account sums are within its proven bound (``Store.error_bound``) of
  ``rules.account.account_figures`` of the reference account (which uses ``math.fsum``), and that
  bound never exceeds ``2⁻³⁶ × gross notional``, whatever the history.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from store_support import BTC_2024, OKX_ETH, apply_all

import monitor.store.accounts
import monitor.store.book
from connectors.events import (
    AccountSnapshot,
    BalanceUpdate,
    Event,
    Instrument,
    LeverageUpdate,
    MarkPrice,
    PositionFill,
    PositionSnapshot,
    TierTableUpdate,
)
from monitor.store import DistanceThreshold, QuietBand, Store, kernels
from monitor.store.book import InstrumentBook, RowDeltas
from rules.account import AccountInput, PositionInput, account_figures, position_figures
from rules.imf_mf import ImfMfModel
from rules.model import MarginModel
from rules.size_linear import SizeLinearModel
from rules.types import ContractKind, MarginMode, Side

V = "venue"
INSTRUMENTS: dict[str, tuple[ContractKind, float, MarginModel]] = {
    "BTC": (ContractKind.LINEAR, 1.0, BTC_2024),
    "ETH": (ContractKind.LINEAR, 0.1, OKX_ETH),
    "INV": (ContractKind.INVERSE, 100.0, SizeLinearModel(0.005, 0.01, 1e-6)),
    "DYDX": (ContractKind.LINEAR, 1.0, ImfMfModel(imf=0.05, mf=0.6)),
}
# Marks chosen so 1–40 contracts cross several BTC brackets (50k, 600k, 3M) and ETH floors.
PRICE_RANGE = {
    "BTC": (5_000.0, 120_000.0),
    "ETH": (500.0, 40_000.0),
    "INV": (10_000.0, 90_000.0),
    "DYDX": (1_000.0, 80_000.0),
}
ACCOUNTS = ("a", "b", "c")
SIDES = (Side.BOTH, Side.LONG, Side.SHORT)


@dataclass
class RefLeg:
    qty: float
    entry: float
    mode: MarginMode
    leverage: float | None
    iso: float | None


@dataclass
class RefAccount:
    balances: dict[str, float] = field(default_factory=dict)
    legs: dict[tuple[str, Side], RefLeg] = field(default_factory=dict)
    leverage: dict[str, float] = field(default_factory=dict)


class Reference:
    """The book as plain dicts, updated by the rules stated in the issue (not the store's code)."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.accounts: dict[str, RefAccount] = {}

    def apply(self, ev: Event) -> None:
        if isinstance(ev, MarkPrice):
            self.marks[ev.symbol] = ev.mark
            return
        account_events = (
            BalanceUpdate,
            LeverageUpdate,
            PositionSnapshot,
            AccountSnapshot,
            PositionFill,
        )
        if not isinstance(ev, account_events):
            return
        acc = self.accounts.setdefault(ev.account, RefAccount())
        if isinstance(ev, BalanceUpdate):
            acc.balances[ev.asset] = ev.wallet_balance
        elif isinstance(ev, LeverageUpdate):
            acc.leverage[ev.symbol] = ev.leverage
            for (sym, _), leg in acc.legs.items():
                if sym == ev.symbol:
                    leg.leverage = ev.leverage
        elif isinstance(ev, PositionSnapshot):
            self._snapshot(acc, ev)
        elif isinstance(ev, AccountSnapshot):
            acc.balances = dict(ev.balances)
            acc.legs.clear()
            for p in ev.positions:
                self._snapshot(acc, p)
        elif isinstance(ev, PositionFill):
            self._fill(acc, ev)

    @staticmethod
    def _snapshot(acc: RefAccount, p: PositionSnapshot) -> None:
        if p.leverage is not None:
            acc.leverage[p.symbol] = p.leverage
        acc.legs.pop((p.symbol, p.side), None)
        if p.qty != 0.0:
            lev = p.leverage if p.leverage is not None else acc.leverage.get(p.symbol)
            acc.legs[(p.symbol, p.side)] = RefLeg(
                p.qty, p.entry_price, p.margin_mode, lev, p.isolated_margin
            )

    @staticmethod
    def _fill(acc: RefAccount, f: PositionFill) -> None:
        key = (f.symbol, f.side)
        leg = acc.legs.get(key)
        if leg is None:
            lev = acc.leverage.get(f.symbol)
            acc.legs[key] = RefLeg(f.qty_delta, f.price, MarginMode.CROSS, lev, None)
            return
        q0, e0, q1 = leg.qty, leg.entry, leg.qty + f.qty_delta
        if abs(q1) <= 1e-12 * max(abs(q0), abs(f.qty_delta)):
            del acc.legs[key]
        elif q0 * f.qty_delta > 0:  # increase: weighted average entry
            if INSTRUMENTS[f.symbol][0] is ContractKind.INVERSE:
                leg.entry = q1 / (q0 / e0 + f.qty_delta / f.price)
            else:
                leg.entry = (q0 * e0 + f.qty_delta * f.price) / q1
            leg.qty = q1
        elif q0 * q1 > 0:  # reduce
            leg.qty = q1
        else:  # flip
            leg.qty, leg.entry = q1, f.price

    def inputs(self, name: str) -> Iterator[tuple[tuple[str, Side], PositionInput]]:
        for (sym, side), leg in self.accounts[name].legs.items():
            kind, cs, model = INSTRUMENTS[sym]
            yield (
                (sym, side),
                PositionInput(
                    sym,
                    side,
                    leg.qty,
                    leg.entry,
                    self.marks[sym],
                    kind,
                    cs,
                    model,
                    leg.mode,
                    leg.leverage,
                    leg.iso,
                ),
            )

    def account_input(self, name: str) -> AccountInput:
        balances = self.accounts[name].balances
        positions = tuple(p for _, p in self.inputs(name))
        # Single-asset mode: every instrument settles in USDT, so with a cross position only the
        # USDT balance backs it (a USDC balance is another pool); without one, every balance
        # counts (this venue has no default margin asset).
        cross = any(p.margin_mode is MarginMode.CROSS for p in positions)
        return AccountInput(V, dict(balances), positions, margin_asset="USDT" if cross else None)


def _setup() -> list[Event]:
    events: list[Event] = []
    for sym, (kind, cs, model) in INSTRUMENTS.items():
        lo, hi = PRICE_RANGE[sym]
        events += [
            Instrument(V, sym, kind, cs, "USDT"),
            TierTableUpdate(V, sym, model),
            MarkPrice(V, sym, math.sqrt(lo * hi), 0),
        ]
    return events


symbols = st.sampled_from(sorted(INSTRUMENTS))
accounts = st.sampled_from(ACCOUNTS)
sides = st.sampled_from(SIDES)
qtys = st.floats(0.5, 40.0).map(lambda q: round(q, 3))
signed_qtys = st.builds(lambda q, neg: -q if neg else q, qtys, st.booleans())


@st.composite
def prices(draw: st.DrawFn, sym: str) -> float:
    lo, hi = PRICE_RANGE[sym]
    return round(draw(st.floats(lo, hi)), 2)


@st.composite
def mark_events(draw: st.DrawFn) -> MarkPrice:
    sym = draw(symbols)
    return MarkPrice(V, sym, draw(prices(sym)), 1)


@st.composite
def snapshot_events(draw: st.DrawFn, account: str | None = None) -> PositionSnapshot:
    sym = draw(symbols)
    iso = draw(st.integers(0, 5)) == 0
    return PositionSnapshot(
        V,
        account or draw(accounts),
        sym,
        draw(sides),
        draw(st.one_of(st.just(0.0), signed_qtys)),
        draw(prices(sym)),
        1,
        MarginMode.ISOLATED if iso else MarginMode.CROSS,
        draw(st.one_of(st.none(), st.sampled_from([5.0, 20.0]))),
        100.0 if iso else None,
    )


@st.composite
def fill_events(draw: st.DrawFn) -> PositionFill:
    sym = draw(symbols)
    return PositionFill(
        V, draw(accounts), sym, draw(sides), draw(signed_qtys), draw(prices(sym)), 1
    )


@st.composite
def account_snapshots(draw: st.DrawFn) -> AccountSnapshot:
    name = draw(accounts)
    legs = draw(st.lists(snapshot_events(name), max_size=5))
    unique = {(p.symbol, p.side): p for p in legs if p.qty != 0.0}
    bal = {"USDT": draw(st.floats(0.0, 1e6))}
    return AccountSnapshot(V, name, bal, tuple(unique.values()), 1)


events = st.one_of(
    st.lists(mark_events(), min_size=2, max_size=5),  # a frame of marks, batched
    mark_events(),
    mark_events(),
    mark_events(),
    snapshot_events(),
    fill_events(),
    fill_events(),
    st.builds(
        BalanceUpdate,
        st.just(V),
        accounts,
        st.sampled_from(["USDT", "USDC"]),
        st.floats(-1e4, 1e6),
        st.just(1),
    ),
    st.builds(
        LeverageUpdate,
        st.just(V),
        accounts,
        symbols,
        st.sampled_from([2.0, 10.0, 50.0]),
        st.just(1),
    ),
    account_snapshots(),
)


def check_equal(store: Store, ref: Reference) -> None:
    books = store._books  # (internals) each book keeps itself in its venue's idle map
    for venue in books.venues():
        ofv = [b for (v, _), b in books.items() if v == venue]
        assert books.idle(venue) == {b.symbol: b for b in ofv if b.n == 0 and not b.held}
    for name in ref.accounts:
        key = (V, name)
        by_key = {(leg.symbol, leg.side): leg for leg in store.legs(key)}
        assert set(by_key) == set(ref.accounts[name].legs)
        for k, p in ref.inputs(name):
            leg = by_key[k]
            assert (leg.qty, leg.entry) == (p.qty, p.entry_price)
            assert store.leg_figures(leg) == position_figures(p)  # bit-identical per leg
        scratch = account_figures(ref.account_input(name))
        fig = store.figures(key)
        bound = fig.error_bound
        assert bound <= 2.0**-36 * fig.gross_notional * (1 + 1e-6) + 1e-300 or bound == 0.0
        assert abs(fig.maintenance_margin - scratch.maintenance_margin) <= bound
        assert abs(fig.initial_margin - scratch.initial_margin) <= bound
        assert abs(fig.equity - scratch.equity) <= bound + 2.0**-52 * abs(scratch.equity)
        if scratch.maintenance_margin == 0.0:
            assert fig.maintenance_margin == 0.0 and math.isinf(fig.health)


def run_sequence(seq: list[Event | list[MarkPrice]]) -> None:
    """Apply each event (a list is a frame of marks, applied as a batch through the store's
    route: split at held repeats); check after each."""
    store, ref = Store(), Reference()
    for ev in [*_setup(), *seq]:
        if isinstance(ev, list):
            apply_all(store, ev, 0)
            for m in ev:
                ref.apply(m)
        else:
            store.apply(ev, 0)
            ref.apply(ev)
        check_equal(store, ref)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(events, min_size=1, max_size=120))
def test_store_equals_scratch_after_every_event(seq: list[Event | list[MarkPrice]]) -> None:
    run_sequence(seq)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seq=st.lists(events, min_size=1, max_size=120))
def test_same_with_tiny_resum_thresholds(
    seq: list[Event | list[MarkPrice]], monkeypatch_resum: None
) -> None:
    # Forces the soft queue and hard re-sum paths to run constantly.
    run_sequence(seq)


@pytest.mark.parametrize(
    ("module", "name", "value"),
    [
        # Every frame of marks takes the fused multi-instrument pass (monitor.store.kernels).
        (kernels, "MIN_FUSED_ROWS", 0),
        # Small books tick in python (monitor.store.book.SMALL_ROWS): here none do, or only books of
        # up to 2 rows, so a frame mixes python ticks with the numpy batch.
        (monitor.store.book, "SMALL_ROWS", 0),
        (monitor.store.book, "SMALL_ROWS", 2),
    ],
    ids=["every_frame_fused", "numpy_ticks", "mixed_ticks"],
)
@settings(
    max_examples=70,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seq=st.lists(events, min_size=1, max_size=120))
def test_same_on_every_tick_route(
    seq: list[Event | list[MarkPrice]],
    module: object,
    name: str,
    value: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as m:
        m.setattr(module, name, value)
        run_sequence(seq)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(events, min_size=1, max_size=80))
def test_python_and_numpy_ticks_give_the_same_bits(seq: list[Event | list[MarkPrice]]) -> None:
    """The python tick of a small book does numpy's operations in numpy's order: every leg's
    figures are the same bits whichever path ran (the account sums may round differently:
    the two paths book their error bound differently, so re-sum at different times)."""
    stores = Store(), Store()
    old = monitor.store.book.SMALL_ROWS
    try:
        for ev in [*_setup(), *seq]:
            for store, small_rows in zip(stores, (old, 0), strict=True):
                monitor.store.book.SMALL_ROWS = small_rows
                apply_all(store, ev, 0)
            py, np_ = stores
            for key in py.instruments():
                book, other = py.book(key), np_.book(key)
                assert book is not None and other is not None
                assert book.fig[:, : book.n].tolist() == other.fig[:, : other.n].tolist()
    finally:
        monitor.store.book.SMALL_ROWS = old


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=st.lists(events, min_size=1, max_size=60), moves=st.lists(st.floats(0.5, 2.0)))
def test_the_three_tick_kernels_agree_bit_for_bit(
    seq: list[Event | list[MarkPrice]], moves: list[float]
) -> None:
    """monitor.store.kernels: the python tick (tick_small), the numpy tick (tick_book) and,
    for books it may take, the fused frame pass (FrameCache) give the same figures, deltas and
    error weights, bit for bit — book by book, and with every fusable book in one frame."""
    store = Store()
    for ev in [*_setup(), *seq]:
        apply_all(store, ev, 0)
    ticked: list[InstrumentBook] = []
    for key in store.instruments():
        book = store.book(key)
        assert book is not None
        if book.n and book.mark is not None:
            ticked.append(book)
    for move in moves[:4]:
        marks = [book.mark * move for book in ticked if book.mark is not None]
        fusable = [(b, m) for b, m in zip(ticked, marks, strict=True) if b.fusable()]
        frame_books = [copy.deepcopy(b) for b, _ in fusable]
        small_rows: dict[int, list[RowDeltas]] = {}
        for book, mark in zip(ticked, marks, strict=True):
            twin = copy.deepcopy(book)
            rows = kernels.tick_small(book, mark)
            deltas = kernels.tick_book(twin, mark)
            assert rows is not None and deltas is not None
            assert [r[0] for r in rows] == deltas.accounts.tolist()
            assert [list(r[1:6]) for r in rows] == deltas.block[:5].T.tolist()
            k = deltas.max_rows_per_account
            assert [r[6] for r in rows] == [r[5] * (k + 1.0) for r in rows]
            assert book.fig[:, : book.n].tolist() == twin.fig[:, : twin.n].tolist()
            small_rows[id(book)] = rows
            if book.fusable():
                alone = copy.deepcopy(twin)  # after the tick: tick the frame pass from it
                ref = copy.deepcopy(twin)
                fd, fw = kernels.FrameCache().tick([alone], [mark])
                nd = kernels.tick_book(ref, mark)
                assert nd is not None
                assert fd.tolist() == nd.block[:4].tolist()
                assert fw.tolist() == nd.block[4].tolist()
                assert alone.fig[:, : alone.n].tolist() == ref.fig[:, : ref.n].tolist()
        if frame_books:  # every fusable book in one fused pass
            frame = kernels.FrameCache()
            fd, fw = frame.tick(frame_books, [m for _, m in fusable])
            done = [b for b, _ in fusable]  # ticked to the same marks above (tick_small)
            rows = [r for b in done for r in small_rows[id(b)]]
            assert frame.account.tolist() == [r[0] for r in rows]
            assert fd.T.tolist() == [list(r[1:5]) for r in rows]
            assert fw.tolist() == [r[5] for r in rows]
            for fb, b in zip(frame_books, done, strict=True):
                assert fb.fig[:, : fb.n].tolist() == b.fig[:, : b.n].tolist()


@pytest.fixture
def monkeypatch_resum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor.store.accounts, "SOFT", 4.0)
    monkeypatch.setattr(monitor.store.accounts, "HARD", 8.0)


def test_long_random_walk_bound_stays_bounded() -> None:
    """20,000 ticks on hedged accounts: the bound holds every step and never grows past 2⁻³⁶·G."""
    import random

    rng = random.Random(7)
    store, ref = Store(), Reference()
    seq: list[Event] = []
    for name in ACCOUNTS:
        seq.append(BalanceUpdate(V, name, "USDT", 50_000.0, 0))
        seq.append(PositionSnapshot(V, name, "BTC", Side.LONG, 12.0, 60_000.0, 0))
        seq.append(PositionSnapshot(V, name, "BTC", Side.SHORT, -11.5, 61_000.0, 0))
        seq.append(PositionSnapshot(V, name, "ETH", Side.BOTH, -300.0, 1_900.0, 0))
    for ev in _setup() + seq:
        store.apply(ev, 0)
        ref.apply(ev)
    price = {"BTC": 60_000.0, "ETH": 2_000.0}
    worst = 0.0
    for step in range(20_000):
        sym = "BTC" if step % 3 else "ETH"
        price[sym] *= math.exp(rng.gauss(0.0, 0.01))
        ev = MarkPrice(V, sym, price[sym], step)
        store.apply(ev, 0)
        ref.apply(ev)
        if step % 97 == 0 or step > 19_900:
            check_equal(store, ref)
        for name in ACCOUNTS:
            fig = store.figures((V, name))
            worst = max(worst, fig.error_bound / fig.gross_notional)
    assert worst <= 2.0**-36


moves = st.tuples(st.sampled_from(["BTC", "ETH"]), st.floats(-0.01, 0.01))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seq=st.lists(st.lists(moves, min_size=1, max_size=3), min_size=1, max_size=150),
    bands=st.lists(
        st.tuples(st.floats(0.5, 3.0), st.floats(0.0, 3.0), st.floats(0.0, 0.2)),
        min_size=3,
        max_size=3,
    ),
    small_rows=st.sampled_from([monitor.store.book.SMALL_ROWS, 0]),
)
def test_budget_never_hides_an_account_that_left_its_band(
    seq: list[list[tuple[str, float]]], bands: list[tuple[float, float, float]], small_rows: int
) -> None:
    """The lazy budget (monitor.store.accounts) skips the screen for most ticks: every account it
    skips must really be quiet — inside its band and not near its distance threshold. Books
    tick in python (small) or numpy (``small_rows`` 0); both keep the budget."""
    old = monitor.store.book.SMALL_ROWS
    monitor.store.book.SMALL_ROWS = small_rows
    try:
        _budget_never_hides(seq, bands)
    finally:
        monitor.store.book.SMALL_ROWS = old


def _budget_never_hides(
    seq: list[list[tuple[str, float]]], bands: list[tuple[float, float, float]]
) -> None:
    store = Store()
    for ev in _setup():
        store.apply(ev, 0)
    for n, name in enumerate(ACCOUNTS):
        store.apply(BalanceUpdate(V, name, "USDT", 20_000.0 * (n + 1), 0), 0)
        store.apply(PositionSnapshot(V, name, "BTC", Side.BOTH, 3.0 - 2 * n, 60_000.0, 0), 0)
        store.apply(PositionSnapshot(V, name, "ETH", Side.LONG, 20.0, 6_000.0, 0), 0)
    for name, (lo, width, dist) in zip(ACCOUNTS, bands, strict=True):
        i = store.index_of((V, name))
        assert i is not None
        h = store.health(i)
        store.apply(QuietBand(i, h / (1.0 + lo * 0.01), h * (1.0 + width * 0.01)), 0)
        store.apply(DistanceThreshold(i, dist or None), 0)
    price = {"BTC": math.sqrt(5_000.0 * 120_000.0), "ETH": math.sqrt(500.0 * 40_000.0)}
    skipped = 0
    for frame in seq:
        marks = []
        for sym, rel in frame:
            price[sym] *= 1.0 + rel
            marks.append(MarkPrice(V, sym, price[sym], 1))
        # Each part the store applies is checked before the next moves the figures again.
        changed = store.apply(marks if len(marks) > 1 else marks[0], 0)
        while True:
            cands = set(changed.candidates.tolist())
            for i in changed.accounts.tolist():
                if store.complete(i) and i not in cands:
                    skipped += 1
                    assert not store.is_candidate(i), (i, store.health(i))
            if changed.rest is None:
                break
            changed = store.apply(changed.rest, 0)
