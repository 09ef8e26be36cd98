"""Feed staleness: pure decisions on whether the monitor is blind for an account.

An account's inputs are the private stream (any event or snapshot for the account) and the mark
price of every instrument it holds. An input is *stale* when it has not updated for longer than
its limit (``cfg.account_stale_ms`` / ``cfg.mark_stale_ms``), or when the driver reports its feed
down. The account is *blind* while any input is stale: one ``feed_stale`` alert when it becomes
blind (naming every stale input), one ``feed_recovered`` alert when every input is fresh again
(e.g. after the driver's resync). Inputs going stale while already blind add no alert.

A feed the driver reports down makes its inputs stale only after ``cfg.feed_down_grace_ms``
(``down_since_ms`` says since when; a reconnect is not an outage). An account whose figures
cannot be computed at all — a held leg without instrument facts, margin model or mark, or
collateral that cannot be valued — is blind too: its :class:`MissingInput` entries (kinds
``instrument``/``model``/``mark``/``collateral``) count as stale once the account has been
incomplete for ``cfg.inputs_missing_ms``.

Input names are ``"private"``, ``"mark:<symbol>"``, ``"instrument:<symbol>"``,
``"model:<symbol>"`` and ``"collateral"``; ``"mark"`` in ``down`` means every mark.
Alert times and ids derive from the inputs' own update times, never from ``now_ms``: a
``feed_stale`` alert's event time is the moment the first input crossed its limit
(``last + limit``), a ``feed_recovered`` alert's is the newest update of the inputs that healed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from rules.alert_config import AlertConfig
from rules.alert_doc import Alert, Figures, JsonObject, JsonValue, Level
from rules.alert_kinds import transition_alert

PRIVATE: Final = "private"
MARK: Final = "mark"


MissingKind = Literal["instrument", "model", "mark", "collateral"]


@dataclass(frozen=True, slots=True)
class MissingInput:
    """An input the account's figures cannot be computed without (the store names them)."""

    kind: MissingKind
    symbol: str | None
    reason: str

    @property
    def name(self) -> str:
        return self.kind if self.symbol is None else f"{self.kind}:{self.symbol}"


@dataclass(frozen=True, slots=True)
class FeedInputs:
    """Last update times (ms, receive clock) of everything one account's figures depend on."""

    venue: str
    account: str
    private_last_ms: int | None
    mark_last_ms: Mapping[str, int | None]
    watch_since_ms: int
    down: frozenset[str] = field(default_factory=frozenset)
    # When each name in ``down`` went down; a name missing here went down "forever ago".
    down_since_ms: Mapping[str, int] = field(default_factory=dict)
    missing: tuple[MissingInput, ...] = ()
    missing_since_ms: int | None = None  # receive time the account became incomplete
    complete_since_ms: int | None = None  # receive time it last became complete again


@dataclass(frozen=True, slots=True)
class StaleInput:
    name: str
    kind: Literal["private", "mark", "instrument", "model", "collateral"]
    symbol: str | None
    last_update_ms: int | None
    age_ms: int
    limit_ms: int
    down: bool
    stale_at_ms: int
    reason: str | None = None  # a missing input: what is missing

    def to_dict(self) -> JsonObject:
        out: JsonObject = {
            "input": self.name,
            "kind": self.kind,
            "symbol": self.symbol,
            "last_update_ms": self.last_update_ms,
            "age_ms": self.age_ms,
            "limit_ms": self.limit_ms,
            "down": self.down,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    def describe(self) -> str:
        if self.reason is not None:
            return f"cannot compute the account: {self.reason}"
        what = "private stream" if self.kind == PRIVATE else f"mark {self.symbol}"
        if self.down:
            return f"{what} feed down"
        return f"{what} {self.age_ms / 1000:.1f} s old (limit {self.limit_ms / 1000:.1f} s)"


@dataclass(frozen=True, slots=True)
class StalenessState:
    """``stale``: names of the stale inputs at the last check; ``blind_since_ms``: event time of
    the ``feed_stale`` alert of the current episode (``None`` while not blind)."""

    stale: frozenset[str] = frozenset()
    blind_since_ms: int | None = None


def _check(
    *,
    name: str,
    kind: Literal["private", "mark"],
    symbol: str | None,
    last: int | None,
    limit: int,
    inputs: FeedInputs,
    now_ms: int,
    cfg_grace: int,
) -> StaleInput | None:
    base = inputs.watch_since_ms if last is None else last
    age = now_ms - base
    down_at = _down_at(inputs, name, kind, cfg_grace)
    down = down_at is not None and now_ms > down_at
    if age <= limit and not down:
        return None
    return StaleInput(
        name=name,
        kind=kind,
        symbol=symbol,
        last_update_ms=last,
        age_ms=age,
        limit_ms=limit,
        down=down,
        stale_at_ms=max(base, down_at) if age <= limit and down_at is not None else base + limit,
    )


def _down_at(inputs: FeedInputs, name: str, kind: str, grace: int) -> int | None:
    """When a reported-down feed makes ``name`` stale (its down time + grace); None if up."""
    keys = [k for k in (name, MARK if kind == MARK else None) if k is not None and k in inputs.down]
    if not keys:
        return None
    since = min(inputs.down_since_ms.get(k, _LONG_AGO) for k in keys)
    return since + grace


_LONG_AGO = -(2**62)


def stale_inputs(inputs: FeedInputs, cfg: AlertConfig, now_ms: int) -> tuple[StaleInput, ...]:
    """Every stale input of one account, private stream first, then marks by symbol."""
    found: list[StaleInput] = []
    private = _check(
        name=PRIVATE,
        kind=PRIVATE,
        symbol=None,
        last=inputs.private_last_ms,
        limit=cfg.account_stale_ms,
        inputs=inputs,
        now_ms=now_ms,
        cfg_grace=cfg.feed_down_grace_ms,
    )
    if private is not None:
        found.append(private)
    for symbol in sorted(inputs.mark_last_ms):
        mark = _check(
            name=f"{MARK}:{symbol}",
            kind=MARK,
            symbol=symbol,
            last=inputs.mark_last_ms[symbol],
            limit=cfg.mark_stale_ms,
            inputs=inputs,
            now_ms=now_ms,
            cfg_grace=cfg.feed_down_grace_ms,
        )
        if mark is not None:
            found.append(mark)
    since = inputs.missing_since_ms
    if inputs.missing and since is not None and now_ms - since > cfg.inputs_missing_ms:
        names = {f.name for f in found}
        for m in inputs.missing:
            if m.name in names:
                continue  # a never-seen mark already listed as stale
            names.add(m.name)
            found.append(
                StaleInput(
                    name=m.name,
                    kind=m.kind,
                    symbol=m.symbol,
                    last_update_ms=None,
                    age_ms=now_ms - since,
                    limit_ms=cfg.inputs_missing_ms,
                    down=False,
                    stale_at_ms=since + cfg.inputs_missing_ms,
                    reason=m.reason,
                )
            )
    return tuple(found)


def next_stale_deadline(inputs: FeedInputs, cfg: AlertConfig) -> int:
    """The earliest ``now_ms`` at which some currently fresh input would turn stale.

    Staleness is the absence of events, so the engine must check on a timer; this says when.
    """
    base = inputs.watch_since_ms
    private = inputs.private_last_ms
    times = [(base if private is None else private) + cfg.account_stale_ms + 1]
    times.extend(
        (base if t is None else t) + cfg.mark_stale_ms + 1 for t in inputs.mark_last_ms.values()
    )
    times.extend(t + cfg.feed_down_grace_ms + 1 for t in inputs.down_since_ms.values())
    if inputs.missing and inputs.missing_since_ms is not None:
        times.append(inputs.missing_since_ms + cfg.inputs_missing_ms + 1)
    return min(times)


def check_staleness(
    prev: StalenessState,
    inputs: FeedInputs,
    cfg: AlertConfig,
    now_ms: int,
    *,
    level: Level = Level.OK,
    figures: Figures | None = None,
) -> tuple[StalenessState, list[Alert]]:
    """Compare the account's inputs with their limits; alert when it turns blind or sees again.

    ``level`` and ``figures`` are the account's last known margin level and figures, carried
    in the alert for context (they may be out of date: that is the point of the alert).
    """
    stale = stale_inputs(inputs, cfg, now_ms)
    names = frozenset(s.name for s in stale)
    who = f"{inputs.account}@{inputs.venue}"
    if stale and prev.blind_since_ms is None:
        event_ms = min(s.stale_at_ms for s in stale)
        listed: list[JsonValue] = [s.to_dict() for s in stale]
        detail: JsonObject = {"stale_inputs": listed}
        alert = transition_alert(
            kind="feed_stale",
            venue=inputs.venue,
            account=inputs.account,
            transition="fresh>stale",
            level=level,
            figures=figures,
            event_ms=event_ms,
            recv_ms=now_ms,
            message=f"{who} FEED STALE, monitor is blind: "
            + "; ".join(s.describe() for s in stale),
            detail=detail,
        )
        return StalenessState(stale=names, blind_since_ms=event_ms), [alert]
    if not stale and prev.blind_since_ms is not None:
        event_ms = _healed_at(inputs, prev.stale)
        recovered: list[JsonValue] = [*sorted(prev.stale)]
        detail = {
            "recovered_inputs": recovered,
            "blind_since_ms": prev.blind_since_ms,
            "blind_for_ms": max(0, event_ms - prev.blind_since_ms),
        }
        alert = transition_alert(
            kind="feed_recovered",
            venue=inputs.venue,
            account=inputs.account,
            transition="stale>fresh",
            level=level,
            figures=figures,
            event_ms=event_ms,
            recv_ms=now_ms,
            message=(
                f"{who} feed recovered after "
                f"{max(0, event_ms - prev.blind_since_ms) / 1000:.1f} s "
                f"blind ({', '.join(sorted(prev.stale))})"
            ),
            detail=detail,
        )
        return StalenessState(), [alert]
    if names == prev.stale:
        return prev, []
    return StalenessState(stale=names, blind_since_ms=prev.blind_since_ms), []


def _healed_at(inputs: FeedInputs, stale: frozenset[str]) -> int:
    """Newest update among the inputs that were stale; inputs no longer held (a closed
    position's mark) have none, so fall back to the newest update of any input, then to the
    watch start: always input-derived, so a retry or replay reproduces the id."""
    marks = inputs.mark_last_ms
    private = inputs.private_last_ms
    healed = [
        private
        if name == PRIVATE
        else marks.get(name[len(MARK) + 1 :])
        if name.startswith(MARK + ":")
        else inputs.complete_since_ms  # a missing input: healed when the account completed
        for name in stale
    ]
    known = [t for t in healed if t is not None]
    if not known:
        known = [t for t in (private, *marks.values()) if t is not None]
    return max(known, default=inputs.watch_since_ms)
