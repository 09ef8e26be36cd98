"""The logger handed to websockets, kept from leaking credentials and payloads."""

from __future__ import annotations

import logging
import re


class _RedactSecrets(logging.Filter):
    """Blank credentials that ride in URLs (Binance's ``listenKey=…``) in a record's text."""

    _SECRET = re.compile(r"(listenKey=)[^&\s]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        redacted = self._SECRET.sub(r"\1<redacted>", text)
        if redacted != text:
            record.msg, record.args = redacted, None
        return True


def _websocket_logger() -> logging.Logger:
    """Its own DEBUG output prints the request line (with a private stream's listenKey) and
    every frame (payloads), so it is held at INFO whatever the root level is; the filter redacts
    what an INFO line could still carry."""
    logger = logging.getLogger("connectors.driver.websockets")
    logger.setLevel(logging.INFO)
    if not any(isinstance(f, _RedactSecrets) for f in logger.filters):
        logger.addFilter(_RedactSecrets())
    return logger


WS_LOG = _websocket_logger()
