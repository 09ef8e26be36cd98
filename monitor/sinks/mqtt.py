"""MQTT sink for lightweight subscribers (aiomqtt).

- Alerts: QoS 1 to ``<prefix>/alerts/<venue>/<account>``, the schema-1 JSON as payload.
- State: retained, QoS 1, to ``<prefix>/state/<venue>/<account>``, so a subscriber sees each
  account's present level and figures the moment it subscribes. Published only while no alert
  waits: alerts go first.

Alerts are published one at a time and each waits for its PUBACK, so one account's alerts reach
the broker in order. An alert leaves the queue only when acknowledged: on a disconnect or a
PUBACK timeout it stays at the head and is published again after reconnecting (at-least-once;
subscribers drop duplicates by id). The queue is memory only: Kafka is the durable path, and
what is still queued at shutdown is logged as an error with its count. (No write-ahead spool
here: ``mqtt.spool`` is rejected by the config and this sink takes no spool directory; an
operator who needs alerts to survive a crash runs the Kafka sink, which has one.)

Each alert is encoded on its own when published (:mod:`monitor.sinks.encode`): one that does
not encode goes out repaired, the queue behind it unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt

from connectors.backoff import Backoff
from monitor.errors import DeliveryError
from monitor.sinks.config_types import MqttConfig
from monitor.sinks.delivery import FailingReport, await_stopped, pause
from monitor.sinks.encode import encoded, state_json
from monitor.sinks.observer import NULL_OBSERVER, DeliveryObserver
from rules.alert_doc import Alert, StateDocument

log = logging.getLogger(__name__)

_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


def _level(name: str) -> str:
    """One topic level: MQTT separators and wildcards cannot appear inside it."""
    return name.translate(_UNSAFE)


def alert_topic(prefix: str, venue: str, account: str) -> str:
    return f"{prefix}/alerts/{_level(venue)}/{_level(account)}"


def state_topic(prefix: str, venue: str, account: str) -> str:
    return f"{prefix}/state/{_level(venue)}/{_level(account)}"


def client_options(cfg: MqttConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "hostname": cfg.host,
        "port": cfg.port,
        "identifier": cfg.client_id,
        "keepalive": cfg.keepalive_s,
        "timeout": cfg.publish_timeout_s,
    }
    if cfg.username is not None or cfg.password is not None:
        # MQTT 3.1.1 sends a password only with a user name; an empty one is allowed.
        opts["username"] = cfg.username or ""
        opts["password"] = None if cfg.password is None else cfg.password.reveal()
    if cfg.tls:
        context = ssl.create_default_context(cafile=cfg.tls_cafile)
        if cfg.tls_certfile is not None:
            context.load_cert_chain(cfg.tls_certfile, cfg.tls_keyfile)
        opts["tls_context"] = context
    return opts


class MqttSink:
    """QoS-1 alerts and retained state over MQTT. See the module docstring."""

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        observer: DeliveryObserver = NULL_OBSERVER,
        on_delivery_failing: Callable[[str, str], None] | None = None,
        on_delivery_resumed: Callable[[str], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._cfg = cfg
        self._observer = observer
        self._backoff = backoff or Backoff(
            initial_s=cfg.backoff_initial_s, max_s=cfg.backoff_max_s, floor=0.5
        )
        self._report = FailingReport(
            self.name,
            observer,
            self._backoff,
            on_delivery_failing,
            log,
            on_resumed=on_delivery_resumed,
        )
        self._queue: deque[Alert] = deque()
        self._states: dict[bytes, StateDocument] = {}
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        #: Set while connected to the broker (readiness probes, tests).
        self.connected = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._running = False
        self._stopping = False
        self._closed = False
        #: Alerts acknowledged (PUBACK) since start.
        self.delivered = 0
        #: Of those, alerts that did not encode as they were and went out repaired.
        self.repaired = 0

    @property
    def name(self) -> str:
        return "mqtt"

    def submit(self, alert: Alert) -> None:
        if self._closed:
            raise DeliveryError(f"mqtt: alert {alert.id} submitted after close")
        self._queue.append(alert)
        self._wake.set()

    def submit_state(self, state: StateDocument) -> None:
        self._states[state.key()] = state
        self._wake.set()

    def pending(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        if self._running or self._closed:
            raise RuntimeError("mqtt: run() is already running or the sink is closed")
        self._running = True
        self._stopped.clear()
        self._task = asyncio.current_task()
        try:
            await self._connect_loop()
        finally:
            self._running = False
            self._stopped.set()

    async def close(self) -> None:
        """Publish what is queued (bounded by ``close_timeout_s``), then disconnect."""
        if self._closed:
            return
        self._stopping = True
        self._wake.set()
        if self._running:
            await await_stopped(self._stopped, self._task, self._cfg.close_timeout_s)
        self._closed = True
        if self._queue:
            log.error("mqtt: closing with %d alerts not acknowledged", len(self._queue))

    async def _connect_loop(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(**client_options(self._cfg)) as client:
                    self.connected.set()
                    await self._session(client)
                    return  # stopping and drained
            except aiomqtt.MqttError as exc:
                self._outage(exc)
            finally:
                self.connected.clear()
            if self._stopping:
                return
            await pause(self._backoff.next_delay(), self._wake, lambda: self._stopping)

    def _outage(self, exc: BaseException) -> None:
        reason = type(exc).__name__
        self._report.outage(
            reason,
            1 if self._queue else 0,
            "mqtt: broker %s:%d unreachable (%s); %d alerts wait in memory",
            self._cfg.host,
            self._cfg.port,
            reason,
            len(self._queue),
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """Publish until stopping; a disconnect ends it at once, even mid-PUBACK wait."""
        try:
            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(self._watch(client))
                await self._pump(client)
                watcher.cancel()
        except* aiomqtt.MqttError as group:
            raise group.exceptions[0] from None

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        # Nothing is subscribed, so the iterator only ever ends: with MqttError on disconnect.
        async for _ in client.messages:
            pass

    async def _pump(self, client: aiomqtt.Client) -> None:
        prefix = self._cfg.topic_prefix
        while True:
            self._wake.clear()
            # Alerts first: after a reconnect with thousands of accounts' states pending, an
            # alert must not wait behind them. States are latest-wins and go when no alert waits.
            if self._queue:
                # Encoded alone: one that does not encode goes out repaired (encode.py).
                alert, value, repaired = encoded(self._queue[0], self.name)
                topic = alert_topic(prefix, alert.venue, alert.account)
                await client.publish(topic, value, qos=1)
                # Acknowledged: only now does it leave the queue.
                self._queue.popleft()
                self._acknowledged(repaired)
            elif self._states:
                key, doc = next(iter(self._states.items()))
                payload = state_json(doc, self.name)
                if payload is not None:
                    topic = state_topic(prefix, doc.venue, doc.account)
                    await client.publish(topic, payload, qos=1, retain=True)
                if self._states.get(key) is doc:  # not replaced while we waited
                    del self._states[key]
            elif self._stopping:
                return
            else:
                await self._wake.wait()

    def _acknowledged(self, repaired: bool) -> None:
        self.delivered += 1
        self._observer.delivered(self.name, 1)
        if repaired:
            self.repaired += 1
            self._observer.repaired(self.name, 1)
        if self._report.delivered():
            log.info("mqtt: delivering again; %d alerts queued", len(self._queue))
