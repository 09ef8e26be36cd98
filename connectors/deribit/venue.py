"""Deribit in the venue registry (:mod:`connectors.venues`): margin rules, no connector yet.

``marginwatch calc`` values a Deribit snapshot with standard margin, rates linear in position
size (spec/margin.md §4). A daemon cannot watch the venue until its parser and feeds are added
here (``parser`` and ``build_feeds``).
"""

from __future__ import annotations

from connectors.venues import MarginRules, ModelFamily, VenueDescriptor

DESCRIPTORS = {
    "deribit": VenueDescriptor(
        key="deribit",
        label="Deribit",
        margin=MarginRules(ModelFamily.SIZE_LINEAR, "size_linear"),
    ),
}
