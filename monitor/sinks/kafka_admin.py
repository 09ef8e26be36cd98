"""Kafka client options and topic set-up for the Kafka sink.

Topic creation runs at every (re)connection, because a broker may come back empty: the alerts
topic with ``partitions`` partitions, the state topic with ``cleanup.policy=compact``. When the
principal may not create topics, the error names the topic and the permission it lacks, and the
sink carries on if the topics already exist. A topic that exists with another partition count
than configured (made by hand, or auto-created by the broker with its default) is a problem
reported at start-up, not a reason to stop: alerts still flow, but keys map to other partitions
than a consumer sized for the config expects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code
from aiokafka.helpers import create_ssl_context

from monitor.errors import DeliveryError
from monitor.sinks.config_types import KafkaConfig, SecurityProtocol

log = logging.getLogger(__name__)

_OK = 0
_TOPIC_ALREADY_EXISTS = 36
_EXPLAIN: dict[int, str] = {
    29: "the principal lacks the CREATE permission on the topic (ACL Topic:{topic} CREATE)",
    31: "the principal lacks the CREATE permission on the cluster (ACL Cluster CREATE)",
    37: "invalid partition count {partitions}",
    38: "replication factor {replication} is larger than the number of brokers",
    40: "the broker rejected the topic config (cleanup.policy=compact)",
}


class TopicSetupError(DeliveryError):
    """A topic the sink needs does not exist and could not be created. Retried with backoff."""


def client_options(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection and security keyword arguments shared by the producer and the admin client."""
    opts: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol.value,
        "request_timeout_ms": cfg.request_timeout_ms,
    }
    if cfg.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        opts["ssl_context"] = create_ssl_context(
            cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile
        )
    if cfg.security_protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        assert cfg.sasl_mechanism is not None  # KafkaConfig.__post_init__ checked it
        assert cfg.sasl_password is not None
        opts["sasl_mechanism"] = cfg.sasl_mechanism.value
        opts["sasl_plain_username"] = cfg.sasl_username
        opts["sasl_plain_password"] = cfg.sasl_password.reveal()
    return opts


def explain_topic_error(cfg: KafkaConfig, topic: str, code: int) -> str:
    """A one-line reason for a CreateTopics error code, naming the topic."""
    template = _EXPLAIN.get(code)
    if template is None:
        what = f"{for_code(code).__name__} (error code {code})"
    else:
        what = template.format(
            topic=topic, partitions=cfg.partitions, replication=cfg.replication_factor
        )
    return f"kafka: cannot create topic {topic}: {what}"


def creation_problems(cfg: KafkaConfig, topic_errors: Iterable[tuple[Any, ...]]) -> dict[str, str]:
    """Topic -> explanation for every CreateTopics result that is neither OK nor 'exists'."""
    problems: dict[str, str] = {}
    for entry in topic_errors:
        topic, code = str(entry[0]), int(entry[1])
        if code not in (_OK, _TOPIC_ALREADY_EXISTS):
            problems[topic] = explain_topic_error(cfg, topic, code)
    return problems


def new_topics(cfg: KafkaConfig) -> list[NewTopic]:
    return [
        NewTopic(cfg.alerts_topic, cfg.partitions, cfg.replication_factor),
        NewTopic(
            cfg.state_topic,
            cfg.state_partitions,
            cfg.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        ),
    ]


async def ensure_topics(cfg: KafkaConfig) -> list[str]:
    """Create the topics if allowed; raise :class:`TopicSetupError` if one is still missing.

    Returns the problems that do not stop delivery (one line each): partition counts that
    differ from the config."""
    admin = AIOKafkaAdminClient(**client_options(cfg))
    await admin.start()
    try:
        problems: dict[str, str] = {}
        if cfg.create_topics:
            try:
                response = await admin.create_topics(new_topics(cfg))
                problems = creation_problems(cfg, response.topic_errors)
            except KafkaError as exc:
                problems = {
                    t: f"kafka: cannot create topic {t}: {type(exc).__name__}"
                    for t in (cfg.alerts_topic, cfg.state_topic)
                }
        existing = set(await admin.list_topics())
        missing = [t for t in (cfg.alerts_topic, cfg.state_topic) if t not in existing]
        if missing:
            reasons = "; ".join(
                problems.get(t, f"kafka: topic {t} does not exist") for t in missing
            )
            hint = "" if cfg.create_topics else " (create_topics is off: create it out of band)"
            raise TopicSetupError(reasons + hint)
        for why in problems.values():
            # It exists after all (made by someone else): say why we could not, once per connect.
            log.warning("%s; it exists, carrying on", why)
        await _check_compaction(admin, cfg.state_topic)
        return await _check_partitions(admin, cfg)
    finally:
        await admin.close()


async def _check_partitions(admin: AIOKafkaAdminClient, cfg: KafkaConfig) -> list[str]:
    wanted = {cfg.alerts_topic: cfg.partitions, cfg.state_topic: cfg.state_partitions}
    try:
        described = await admin.describe_topics(list(wanted))
    except KafkaError as exc:
        log.warning("kafka: cannot describe the topics (%s)", type(exc).__name__)
        return []
    return partition_problems(wanted, described)


def partition_problems(wanted: dict[str, int], described: Iterable[Any]) -> list[str]:
    """One line per topic whose partition count is not the configured one."""
    problems: list[str] = []
    for meta in described:
        topic, have = str(meta["topic"]), len(meta["partitions"])
        want = wanted.get(topic)
        if want is not None and have != want and int(meta.get("error_code", 0)) == _OK:
            problems.append(
                f"kafka: topic {topic} has {have} partitions, the config says {want}: it was "
                f"created elsewhere (or auto-created by the broker); per-account order holds, "
                f"but keys land on other partitions than consumers sized for {want} expect "
                f"(recreate the topic or set the partition count to {have})"
            )
    return problems


async def _check_compaction(admin: AIOKafkaAdminClient, topic: str) -> None:
    # All entries, no name filter: Tansu drops the connection on a filtered DescribeConfigs.
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    except KafkaError as exc:
        log.warning("kafka: cannot read the config of %s (%s)", topic, type(exc).__name__)
        return
    policy = topic_config(responses, "cleanup.policy")
    if policy is not None and "compact" not in policy:
        log.warning(
            "kafka: state topic %s has cleanup.policy=%s, not compact: old states pile up",
            topic,
            policy,
        )


def topic_config(responses: Iterable[Any], name: str) -> str | None:
    """The value of one config entry in DescribeConfigs responses, or None if absent."""
    for response in responses:
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] == name:
                    return None if entry[1] is None else str(entry[1])
    return None
