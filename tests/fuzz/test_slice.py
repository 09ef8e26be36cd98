"""A seeded slice of the fuzz run, in ``make test``: 20,000 mutated frames per venue through
parse → store → engine → alert encode must find nothing (``make fuzz`` runs a million)."""

from __future__ import annotations

import pytest

from connectors.events import LeverageUpdate, MarkPrice, PositionSnapshot
from rules.types import Side

from .checks import violations
from .mutate import mutant
from .run import render, run
from .targets import T0, TARGETS

FRAMES = 20_000


@pytest.mark.parametrize("venue", sorted(TARGETS))
def test_a_seeded_slice_finds_no_crash_no_bad_state_and_no_invalid_item(venue: str) -> None:
    report = run(TARGETS[venue], FRAMES, seed=20_261_205)
    summary = render(report, 1.0)
    assert report.frames == FRAMES
    assert report.crash_count("parse") == 0, summary
    assert report.invalid_count() == 0, summary
    # Downstream of the parser (store, engine, rules, alert encode, read-back): nothing either.
    assert not report.crashes, summary
    assert report.bad_state_count() == 0, summary
    # The slice is worth its time only if it reaches the engine and the parser's refusals.
    assert report.accepted > FRAMES // 10, summary
    assert sum(report.rejected.values()) > FRAMES // 4, summary


def test_frames_are_reproducible_from_seed_venue_and_number() -> None:
    samples = TARGETS["sim"].samples()
    assert [mutant(7, "sim", n, samples) for n in range(50)] == [
        mutant(7, "sim", n, samples) for n in range(50)
    ]
    assert mutant(7, "sim", 3, samples) != mutant(8, "sim", 3, samples) or mutant(
        7, "sim", 4, samples
    ) != mutant(8, "sim", 4, samples)


@pytest.mark.parametrize(
    ("event", "rule"),
    [
        (MarkPrice("sim", "", 1.0, T0), "mark.symbol"),
        (MarkPrice("sim", "X", 1.7e308, T0), "mark.price"),
        (MarkPrice("sim", "X", 5e-324, T0), "mark.price"),
        (MarkPrice("sim", "X", 1.0, 10**30), "mark.event_ms"),
        (MarkPrice("sim", "X", 1.0, -1), "mark.event_ms"),
        (LeverageUpdate("sim", "a", "X", 0.0, T0), "leverage.value"),
        (PositionSnapshot("sim", "a", "X", Side.BOTH, 1.0, -5.0, T0), "position.entry"),
        (PositionSnapshot("sim", "a", "X", Side.BOTH, 1.0, 0.0, T0), "position.entry"),
        (PositionSnapshot("sim", "a", "X", Side.BOTH, 5e-324, 1.0, T0), "position.qty"),
    ],
)
def test_the_checker_names_what_an_event_breaks(event: object, rule: str) -> None:
    assert rule in list(violations(event))  # type: ignore[arg-type]


def test_the_checker_passes_a_valid_event() -> None:
    assert list(violations(MarkPrice("sim", "BTC-PERP", 60_000.5, T0, 60_001.0))) == []
