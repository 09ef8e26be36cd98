"""Control-flow signals between a connection's tasks (reader, resync, watchdog, session).

Any task may end the connection by raising one of these; the connection's ``TaskGroup`` cancels
the others and the session (:mod:`connectors.driver.session`) decides what comes next.
"""

from __future__ import annotations


class Restart(Exception):  # noqa: N818 - a control-flow signal, not an error
    """End this connection; ``immediate`` skips the backoff delay (planned reconnects)."""

    def __init__(self, reason: str, *, immediate: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.immediate = immediate


class Stopped(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The owner set ``stop``."""
