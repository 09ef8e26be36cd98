"""Hyperliquid in the venue registry (:mod:`connectors.venues`): margin rules, no connector yet.

``marginwatch calc`` values a Hyperliquid snapshot with margin tables: mmr = 1/(2·max leverage)
per tier (spec/margin.md §5). A daemon cannot watch the venue until its parser and feeds are
added here (``parser`` and ``build_feeds``).
"""

from __future__ import annotations

from connectors.venues import MarginRules, ModelFamily, VenueDescriptor

DESCRIPTORS = {
    "hyperliquid": VenueDescriptor(
        key="hyperliquid",
        label="Hyperliquid",
        margin=MarginRules(ModelFamily.TIERS, "tiers", mmr_from_max_leverage=True),
    ),
}
