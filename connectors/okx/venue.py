"""OKX in the venue registry (:mod:`connectors.venues`): margin rules, no connector yet.

``marginwatch calc`` values an OKX snapshot with position tiers without deduction: the whole
position at its tier's rate (spec/margin.md §3). A daemon cannot watch the venue until its
parser and feeds are added here (``parser`` and ``build_feeds``).
"""

from __future__ import annotations

from connectors.venues import MarginRules, ModelFamily, VenueDescriptor

DESCRIPTORS = {
    "okx": VenueDescriptor(
        key="okx",
        label="OKX",
        margin=MarginRules(ModelFamily.TIERS, "tiers", tier_deduction=False),
    ),
}
