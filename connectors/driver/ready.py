"""Hot path: take every message a websocket already holds without awaiting (the one place that
reads websockets' internals).

websockets (14+, asyncio) has no public non-blocking receive. Awaiting ``recv`` once per frame
costs more than parsing the frame, so after one ``recv`` the reader takes every complete
message already received in the same go, and the engine applies the run of marks at once. If a
websockets release moves the internals this reads, :func:`ready_taker` returns
:func:`take_nothing` (one frame per ``recv``, the public API: correct, slower) and says so in
the log; ``tests/test_driver_ready.py`` fails on the installed version instead of falling back
silently.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection
from websockets.frames import Opcode
from websockets.version import version as websockets_version

_LOG = logging.getLogger(__name__)

TakeReady = Callable[[list[bytes], int], None]
"""``take(out, limit)``: append the messages already received, never growing ``out`` past
``limit``."""


def take_nothing(out: list[bytes], limit: int) -> None:
    """The fallback taker: every message comes through ``recv``."""
    return None


def ready_taker(ws: ClientConnection) -> TakeReady:
    """A taker for ``ws``, reading its ``recv_messages`` (an ``Assembler``) whose
    ``frames.queue`` is a deque of received frames.

    Only complete, unfragmented text/binary messages are taken (a fragmented one, or anything
    odd, is left for ``recv``, which owns reassembly and errors), and the reader is resumed the
    way ``Assembler.get`` does after taking frames off the queue.
    """
    try:
        assembler = ws.recv_messages
        queue = assembler.frames.queue
        resume = assembler.maybe_resume
        assembler.get_in_progress  # noqa: B018 - read per take: must exist
    except AttributeError:
        queue = None
    if not isinstance(queue, collections.deque):
        _LOG.warning(
            "websockets %s: message queue not found; receiving one frame per await (slower)",
            websockets_version,
        )
        return take_nothing
    popleft = queue.popleft
    data_opcodes = (Opcode.TEXT, Opcode.BINARY)

    def take(out: list[bytes], limit: int) -> None:
        if not queue or assembler.get_in_progress:
            return
        room = limit - len(out)
        while queue and room > 0:
            frame = queue[0]
            if not frame.fin or frame.opcode not in data_opcodes:
                break
            popleft()
            data = frame.data
            out.append(data if type(data) is bytes else bytes(data))
            room -= 1
        resume()

    return take
