"""monitor.metrics: see :mod:`monitor.metrics.core`; this package re-exports its public names."""

from monitor.metrics.core import (
    ACCOUNT_FAMILIES,
    CONTENT_TYPE,
    LEVEL_NAMES,
    OTHER,
    Metrics,
)

__all__ = [
    "ACCOUNT_FAMILIES",
    "CONTENT_TYPE",
    "LEVEL_NAMES",
    "OTHER",
    "Metrics",
]
