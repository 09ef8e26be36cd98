"""Bybit (Unified Trading Account) in the venue registry (:mod:`connectors.venues`): margin rules,
no connector yet.

``marginwatch calc`` values a Bybit (Unified Trading Account) snapshot with risk-limit tiers
with deductions (spec/margin.md §2). A daemon cannot watch the venue until its parser and feeds
are added here (``parser`` and ``build_feeds``).
"""

from __future__ import annotations

from connectors.venues import MarginRules, ModelFamily, VenueDescriptor

DESCRIPTORS = {
    "bybit": VenueDescriptor(
        key="bybit",
        label="Bybit",
        margin=MarginRules(ModelFamily.TIERS, "tiers"),
    ),
}
