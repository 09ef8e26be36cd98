"""A bounded, durable, append-only FIFO of byte records on disk.

A sink writes here what its broker has not acknowledged, and replays it, oldest first, when the
broker returns (or when the daemon restarts). One global FIFO order keeps every account's alerts
in order without knowing about accounts.

On disk, a spool directory holds:

- ``<first-seq>.seg``: segment files of records ``<u32 length><u32 crc32(payload)><payload>``,
  little-endian; a segment rolls over past ``segment_bytes``;
- ``committed``: the sequence number of the oldest unacknowledged record (8 bytes + crc32),
  replaced atomically on every :meth:`Spool.ack`;
- ``lock``: an exclusive ``flock`` so two processes never share one spool.

Write failures (ENOSPC, EIO): :meth:`Spool.append` is all-or-nothing. If the write fails it
cuts the segment back to its last whole record and raises ``OSError`` with nothing accepted
(counters, overflow and order unchanged), so the caller still holds the records; it can
:meth:`Spool.hold` them, which keeps them in the in-memory overflow (not durable, a full
episode) until a later append or ack manages to write them. :meth:`Spool.ack` never fails for
want of space: moving the overflow to disk is retried later, and a ``committed`` offset that
cannot be replaced only means more duplicates after a restart.

Durability: with :attr:`FsyncPolicy.BATCH` (the default) each :meth:`Spool.append` call is one
``write`` plus one ``fsync``, so a record is on disk when ``append`` returns. A write-ahead
owner (the Kafka sink) appends with ``sync=False`` on its event loop, which is one ``write``:
the record is in the kernel's page cache, so it survives the process being killed at any
moment; :meth:`Spool.sync_job` then hands it a job that makes everything appended so far
durable (fsync of the segments and the directory), to run in a worker thread before the
records are sent. :meth:`Spool.ack` never waits for the disk: a ``committed`` offset or a
segment deletion lost to a power cut only replays acknowledged records (duplicates).
A record torn by a crash mid-write fails its length or CRC check; on open the spool truncates
the last segment at its last valid record and counts what it dropped
(:attr:`Spool.truncated_bytes`). A crash
between sending and :meth:`Spool.ack` replays records already delivered: delivery is
at-least-once and consumers drop duplicates by alert id.

Bounds: ``max_bytes`` / ``max_records`` bound the disk. Alerts are never dropped, so past the
bound records wait in an in-memory *overflow* (still FIFO, still counted in :meth:`depth`) and
``on_full`` is called once per episode so the engine can raise a ``spool_full`` alert; the
episode ends when the overflow has moved to disk and usage is back under half the bound.
Overflow records are not durable: a crash in that state loses them, which is why being full is
itself an alert. A clean :meth:`Spool.close` writes them to disk past the bound rather than
lose them.

The class is synchronous and not thread-safe: one owner calls it (inline, or through
``asyncio.to_thread`` one call at a time).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import tempfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<II")
_COMMITTED = struct.Struct("<QI")
_SUFFIX = ".seg"
# A length beyond this cannot be one of ours: it is a torn or corrupt header.
MAX_RECORD_BYTES = 16 * 1024 * 1024


class SpoolError(Exception):
    """The spool directory cannot be used (locked by another process, unreadable)."""


def check_directory(directory: Path) -> None:
    """What opening a spool in ``directory`` needs, without opening it (``run --check``): the
    directory can be created and written, and no other process holds its lock.

    Raises :class:`SpoolError` (locked) or ``OSError`` (cannot create or write).
    """
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory):
        pass
    with (directory / "lock").open("a+b") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SpoolError(f"{directory}: spool is in use by another process") from exc
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


class FsyncPolicy(StrEnum):
    BATCH = "batch"  # fsync once per append() / ack() call
    NEVER = "never"  # leave flushing to the OS: survives a process crash, not a power cut

    @classmethod
    def _missing_(cls, value: object) -> FsyncPolicy | None:
        # The config file has always accepted the member's name too ("BATCH").
        return cls.__members__.get(value) if isinstance(value, str) else None


@dataclass(slots=True)
class _Segment:
    base: int  # sequence number of its first record
    path: Path
    count: int  # valid records in the file
    size: int  # valid bytes in the file


@dataclass(slots=True)
class _Peeked:
    payload: bytes
    segment: int  # index into _segments, or -1 for an overflow record
    end: int  # byte offset just past the record in its segment


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _scan(data: bytes) -> tuple[int, int]:
    """Return (valid records, valid bytes) of a segment's contents."""
    off = count = 0
    while off + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, off)
        start = off + _HEADER.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            break
        if zlib.crc32(data[start : start + length]) != crc:
            break
        off = start + length
        count += 1
    return count, off


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_records: int | None = None,
        segment_bytes: int = 8 * 1024 * 1024,
        fsync: FsyncPolicy = FsyncPolicy.BATCH,
        on_full: Callable[[int], None] | None = None,
    ) -> None:
        if max_bytes <= 0 or (max_records is not None and max_records <= 0):
            raise ValueError("spool bounds must be positive")
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_records = max_records
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._batch_fsync = fsync is FsyncPolicy.BATCH
        self._on_full = on_full
        self._segments: list[_Segment] = []
        self._cursor = 0  # byte offset of the oldest unacked record in _segments[0]
        self._head = 0  # records of _segments[0] already acknowledged
        self._next_seq = 0  # sequence number the next record written gets
        self._disk_records = 0
        self._disk_bytes = 0
        self._overflow: deque[bytes] = deque()
        self._peeked: list[_Peeked] = []
        self._writer: int | None = None  # O_APPEND descriptor of the last segment
        self._unsynced = False  # records were written to the writer without an fsync
        self._dir_unsynced = False  # a segment was created without fsyncing the directory
        self._sync_fds: list[int] = []  # closed segments' descriptors that still need an fsync
        self._torn = False  # a failed write could not be cut back: start a new segment
        self._reader: tuple[int, BinaryIO] | None = None
        self._full = False
        self._disk_failed = False  # the overflow holds records a failed write could not store
        #: Torn or corrupt bytes cut off when the spool was opened.
        self.truncated_bytes = 0
        #: Records found on disk and not yet acknowledged when the spool was opened.
        self.recovered_records = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = (directory / "lock").open("a+b")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._lock.close()
            raise SpoolError(f"{directory}: spool is in use by another process") from exc
        self._recover()

    # -- opening -------------------------------------------------------------------------------

    def _read_committed(self) -> int:
        path = self.directory / "committed"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) == _COMMITTED.size:
            seq, crc = _COMMITTED.unpack(raw)
            if zlib.crc32(raw[:8]) == crc:
                return int(seq)
        # Replaying from the oldest segment only duplicates; it never loses.
        log.warning("spool %s: committed offset unreadable, replaying all", self.directory)
        return 0

    def _recover(self) -> None:
        committed = self._read_committed()
        self._next_seq = committed
        paths = sorted(
            (p for p in self.directory.iterdir() if p.suffix == _SUFFIX and p.stem.isdigit()),
            key=lambda p: int(p.stem),
        )
        for i, path in enumerate(paths):
            data = path.read_bytes()
            count, size = _scan(data)
            if size < len(data):
                self.truncated_bytes += len(data) - size
                if i == len(paths) - 1:
                    log.warning(
                        "spool %s: truncated %d torn bytes at the tail",
                        self.directory,
                        len(data) - size,
                    )
                else:
                    log.error(
                        "spool %s: segment %s corrupt after %d records; %d bytes unreadable",
                        self.directory,
                        path.name,
                        count,
                        len(data) - size,
                    )
                with path.open("r+b") as fh:
                    fh.truncate(size)
            base = int(path.stem)
            self._next_seq = max(self._next_seq, base + count)
            if base + count <= committed:
                path.unlink()
                continue
            self._segments.append(_Segment(base, path, count, size))
            skip = max(0, committed - base)
            if len(self._segments) == 1 and skip:
                # Step over records delivered before the last run stopped.
                off = 0
                for _ in range(skip):
                    (length, _crc) = _HEADER.unpack_from(data, off)
                    off += _HEADER.size + length
                self._cursor, self._head = off, skip
            self._disk_records += count - skip
            self._disk_bytes += size - (self._cursor if len(self._segments) == 1 else 0)
        self.recovered_records = self._disk_records
        if self.recovered_records:
            log.info("spool %s: %d records to replay", self.directory, self.recovered_records)

    # -- state ---------------------------------------------------------------------------------

    def depth(self) -> int:
        """Records accepted and not yet acknowledged: on disk plus in the overflow."""
        return self._disk_records + len(self._overflow)

    def disk_bytes(self) -> int:
        """Bytes of unacknowledged records on disk (what ``max_bytes`` bounds)."""
        return self._disk_bytes

    def overflow_depth(self) -> int:
        """Records waiting in memory because the disk bound was reached."""
        return len(self._overflow)

    @property
    def full(self) -> bool:
        """True from the first record that had to wait in memory until the episode ends."""
        return self._full

    @property
    def disk_failing(self) -> bool:
        """True while records a failed write could not store wait in the overflow."""
        return self._disk_failed

    def _fits(self, size: int, records: int, nbytes: int) -> bool:
        """Would a record of ``size`` bytes fit on a disk holding ``records``/``nbytes``?"""
        if self.max_records is not None and records >= self.max_records:
            return False
        # An empty spool takes any one record, so an oversized record cannot wedge it.
        return records == 0 or nbytes + size <= self.max_bytes

    # -- writing -------------------------------------------------------------------------------

    def append(self, records: Iterable[bytes], *, sync: bool = True) -> None:
        """Accept records in order: to disk while they fit, then to the in-memory overflow.

        All or nothing: on ``OSError`` (disk full, I/O error) no record was accepted. With
        ``sync=False`` the write is not fsynced here (see :meth:`sync_job`).
        """
        if self._disk_failed:
            self._move_overflow()  # the disk may have room again
        frames: list[bytes] = []
        spill: list[bytes] = []
        disk_records, disk_bytes = self._disk_records, self._disk_bytes
        for payload in records:
            if len(payload) > MAX_RECORD_BYTES:
                raise ValueError(f"spool record of {len(payload)} bytes exceeds the maximum")
            size = _HEADER.size + len(payload)
            if spill or self._overflow or not self._fits(size, disk_records, disk_bytes):
                spill.append(payload)
                continue
            frames.append(_frame(payload))
            disk_records += 1
            disk_bytes += size
        if frames:
            self._write(frames, sync=sync)
        # Counted only once the records are on disk: a failed write changes nothing.
        self._disk_records, self._disk_bytes = disk_records, disk_bytes
        self._overflow.extend(spill)
        if spill:
            self._start_full()

    def append_one(self, payload: bytes) -> None:
        """``append((payload,), sync=False)``, lean: the write-ahead owner calls it per alert,
        on its event loop, so the plain case (an open segment with room, a healthy disk, no
        overflow) is one frame and one ``write``; anything else takes :meth:`append`'s path."""
        size = _HEADER.size + len(payload)
        fd = self._writer
        if (
            fd is None
            or self._torn
            or self._disk_failed
            or self._overflow
            or size > MAX_RECORD_BYTES
            or self._segments[-1].size >= self._segment_bytes
            or self._disk_bytes + size > self.max_bytes
            or (self.max_records is not None and self._disk_records >= self.max_records)
        ):
            self.append((payload,), sync=False)
            return
        seg = self._segments[-1]
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        try:
            written = os.write(fd, frame)
            if written < size:  # unbuffered: a short write is not an error, just continue
                view = memoryview(frame)[written:]
                while view:
                    view = view[os.write(fd, view) :]
        except OSError:
            self._cut_back(fd, seg)
            raise
        self._unsynced = self._batch_fsync
        seg.count += 1
        seg.size += size
        self._next_seq += 1
        self._disk_records += 1
        self._disk_bytes += size

    def hold(self, records: Iterable[bytes]) -> None:
        """Keep records, in order, in the in-memory overflow only: for records an
        :meth:`append` failed to write. Not durable; it starts a full episode (``on_full``),
        and the next append or ack tries to write them to disk again."""
        before = len(self._overflow)
        self._overflow.extend(records)
        if len(self._overflow) > before:
            self._disk_failed = True
            self._start_full()

    def _start_full(self) -> None:
        if self._full:
            return
        self._full = True
        log.warning(
            "spool %s: full (%d bytes, %d records); alerts wait in memory",
            self.directory,
            self._disk_bytes,
            self._disk_records,
        )
        if self._on_full is not None:
            self._on_full(self.depth())

    def _write(self, frames: Sequence[bytes], *, sync: bool = True) -> None:
        """Write whole frames to the last segment, or raise ``OSError`` having written none."""
        blob = b"".join(frames)
        if self._torn or not self._segments or self._segments[-1].size >= self._segment_bytes:
            self._roll(sync=sync)
        seg = self._segments[-1]
        if self._writer is None:
            self._writer = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        fd = self._writer
        try:
            view = memoryview(blob)
            while view:  # unbuffered: a short write is not an error, just continue
                view = view[os.write(fd, view) :]
            if self._fsync is FsyncPolicy.BATCH:
                if sync:
                    os.fsync(fd)
                else:
                    self._unsynced = True
        except OSError:
            self._cut_back(fd, seg)
            raise
        seg.count += len(frames)
        seg.size += len(blob)
        self._next_seq += len(frames)

    def _cut_back(self, fd: int, seg: _Segment) -> None:
        """After a failed write: drop the part of it that reached the segment."""
        try:
            os.ftruncate(fd, seg.size)
        except OSError as exc:
            # Bytes past ``seg.size`` are never read (and are cut on the next open); the
            # next write starts a new segment so no record lands after them.
            log.error("spool %s: cannot cut back a failed write: %s", seg.path, exc.strerror)
            self._torn = True
            self._close_writer()

    def _close_writer(self) -> None:
        if self._writer is not None:
            fd, self._writer = self._writer, None
            if self._unsynced:
                # Written without an fsync: the next sync job fsyncs and closes it.
                self._sync_fds.append(fd)
                self._unsynced = False
                return
            with contextlib.suppress(OSError):
                os.close(fd)

    def _roll(self, *, sync: bool = True) -> None:
        self._close_writer()
        path = self.directory / f"{self._next_seq:020d}{_SUFFIX}"
        path.touch()
        if sync:
            self._fsync_dir()
        else:
            self._dir_unsynced = True
        self._segments.append(_Segment(self._next_seq, path, 0, 0))
        self._torn = False
        if len(self._segments) == 1:
            self._cursor = self._head = 0

    def _fsync_dir(self) -> None:
        if self._fsync is FsyncPolicy.BATCH:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def unsynced(self) -> bool:
        """Records were appended with ``sync=False`` and no sync job has covered them yet."""
        return self._fsync is FsyncPolicy.BATCH and bool(
            self._unsynced or self._dir_unsynced or self._sync_fds
        )

    def sync_job(self) -> Callable[[], None] | None:
        """A job making every record appended so far durable, or ``None`` if none is needed.

        Called by the owner; the job itself may run in a worker thread while the owner goes on
        appending: it owns its descriptors (a duplicate of the writer's, and those of segments
        closed since), so nothing the owner does afterwards can close them under it. Raises
        ``OSError`` if an fsync fails (the records may then not survive a power cut).
        """
        if not self.unsynced():
            return None
        fds, self._sync_fds = self._sync_fds, []
        if self._unsynced and self._writer is not None:
            fds.append(os.dup(self._writer))
        self._unsynced = False
        directory = self.directory if self._dir_unsynced else None
        self._dir_unsynced = False

        def job() -> None:
            try:
                for fd in fds:
                    os.fsync(fd)
                if directory is not None:
                    dir_fd = os.open(directory, os.O_RDONLY)
                    try:
                        os.fsync(dir_fd)
                    finally:
                        os.close(dir_fd)
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)

        return job

    # -- reading -------------------------------------------------------------------------------

    def peek(self, n: int) -> list[bytes]:
        """The oldest ``n`` unacknowledged records (fewer if the spool holds fewer)."""
        self._fill_peek(n)
        return [p.payload for p in self._peeked[:n]]

    def _fill_peek(self, n: int) -> None:
        if len(self._peeked) >= n:
            return
        if self._peeked and self._peeked[-1].segment < 0:
            seg_idx, off = len(self._segments), 0
        elif self._peeked:
            seg_idx, off = self._peeked[-1].segment, self._peeked[-1].end
        else:
            seg_idx, off = 0, self._cursor
        while len(self._peeked) < n and seg_idx < len(self._segments):
            seg = self._segments[seg_idx]
            if off >= seg.size:
                seg_idx, off = seg_idx + 1, 0
                continue
            fh = self._reader_for(seg_idx)
            fh.seek(off)
            chunk = fh.read(min(seg.size - off, 1 << 20))
            (first, _crc) = _HEADER.unpack_from(chunk, 0)
            if _HEADER.size + first > len(chunk):  # one record larger than a chunk
                chunk += fh.read(_HEADER.size + first - len(chunk))
            pos = 0
            while len(self._peeked) < n and pos + _HEADER.size <= len(chunk):
                (length, _crc) = _HEADER.unpack_from(chunk, pos)
                start = pos + _HEADER.size
                if start + length > len(chunk):
                    break
                pos = start + length
                self._peeked.append(_Peeked(chunk[start:pos], seg_idx, off + pos))
            off += pos
        taken = sum(1 for p in self._peeked if p.segment < 0)
        while len(self._peeked) < n and taken < len(self._overflow):
            self._peeked.append(_Peeked(self._overflow[taken], -1, 0))
            taken += 1

    def _reader_for(self, seg_idx: int) -> BinaryIO:
        if self._reader is not None and self._reader[0] == seg_idx:
            return self._reader[1]
        self._close_reader()
        fh = self._segments[seg_idx].path.open("rb")
        self._reader = (seg_idx, fh)
        return fh

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    def ack(self, n: int) -> None:
        """Forget the oldest ``n`` records: the broker has acknowledged them."""
        if n <= 0:
            return
        if n > self.depth():
            raise ValueError(f"ack({n}) beyond spool depth {self.depth()}")
        k = min(n, len(self._peeked))
        done, self._peeked = self._peeked[:k], self._peeked[k:]
        disk = [p for p in done if p.segment >= 0]
        overflow = k - len(disk)
        count = len(disk)
        nbytes = sum(_HEADER.size + len(p.payload) for p in disk)
        last_seg, last_end = (disk[-1].segment, disk[-1].end) if disk else (0, self._cursor)
        walked = walked_in_last = 0
        if n > k:
            # Beyond what was peeked (a write-ahead owner sends from memory and never peeks):
            # walk the record headers on disk, without reading the payloads into objects.
            if overflow:
                last_seg, last_end = len(self._segments), 0  # the peeked part reached memory
            walked, walked_bytes, end, walked_in_last = self._walk(n - k, last_seg, last_end)
            count += walked
            nbytes += walked_bytes
            overflow += n - k - walked
            if walked:
                last_seg, last_end = end
        for _ in range(overflow):
            self._overflow.popleft()
        if count:
            self._disk_records -= count
            self._disk_bytes -= nbytes
            in_last = walked_in_last + sum(1 for p in disk if p.segment == last_seg)
            self._advance(last_seg, last_end, in_last)
        self._move_overflow()
        try:
            self._write_committed()
        except OSError as exc:
            # The acknowledged records only replay (duplicates) after a restart.
            log.warning("spool %s: cannot record the committed offset: %s", self.directory, exc)
        if self._full and not self._overflow and self._disk_bytes <= self.max_bytes // 2:
            self._full = False
            log.info("spool %s: has room again", self.directory)

    def _walk(self, n: int, seg_idx: int, off: int) -> tuple[int, int, tuple[int, int], int]:
        """Step over up to ``n`` records on disk from ``off`` in segment ``seg_idx``: (records,
        bytes, (segment, offset) just past the last, records stepped over in that segment)."""
        count = nbytes = in_seg = end_in = 0
        end = (seg_idx, off)
        while count < n and seg_idx < len(self._segments):
            seg = self._segments[seg_idx]
            if off >= seg.size:
                seg_idx, off, in_seg = seg_idx + 1, 0, 0
                continue
            fh = self._reader_for(seg_idx)
            fh.seek(off)
            data = fh.read(min(seg.size - off, 1 << 20))
            pos = 0
            while count < n and pos + _HEADER.size <= len(data):
                (length, _crc) = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size + length
                count += 1
                in_seg += 1
            off += pos  # may be past this chunk (a long record): the next read starts there
            nbytes += pos
            end, end_in = (seg_idx, off), in_seg
        return count, nbytes, end, end_in

    def _advance(self, seg_idx: int, end: int, acked_in_seg: int) -> None:
        """Move the cursor past ``end`` in segment ``seg_idx``; delete segments left behind."""
        head = (self._head if seg_idx == 0 else 0) + acked_in_seg
        drop = seg_idx
        if end >= self._segments[seg_idx].size and (
            seg_idx < len(self._segments) - 1 or self._disk_records == 0
        ):
            drop, end, head = seg_idx + 1, 0, 0
        if drop:
            self._close_reader()
            if drop == len(self._segments):
                self._close_writer()
            for seg in self._segments[:drop]:
                with contextlib.suppress(FileNotFoundError):
                    seg.path.unlink()
            del self._segments[:drop]
            self._peeked = [
                _Peeked(p.payload, p.segment - drop if p.segment >= 0 else -1, p.end)
                for p in self._peeked
            ]
            # No directory fsync: a deletion lost to a power cut only replays acked records.
        self._cursor, self._head = end, head

    def _committed(self) -> int:
        return self._segments[0].base + self._head if self._segments else self._next_seq

    def _move_overflow(self) -> None:
        """Give overflow records their place on disk as room frees up (order is unchanged)."""
        frames: list[bytes] = []
        records, nbytes = self._disk_records, self._disk_bytes
        for payload in self._overflow:
            if not self._fits(_HEADER.size + len(payload), records, nbytes):
                break
            frames.append(_frame(payload))
            records += 1
            nbytes += _HEADER.size + len(payload)
        if not frames:
            return
        try:
            self._write(frames)
        except OSError as exc:
            # They stay in the overflow (still FIFO, still counted); a later call retries.
            if not self._disk_failed:
                log.warning("spool %s: overflow stays in memory: %s", self.directory, exc.strerror)
            self._disk_failed = True
            return
        if self._disk_failed:
            self._disk_failed = False
            log.info("spool %s: writing to disk again", self.directory)
        for _ in frames:
            self._overflow.popleft()
        self._disk_records, self._disk_bytes = records, nbytes
        # Records that moved to disk changed their position: re-read on the next peek.
        self._peeked = []

    def _write_committed(self) -> None:
        # Atomic (rename) but not fsynced: ack runs on the owner's event loop, and an offset
        # lost to a power cut (an older or unreadable ``committed``) only replays duplicates.
        raw = struct.pack("<Q", self._committed())
        tmp = self.directory / "committed.tmp"
        with tmp.open("wb") as fh:
            fh.write(raw + struct.pack("<I", zlib.crc32(raw)))
        tmp.replace(self.directory / "committed")

    def close(self) -> None:
        """Release files and the lock.

        Records still in the overflow are written past the bound first: at shutdown, keeping
        alerts beats keeping the disk bound. Only if that write fails are they lost (logged).
        """
        if self._overflow:
            n = len(self._overflow)
            try:
                frames = [_frame(p) for p in self._overflow]
                self._write(frames)
                self._disk_records += n
                self._disk_bytes += sum(len(f) for f in frames)
                self._overflow.clear()
                log.warning(
                    "spool %s: %d records beyond the bound written at shutdown", self.directory, n
                )
            except OSError as exc:
                log.error(
                    "spool %s: %d records beyond the bound lost at shutdown: %s",
                    self.directory,
                    n,
                    exc.strerror,
                )
        self._close_reader()
        self._close_writer()
        job = self.sync_job()
        if job is not None:
            try:
                job()  # shutdown: what was appended without an fsync gets one now
            except OSError as exc:
                log.error("spool %s: cannot fsync at shutdown: %s", self.directory, exc.strerror)
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
        self._lock.close()
