"""monitor.engine: see :mod:`monitor.engine.core`; this package re-exports its public names."""

from monitor.engine.core import (
    Engine,
)

__all__ = [
    "Engine",
]
