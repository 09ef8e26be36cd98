"""The batch decoders (each venue's hot-path kernel) and the plain per-frame decoders accept
exactly the same frames and items, with the same reasons, over the harness's mutated frames."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.binance.parse import parse_frame_into, parse_many
from connectors.errors import VenueDataError
from connectors.events import Event, MarkPrice, MarkRun
from connectors.sim import protocol as sim

from .mutate import mutant
from .targets import TARGETS

_SEED = 20_261_205
_frame_numbers = st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=6)


def _normal(events: list[Event]) -> list[object]:
    """Events with marks as (venue, symbol, mark, time): a run carries no index price."""
    out: list[object] = []
    for ev in events:
        marks = ev.marks() if isinstance(ev, MarkRun) else [ev]
        for m in marks:
            if isinstance(m, MarkPrice):
                out.append((m.venue, m.symbol, m.mark, m.event_ms))
            else:
                out.append(m)
    return out


@settings(max_examples=400)
@given(st.sampled_from(["binance-usdm", "binance-coinm"]), _frame_numbers)
def test_binance_batch_and_plain_decoders_agree_on_mutated_frames(
    venue: str, numbers: list[int]
) -> None:
    samples = TARGETS[venue].samples()
    frames: list[bytes | str] = [mutant(_SEED, venue, n, samples) for n in numbers]
    batch: list[Event] = []
    batch_errors = parse_many(frames, batch, venue)
    plain: list[Event] = []
    plain_errors: list[VenueDataError] = []
    for frame in frames:
        parse_frame_into(frame, venue, None, plain, plain_errors)
    assert _normal(batch) == _normal(plain)
    assert [e.reason for e in batch_errors] == [e.reason for e in plain_errors]


@settings(max_examples=400)
@given(_frame_numbers)
def test_sim_batch_and_plain_decoders_agree_on_mutated_frames(numbers: list[int]) -> None:
    samples = TARGETS["sim"].samples()
    frames: list[bytes | str] = [mutant(_SEED, "sim", n, samples) for n in numbers]
    batch: list[Event] = []
    batch_errors = sim.parse_many(frames, batch)
    plain: list[Event] = []
    plain_reasons: list[str] = []
    for frame in frames:
        try:
            plain += sim.parse_general(frame)
        except VenueDataError as exc:
            plain_reasons.append(exc.reason)
    assert batch == plain
    assert [e.reason for e in batch_errors] == plain_reasons
