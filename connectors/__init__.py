"""Venue connectors: pure wire parsers per venue and one venue-agnostic async driver.

Nothing here imports ``monitor``.
"""
