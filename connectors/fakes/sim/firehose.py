"""``python -m connectors.fakes.sim.firehose``: a SimVenue in firehose mode, for the ingest
benchmark.

Prints ``PORT <n>`` on stdout once listening, then serves until stdin closes or SIGTERM. Each
market subscriber gets ``--frames`` mark frames (``--batch`` marks per frame) as fast as its
socket takes them, starting just after its ``/marks`` snapshot.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from connectors.fakes.sim.server import Firehose, SimVenue


async def _serve(port: int, frames: int, batch: int) -> None:
    venue = SimVenue(autoplay=False, port=port, firehose=Firehose(frames, batch))
    await venue.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.read(1) else None)
    print(f"PORT {venue.port}", flush=True)
    try:
        await done.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
        await venue.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.fakes.sim.firehose")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.frames, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
