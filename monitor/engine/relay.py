"""Facts the venue told us, relayed as alerts: a margin call, a liquidation (or ADL) fill, a
venue-reported maintenance margin that disagrees with ours (model drift, :mod:`.drift`), and a
ban of our IP from the venue's REST API (one alert per ban, however many feeds report it)."""

from __future__ import annotations

from collections.abc import Callable

from connectors.events import AccountSnapshot, Event, MarginCall, PositionFill, RestBan
from monitor.engine.drift import DriftCheck
from monitor.store import Store
from rules.alert_kinds import rest_banned_alert
from rules.alerts import Alert, Level, position_liquidated_alert, venue_margin_call_alert
from rules.alerts import Figures as AlertFigures


class Relay:
    """Turns the venue's own account facts into alerts carrying our level and figures.

    ``account_of(venue, account)``: the account's index, known to the store and registered
    with the engine."""

    def __init__(
        self,
        store: Store,
        drift: DriftCheck,
        account_of: Callable[[str, str], int],
        level_of: Callable[[int], Level],
        figures_of: Callable[[int], AlertFigures | None],
    ) -> None:
        self._store = store
        self._drift = drift
        self._account_of = account_of
        self._level_of = level_of
        self._figures_of = figures_of
        # venue -> start of the REST ban last alerted: every feed of the venue reports it.
        self._ban_since: dict[str, int] = {}

    def relay(self, ev: Event, recv_ms: int, out: list[Alert]) -> None:
        """Append the alert ``ev`` (applied to the store already) relays, if any."""
        if isinstance(ev, RestBan):
            if self._ban_since.get(ev.venue) != ev.since_ms:
                self._ban_since[ev.venue] = ev.since_ms
                out.append(
                    rest_banned_alert(
                        venue=ev.venue, since_ms=ev.since_ms, until_ms=ev.until_ms, recv_ms=recv_ms
                    )
                )
        elif isinstance(ev, MarginCall):
            i = self._account_of(ev.venue, ev.account)
            out.append(
                venue_margin_call_alert(
                    venue=ev.venue,
                    account=ev.account,
                    event_ms=ev.event_ms,
                    recv_ms=recv_ms,
                    positions=ev.positions,
                    level=self._level_of(i),
                    figures=self._figures_of(i),
                    cross_wallet_balance=ev.cross_wallet_balance,
                )
            )
        elif isinstance(ev, PositionFill) and (ev.liquidation or ev.adl):
            i = self._account_of(ev.venue, ev.account)
            out.append(
                position_liquidated_alert(
                    venue=ev.venue,
                    account=ev.account,
                    symbol=ev.symbol,
                    side=ev.side,
                    qty=ev.qty_delta,
                    price=ev.price,
                    event_ms=ev.event_ms,
                    recv_ms=recv_ms,
                    level=self._level_of(i),
                    figures=self._figures_of(i),
                    order_id=ev.order_id,
                    trade_id=ev.trade_id,
                )
            )
        elif isinstance(ev, AccountSnapshot) and ev.reported is not None:
            i = self._account_of(ev.venue, ev.account)
            alert = self._drift.check(i, ev, recv_ms, self._level_of(i), self._figures_of(i))
            if alert is not None:
                out.append(alert)
