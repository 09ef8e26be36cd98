"""Write-ahead alerts survive kill -9: a real process emits alerts through the Kafka sink into a
real broker (Tansu), the broker dies, the process is SIGKILLed 1 s, 10 s or 45 s into the outage,
then the broker and the process come back: every alert the process emitted is on the topic.

Also here: an outage is reported within ``request_timeout_ms``, and an alerts topic with another
partition count than the config is reported at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from crash_emitter import RATE, SYNC_ALERTS
from delivery_helpers import RecordingObserver, make_alert
from services import Service
from test_kafka_sink import ALERTS, Collector, bootstrap_of, config, running

from monitor.sinks.kafka import KafkaSink

pytestmark = pytest.mark.integration

EMITTER = Path(__file__).with_name("crash_emitter.py")
START_S = 30.0  # a child's start-up or drain (imports, broker connection), with room to spare


class Child:
    """The emitter process; its stdout read line by line, each wait bounded by a deadline."""

    def __init__(self, bootstrap: str, spool: Path, mode: str) -> None:
        self.log = spool.parent / f"emitter-{mode}.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(EMITTER), bootstrap, str(spool), mode],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=EMITTER.parent,
            )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._buf = b""
        self.emitted: list[str] = []

    def line(self, deadline: float) -> str | None:
        """The next line (``None`` at EOF); ``emitted <id>`` lines are also recorded."""
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"emitter: no output in time (last: {self._buf[-80:]!r})")
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\n", 1)
        text = raw.decode()
        if text.startswith("emitted "):
            self.emitted.append(text.removeprefix("emitted "))
        return text

    def expect(self, prefix: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.line(deadline)
            if text is None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise AssertionError(
                    f"emitter exited ({self.proc.wait()}) before {prefix!r}; its log:\n{tail}"
                )
            if text.startswith(prefix):
                return text

    def tell(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        """SIGKILL by PID, then read what it printed before dying (to EOF)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.line(deadline) is not None:
            pass

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


async def topic_ids(bootstrap: str, wanted: set[str], timeout_s: float) -> set[str]:
    """The alert ids on the alerts topic once ``wanted`` are all there (or at the deadline: the
    caller's assertion then says what is missing)."""
    async with Collector(bootstrap, ALERTS) as collector:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await collector.wait_for(lambda: wanted <= set(collector.ids()))
        return set(collector.ids())


@pytest.mark.parametrize("outage_s", [1, 10, 45])
async def test_kill_9_during_a_broker_outage_loses_no_emitted_alert(
    tansu: Service, tmp_path: Path, outage_s: int
) -> None:
    bootstrap = bootstrap_of(tansu)
    spool = tmp_path / "spool"
    child = Child(bootstrap, spool, "emit")
    try:
        child.expect("synced", START_S)  # the first alerts are acknowledged by this broker
        first = [make_alert(i).id for i in range(SYNC_ALERTS)]
        on_first = await topic_ids(bootstrap, set(first), START_S)
        assert set(first) <= on_first
        tansu.kill()  # the outage starts; the process goes on emitting into it
        child.tell("outage")
        # ``outage_s`` into the outage, by the emitter's own pace (RATE alerts per second).
        deadline = time.monotonic() + outage_s + START_S
        while len(child.emitted) < outage_s * RATE:
            assert child.line(deadline) is not None
        child.kill9()
    finally:
        child.close()
    emitted = set(child.emitted)
    assert len(emitted) >= outage_s * RATE

    tansu.start()  # a new, empty broker on the same port
    again = Child(bootstrap, spool, "drain")
    try:
        drained = again.expect("drained", START_S + 30)
        assert again.proc.wait(timeout=START_S) == 0
    finally:
        again.close()
    assert int(drained.split()[1]) >= len(emitted)  # all still in the spool after kill -9
    on_topic = await topic_ids(bootstrap, emitted, START_S)
    lost = emitted - on_topic
    assert not lost, f"{len(lost)} of {len(emitted)} emitted alerts lost"


async def test_outage_is_reported_within_the_request_timeout(
    tansu: Service, tmp_path: Path
) -> None:
    timeout_ms = 3000
    observer = RecordingObserver()
    failing: list[tuple[str, str, float]] = []
    loop = asyncio.get_running_loop()
    sink = KafkaSink(
        config(bootstrap_of(tansu), tmp_path / "spool", request_timeout_ms=timeout_ms),
        observer=observer,
        on_delivery_failing=lambda name, reason: failing.append((name, reason, loop.time())),
    )
    async with asyncio.timeout(60), running(sink):
        sink.submit(make_alert(0))
        await observer.wait_for(lambda: observer.delivered_total == 1)
        tansu.kill()
        sent_at = loop.time()
        sink.submit(make_alert(1))  # handed to a producer whose broker is gone
        await observer.wait_for(lambda: bool(failing))
    ((name, _reason, at),) = failing
    assert name == "kafka"
    # Within the request timeout (aiokafka on its own answers after about twice that); a
    # quarter second of slack for the loop on a loaded machine.
    assert at - sent_at <= timeout_ms / 1000 + 0.25
    assert sink.pending() == 1  # and the alert waits in the spool


async def test_partition_count_mismatch_is_reported_and_delivery_goes_on(
    tansu: Service, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = bootstrap_of(tansu)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:  # made elsewhere with 4 partitions (the broker's auto-create default, say)
        await admin.create_topics([NewTopic(ALERTS, 4, 1)])
    finally:
        await admin.close()
    observer = RecordingObserver()
    sink = KafkaSink(config(bootstrap, tmp_path / "spool", partitions=6), observer=observer)
    caplog.set_level(logging.ERROR, logger="monitor.sinks.kafka")
    async with asyncio.timeout(60), running(sink):
        for i in range(5):
            sink.submit(make_alert(i))
        await observer.wait_for(lambda: observer.delivered_total == 5)
    (problem,) = sink.topic_problems
    assert f"topic {ALERTS} has 4 partitions, the config says 6" in problem
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [problem]
    assert not sink.topic_problems[1:]  # reported once, not on every reconnect
