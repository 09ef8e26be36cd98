"""Pieces the sinks share: the spooled record format, the reconnect backoff and pause, the
bounded wait for the run task on close, the once-per-outage failing report, and the retrying
run loop of the local (console, JSONL) sinks."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import struct
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.backoff import Backoff
from monitor.sinks.observer import DeliveryObserver
from rules.alert_doc import Alert

_VERSION = 1
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")


class EnvelopeError(ValueError):
    """A spooled record that does not decode (a bug or a foreign file, never venue data)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One alert as the broker sees it: key, headers and the schema-1 JSON value.

    This is what the spool stores, so a replay after a restart sends byte-identical messages
    without the :class:`Alert` object.
    """

    key: bytes
    headers: tuple[tuple[str, bytes], ...]
    value: bytes

    @classmethod
    def of_alert(cls, alert: Alert) -> Envelope:
        return cls(alert.key(), tuple(alert.headers()), alert.to_json())

    def encode(self) -> bytes:
        return self.prefix(self.key, self.headers) + self.value

    @staticmethod
    def prefix(key: bytes, headers: Iterable[tuple[str, bytes]]) -> bytes:
        """The encoding up to the value: what alerts with the same key and headers share
        (the Kafka sink caches it, so spooling an alert costs one concatenation)."""
        headers = tuple(headers)
        parts = [_U8.pack(_VERSION), _U16.pack(len(key)), key, _U8.pack(len(headers))]
        for name, value in headers:
            raw = name.encode()
            parts += [_U8.pack(len(raw)), raw, _U16.pack(len(value)), value]
        return b"".join(parts)

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        try:
            (version,) = _U8.unpack_from(raw, 0)
            if version != _VERSION:
                raise EnvelopeError(f"spooled record: unknown version {version}")
            (klen,) = _U16.unpack_from(raw, 1)
            key = raw[3 : 3 + klen]
            off = 3 + klen
            (count,) = _U8.unpack_from(raw, off)
            off += 1
            headers = []
            for _ in range(count):
                (nlen,) = _U8.unpack_from(raw, off)
                name = raw[off + 1 : off + 1 + nlen].decode()
                off += 1 + nlen
                (vlen,) = _U16.unpack_from(raw, off)
                headers.append((name, raw[off + 2 : off + 2 + vlen]))
                off += 2 + vlen
        except (struct.error, UnicodeDecodeError) as exc:
            raise EnvelopeError("spooled record: truncated or malformed") from exc
        if off > len(raw) or len(key) != klen:
            raise EnvelopeError("spooled record: truncated")
        return cls(key, tuple(headers), raw[off:])

    def venue_account(self) -> tuple[str, str]:
        venue, _, account = self.key.decode().partition(":")
        return venue, account


async def pause(
    seconds: float,
    wake: asyncio.Event,
    stopping: Callable[[], bool],
    on_wake: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Back off for ``seconds``, returning early once ``stopping()``; each time ``wake`` is set
    (something was submitted) ``on_wake`` runs first (the Kafka sink spools what arrived)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not stopping():
        wake.clear()
        if on_wake is not None:
            await on_wake()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), remaining)


async def await_stopped(
    stopped: asyncio.Event,
    task: asyncio.Task[Any] | None,
    timeout_s: float,
    on_timeout: Callable[[], None] | None = None,
) -> None:
    """Wait (bounded) for a sink's run task to finish on its own; past ``timeout_s`` call
    ``on_timeout``, cancel the task and wait for its clean-up."""
    try:
        await asyncio.wait_for(stopped.wait(), timeout_s)
    except TimeoutError:
        if on_timeout is not None:
            on_timeout()
        if task is not None:
            task.cancel()
        await stopped.wait()


class FailingReport:
    """A sink's outage bookkeeping: every failed attempt is counted, the first of an outage is
    logged and reported (``on_delivery_failing``) once, and the first delivery after it resets
    the backoff and reports the end of the outage (``on_delivery_resumed``), so the next outage
    is a new one (its own start time, its own alert id)."""

    def __init__(
        self,
        name: str,
        observer: DeliveryObserver,
        backoff: Backoff,
        on_delivery_failing: Callable[[str, str], None] | None,
        logger: logging.Logger,
        *,
        on_resumed: Callable[[str], None] | None = None,
    ) -> None:
        self._name = name
        self._observer = observer
        self._backoff = backoff
        self._on_delivery_failing = on_delivery_failing
        self._on_delivery_resumed = on_resumed
        self._log = logger
        self.failing = False

    def outage(self, reason: str, failed: int, msg: str, *args: object) -> None:
        """A delivery attempt failed (``failed`` alerts lost their round); ``msg % args`` is
        logged as a warning when this starts an outage."""
        self._observer.failed(self._name, failed, reason)
        if not self.failing:
            self.failing = True
            self._log.warning(msg, *args)
            if self._on_delivery_failing is not None:
                self._on_delivery_failing(self._name, reason)

    def fault(self, reason: str, failed: int, msg: str, *args: object) -> None:
        """Something could not be delivered although the destination may be fine (an
        undecodable spooled record): always logged as an error and reported, even mid-outage;
        the next delivery ends it like an outage."""
        self._observer.failed(self._name, failed, reason)
        self._log.error(msg, *args)
        self.failing = True
        if self._on_delivery_failing is not None:
            self._on_delivery_failing(self._name, reason)

    def delivered(self) -> bool:
        """Something was acknowledged: True if that ended an outage (the backoff restarts)."""
        if not self.failing:
            return False
        self.failing = False
        self._backoff.reset()
        if self._on_delivery_resumed is not None:
            self._on_delivery_resumed(self._name)
        return True


def os_error_label(exc: OSError) -> str:
    """A bounded label for an ``OSError``: its errno name (``ENOSPC``, ``EPIPE``)."""
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


async def retry_local_writes(
    write: Callable[[], int],
    ready: asyncio.Event,
    report: FailingReport,
    backoff: Backoff,
    *,
    pending: Callable[[], int],
    what: str,
    logger: logging.Logger,
) -> None:
    """The run loop of a sink that writes locally: each wake-up ``write()``s the queue (it
    returns how many alerts it wrote). An ``OSError`` (disk full, broken pipe) is counted and
    reported once per outage, and the write is retried after a backoff: the alerts stay queued
    and the daemon keeps running. Anything else is a bug and propagates (fails the daemon)."""
    while True:
        await ready.wait()
        ready.clear()
        try:
            written = write()
        except OSError as exc:
            label = os_error_label(exc)
            report.outage(
                label,
                pending(),
                "%s: cannot write (%s); %d alerts wait in memory",
                what,
                exc.strerror or label,
                pending(),
            )
            await pause(backoff.next_delay(), ready, lambda: False)
            ready.set()  # try again, whether or not anything new arrived
            continue
        if written and report.delivered():
            logger.info("%s: writing again; %d alerts queued", what, pending())
