"""Deribit: the venue's margin rules today; its connector comes with its own issue."""
