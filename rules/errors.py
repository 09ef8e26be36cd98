"""The rules package's exception tree::

    MarginError                 base of every error raised here
    ├── TierTableError          a tier table that is unsorted, has gaps, or inconsistent deductions
    └── ModelInputError         a position or account that the model cannot price (e.g. price <= 0)

Every message names the field or tier, so it can be shown to the user as is.
"""


class MarginError(Exception):
    """Base of every error raised by :mod:`rules`."""


class TierTableError(MarginError):
    """A tier table failed validation; the message names the symbol and the tier."""


class ModelInputError(MarginError):
    """Inputs that no margin model can price; the message names the field."""
