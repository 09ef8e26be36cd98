"""dYdX v4 in the venue registry (:mod:`connectors.venues`): margin rules, no connector yet.

``marginwatch calc`` values a dYdX v4 snapshot with IMF × MF with open-interest scaling
(rules/imf_mf.py). A daemon cannot watch the venue until its parser and feeds are added here
(``parser`` and ``build_feeds``).
"""

from __future__ import annotations

from connectors.venues import MarginRules, ModelFamily, VenueDescriptor

DESCRIPTORS = {
    "dydx": VenueDescriptor(
        key="dydx",
        label="dYdX",
        margin=MarginRules(ModelFamily.IMF_MF, "dydx_markets"),
    ),
}
