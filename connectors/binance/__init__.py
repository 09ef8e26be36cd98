"""Binance USDⓈ-M and COIN-M futures: wire parsers, REST client, feeds and a fake venue.

Modules, each with one job:

* :mod:`.spec` — what differs between USDⓈ-M and COIN-M (hosts, paths, contract kind).
* :mod:`.wire`, :mod:`.rest_wire` — typed wire schemas (msgspec structs, the venue's names).
* :mod:`.parse` — pure websocket frame parsers (``parse_market``, ``parse_user``) and the mark
  batch kernel; :mod:`.handlers` — typed events to domain events.
* :mod:`.snapshots` — pure REST body parsers (account, positionRisk, brackets, marks).
* :mod:`.rest` — signed async REST client (HMAC-SHA256, clock offset, weight back-off).
* :mod:`.feeds` — :class:`~connectors.protocol.Feed` implementations for the driver.
* :mod:`.fake` — a loopback Binance for tests and the demo.
"""
