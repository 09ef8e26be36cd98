"""A process that emits alerts through the Kafka sink, for the kill -9 tests (test_kafka_crash.py).

    python tests/crash_emitter.py BOOTSTRAP SPOOL_DIR emit   # phase 1, then phase 2 until killed
    python tests/crash_emitter.py BOOTSTRAP SPOOL_DIR drain  # send what the spool holds, exit 0

``emit``: submits ``SYNC_ALERTS`` alerts, waits until the broker has acknowledged them and prints
``synced``; then waits for a line on stdin (the test has killed the broker) and emits one alert
every ``1 / RATE`` s, printing ``emitted <id>`` once ``submit`` has returned, until it is killed.
``drain``: runs the sink until its spool is empty, prints ``drained <n>`` and exits.
Everything it prints is flushed at once: the test reads it as it happens.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from delivery_helpers import RecordingObserver, make_alert

from monitor.sinks.config_types import KafkaConfig, SpoolConfig
from monitor.sinks.kafka import KafkaSink

SYNC_ALERTS = 20
RATE = 20.0  # alerts per second during the outage
ACCOUNTS = 7


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def emit(sink: KafkaSink, observer: RecordingObserver) -> None:
    for i in range(SYNC_ALERTS):
        sink.submit(make_alert(i, account=f"acct-{i % ACCOUNTS}"))
    await observer.wait_for(lambda: sink.pending() == 0)
    say("synced")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    i = SYNC_ALERTS
    while True:
        alert = make_alert(i, account=f"acct-{i % ACCOUNTS}")
        sink.submit(alert)
        say(f"emitted {alert.id}")
        i += 1
        await asyncio.sleep(1 / RATE)  # the emission rate of this workload


async def drain(sink: KafkaSink, observer: RecordingObserver) -> None:
    recovered = sink.pending()
    await observer.wait_for(lambda: sink.pending() == 0)
    say(f"drained {recovered}")


async def main(bootstrap: str, spool_dir: Path, mode: str) -> None:
    # The defaults a deployment runs with (request timeout 30 s), apart from a short backoff.
    cfg = KafkaConfig(bootstrap, SpoolConfig(spool_dir), backoff_initial_s=0.1, backoff_max_s=1.0)
    observer = RecordingObserver()  # wakes the waits below on every acknowledgement
    sink = KafkaSink(cfg, observer=observer)
    task = asyncio.create_task(sink.run())
    try:
        await (emit(sink, observer) if mode == "emit" else drain(sink, observer))
    finally:
        await sink.close()
        task.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
