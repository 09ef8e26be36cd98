"""The probe server under descriptor pressure, as measured in issue #11: a real server process
with the common 1024-descriptor limit, 2,000 slow clients, and /healthz probes among them.

Before the connection cap, 20 of 32 probes failed and asyncio logged "Too many open files"
52,658 times a minute.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import textwrap

import pytest

SERVER = textwrap.dedent(
    """
    import asyncio, logging, resource, sys
    from monitor.http import HttpServer

    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)

    async def main() -> None:
        server = HttpServer("127.0.0.1", 0, readiness=dict)
        await server.start()
        print(server.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        print(server.evicted, server.refused, flush=True)

    asyncio.run(main())
    """
)
SLOW = 2000
PROBES = 32


async def _probe(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5.0)
    writer.close()
    return data.split(b"\r\n", 1)[0]


@pytest.mark.integration
async def test_healthz_answers_through_2000_slow_clients() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < SLOW + 200:
        pytest.skip(f"this test needs {SLOW + 200} descriptors for its clients; hard limit {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, SLOW + 200), hard))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 30.0))
        slow = []
        answers: list[bytes] = []
        async with asyncio.timeout(60):  # about 1 s when healthy; a regression fails, not hangs
            for i in range(SLOW):
                slow.append(await asyncio.open_connection("127.0.0.1", port))
                if i % (SLOW // PROBES) == 0 and len(answers) < PROBES:
                    answers.append(await _probe(port))
            while len(answers) < PROBES:
                answers.append(await _probe(port))
        assert answers == [b"HTTP/1.1 200 OK"] * PROBES
        for _, writer in slow:
            writer.close()
        out, err = await asyncio.wait_for(proc.communicate(b""), 30.0)
        evicted, refused = map(int, out.split())
        # Every slow client past the 256 seats took the seat of an older one; none was refused.
        assert evicted >= SLOW - 256 and refused == 0
        assert err.count(b"Too many open files") <= 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
