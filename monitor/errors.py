"""The monitor package's exception tree::

MonitorError            base
├── UsageError          bad command line, config or input file: one line, exit status 2
└── DeliveryError       an alert could not be handed to a sink (retried, never dropped)

Only :class:`UsageError` maps to exit status 2; every other failure is exit status 1.
"""


class MonitorError(Exception):
    """Base of every error raised by :mod:`monitor`."""


class UsageError(MonitorError):
    """A usage, config or input error. The message names the field and the file."""


class DeliveryError(MonitorError):
    """A sink failed to deliver; the alert stays queued or spooled."""
