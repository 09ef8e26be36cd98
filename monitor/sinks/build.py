"""The sinks a config enables, each wired to the daemon's delivery-trouble hooks."""

from __future__ import annotations

from collections.abc import Callable

from monitor.config import Config, resource_error
from monitor.errors import UsageError
from monitor.sinks.base import Sink
from monitor.sinks.console import ConsoleSink
from monitor.sinks.jsonl import JsonlSink
from monitor.sinks.observer import DeliveryObserver
from monitor.sinks.spool import SpoolError

DeliveryHook = Callable[[str, int], None]
FailingHook = Callable[[str, str], None]
ResumedHook = Callable[[str], None]


def build_sinks(
    cfg: Config,
    *,
    observer: DeliveryObserver,
    on_spool_full: DeliveryHook | None = None,
    on_delivery_failing: FailingHook | None = None,
    on_delivery_resumed: ResumedHook | None = None,
) -> list[Sink]:
    """The sinks the config enables (Kafka and MQTT when their sections are present)."""
    sinks: list[Sink] = []
    # Every sink reports its trouble, local ones too: a full disk under the JSONL file is a
    # delivery_failing alert on the others, not a dead daemon.
    if cfg.sinks.console is not None:
        sinks.append(
            ConsoleSink(
                color=cfg.sinks.console.color,
                observer=observer,
                on_delivery_failing=on_delivery_failing,
                on_delivery_resumed=on_delivery_resumed,
            )
        )
    if cfg.sinks.jsonl is not None:
        try:
            sinks.append(
                JsonlSink(
                    cfg.sinks.jsonl.path,
                    observer=observer,
                    on_delivery_failing=on_delivery_failing,
                    on_delivery_resumed=on_delivery_resumed,
                )
            )
        except UsageError as exc:
            raise resource_error(cfg, "[sinks.jsonl].path", cfg.sinks.jsonl.path, exc) from exc
    if cfg.sinks.kafka is not None:
        from monitor.sinks.kafka import KafkaSink  # noqa: PLC0415 - aiokafka only when used

        try:
            sinks.append(
                KafkaSink(
                    cfg.sinks.kafka,
                    observer=observer,
                    on_spool_full=on_spool_full,
                    on_delivery_failing=on_delivery_failing,
                    on_delivery_resumed=on_delivery_resumed,
                )
            )
        except (SpoolError, OSError) as exc:
            # An unwritable or locked spool is the operator's to fix: one line, exit 2.
            directory = cfg.sinks.kafka.spool.directory
            raise resource_error(cfg, "[sinks.kafka.spool].directory", directory, exc) from exc
    if cfg.sinks.mqtt is not None:
        from monitor.sinks.mqtt import MqttSink  # noqa: PLC0415 - aiomqtt only when used

        sinks.append(
            MqttSink(
                cfg.sinks.mqtt,
                observer=observer,
                on_delivery_failing=on_delivery_failing,
                on_delivery_resumed=on_delivery_resumed,
            )
        )
    return sinks
