"""The connectors package's exception tree::

    ConnectorError                  base
    ├── VenueDataError              the venue sent bytes we cannot decode; ``reason`` is a short,
    │                               bounded label (a metric label), never the raw payload
    ├── VenueRejected               the venue answered a request with an error code
    │   └── AuthError               credentials refused (fatal: reconnecting will not help)
    ├── TransientError              a network or server hiccup; the driver retries with backoff
    └── SettingsError               a venue cannot work with a configured setting (``field``)

Only :class:`VenueDataError` is counted and dropped by the driver; the rest decide retry.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error raised by :mod:`connectors`."""

    retryable: bool = False


class VenueDataError(ConnectorError):
    """Undecodable venue data; ``reason`` is a bounded label (``bad_json``, ``bad_price``)."""

    def __init__(self, venue: str, reason: str, detail: str = "") -> None:
        self.venue = venue
        self.reason = reason
        self.detail = detail
        super().__init__(f"{venue}: {reason}" + (f": {detail}" if detail else ""))


class VenueRejected(ConnectorError):  # noqa: N818 - reads as a verdict, like Binance's own wording
    def __init__(self, venue: str, code: int | str, message: str) -> None:
        self.venue = venue
        self.code = code
        super().__init__(f"{venue} rejected the request: {code} {message}")


class AuthError(VenueRejected):
    """Credentials refused; not retryable."""


class TransientError(ConnectorError):
    retryable = True


class SettingsError(ConnectorError):
    """A venue's feed factory cannot work with a setting; ``field`` names it (``ws_url``)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
