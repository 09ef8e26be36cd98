"""monitor.store: see :mod:`monitor.store.core`; this package re-exports its public names."""

from monitor.store.core import (
    AccountKey,
    Changed,
    Store,
)

__all__ = [
    "AccountKey",
    "Changed",
    "Store",
]
