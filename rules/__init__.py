"""Margin mathematics and alert policy: pure, synchronous, no I/O.

Nothing in this package imports asyncio, sockets, ``connectors`` or ``monitor``.
"""
