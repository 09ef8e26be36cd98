"""monitor.store: see :mod:`monitor.store.core`; this package re-exports its public names."""

from monitor.store.core import (
    NO_CHANGE,
    AccountKey,
    Changed,
    DistanceThreshold,
    KnownAccount,
    MarkTail,
    QuietBand,
    Store,
    StoreInput,
)

__all__ = [
    "NO_CHANGE",
    "AccountKey",
    "Changed",
    "DistanceThreshold",
    "KnownAccount",
    "MarkTail",
    "QuietBand",
    "Store",
    "StoreInput",
]
