"""The durable spool: FIFO order, replay after reopen, torn tails, the full episode."""

from __future__ import annotations

import errno
import os
import tempfile
from collections import deque
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sinks.spool import FsyncPolicy, Spool, SpoolError


def rec(i: int) -> bytes:
    return f"alert-{i:05d}".encode()


def test_fifo_order_and_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([rec(i) for i in range(5)])
    spool.append([rec(5)])
    assert spool.depth() == 6
    assert spool.peek(3) == [rec(0), rec(1), rec(2)]
    assert spool.peek(3) == [rec(0), rec(1), rec(2)]  # peeking does not consume
    spool.ack(2)
    assert spool.peek(10) == [rec(i) for i in range(2, 6)]
    assert spool.disk_bytes() == 4 * (8 + len(rec(0)))
    spool.ack(4)
    assert spool.depth() == 0
    assert spool.peek(1) == []
    # Fully drained segments are deleted.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["committed", "lock"]
    spool.close()


def test_replay_after_reopen_skips_acknowledged(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    spool.append([rec(i) for i in range(10)])
    spool.append([rec(i) for i in range(10, 20)])
    spool.ack(7)
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert again.recovered_records == 13
    assert again.depth() == 13
    assert again.peek(100) == [rec(i) for i in range(7, 20)]
    again.append([rec(20)])
    again.ack(5)
    again.close()
    third = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert third.peek(100) == [rec(i) for i in range(12, 21)]
    third.close()


def test_second_process_is_refused(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, max_bytes=1024)
    spool.close()


@pytest.mark.parametrize("cut", [1, 5, 8, 12])
def test_torn_tail_is_truncated_and_counted(tmp_path: Path, cut: int) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([rec(0), rec(1), rec(2)])
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    size = segment.stat().st_size
    # A crash in the middle of writing the last record: only part of it reached the disk.
    with segment.open("r+b") as fh:
        fh.truncate(size - cut)
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.truncated_bytes == (8 + len(rec(2))) - cut
    assert reopened.peek(10) == [rec(0), rec(1)]
    reopened.append([rec(3)])
    assert reopened.peek(10) == [rec(0), rec(1), rec(3)]
    reopened.close()


def test_corrupt_crc_in_tail_is_truncated(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([rec(0), rec(1)])
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.truncated_bytes == 8 + len(rec(1))
    assert reopened.peek(10) == [rec(0)]
    reopened.close()


def test_full_spills_to_memory_calls_back_once_and_drains_in_order(tmp_path: Path) -> None:
    calls: list[int] = []
    size = 8 + len(rec(0))
    spool = Spool(tmp_path, max_bytes=3 * size, on_full=calls.append)
    spool.append([rec(0), rec(1), rec(2), rec(3)])
    assert spool.full
    assert calls == [4]
    assert spool.overflow_depth() == 1
    spool.append([rec(4)])
    assert calls == [4]  # once per episode
    assert spool.depth() == 5
    assert spool.disk_bytes() == 3 * size
    assert spool.peek(5) == [rec(i) for i in range(5)]
    spool.ack(1)  # room for one: rec(3) moves to disk, rec(4) still waits
    assert spool.overflow_depth() == 1
    assert spool.full
    spool.ack(3)
    assert spool.overflow_depth() == 0
    assert not spool.full  # one record on disk: under half the bound
    assert spool.peek(5) == [rec(4)]
    spool.append([rec(i) for i in range(5, 9)])
    assert calls == [4, 5]  # a new episode
    spool.close()


def test_close_writes_the_overflow_past_the_bound(tmp_path: Path) -> None:
    size = 8 + len(rec(0))
    spool = Spool(tmp_path, max_bytes=2 * size)
    spool.append([rec(i) for i in range(5)])
    assert spool.overflow_depth() == 3
    spool.close()
    again = Spool(tmp_path, max_bytes=2 * size)
    assert again.peek(10) == [rec(i) for i in range(5)]
    assert again.disk_bytes() == 5 * size
    again.ack(5)
    assert again.depth() == 0
    again.close()


def test_record_count_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, max_records=2)
    spool.append([rec(0), rec(1), rec(2)])
    assert spool.overflow_depth() == 1
    spool.close()


def test_fsync_never_still_persists_on_close(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, fsync=FsyncPolicy.NEVER)
    spool.append([rec(0)])
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert again.peek(2) == [rec(0)]
    again.close()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(min_value=0, max_value=7)),
        st.tuples(st.just("ack"), st.integers(min_value=0, max_value=9)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, seg=st.integers(min_value=16, max_value=200), cap=st.integers(30, 400))
def test_any_append_ack_sequence_keeps_order_and_loses_nothing(
    ops: list[tuple[str, int]], seg: int, cap: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)

        def open_spool() -> Spool:
            return Spool(path, max_bytes=cap, segment_bytes=seg, fsync=FsyncPolicy.NEVER)

        spool = open_spool()
        model: deque[bytes] = deque()
        counter = 0
        allowance = cap
        for op, n in ops:
            if op == "append":
                batch = [rec(counter + i) for i in range(n)]
                counter += n
                spool.append(batch)
                model.extend(batch)
            elif op == "ack":
                k = min(n, len(model))
                # Acks after a full peek (a replay), a partial one, or none at all (a
                # write-ahead sender that sends from memory): the spool walks what it did not read.
                seen = (k, k // 2, 0)[n % 3]
                assert spool.peek(seen) == [model[i] for i in range(seen)]
                spool.ack(k)
                for _ in range(k):
                    model.popleft()
            else:
                # A clean close writes even the overflow: nothing is lost across a restart.
                spool.close()
                spool = open_spool()
            assert spool.depth() == len(model)
            assert spool.peek(len(model) + 1) == list(model)
            on_disk = len(model) - spool.overflow_depth()
            assert spool.disk_bytes() == sum(8 + len(model[i]) for i in range(on_disk))
            if op == "reopen":
                allowance = max(cap, spool.disk_bytes())  # close may write past the bound
            assert on_disk <= 1 or spool.disk_bytes() <= allowance
        spool.close()


class _FailingWrites:
    """``os.write`` for the spool: writes ``allow`` bytes of the next call, then ENOSPC."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, allow: int = 0) -> None:
        self.allow = allow
        self.on = True
        self._real = os.write
        monkeypatch.setattr("monitor.sinks.spool.os.write", self)

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if not self.on:
            return self._real(fd, data)
        if self.allow:
            n, self.allow = self._real(fd, bytes(data[: self.allow])), 0
            return n
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("allow", [0, 5, 23])
def test_failed_write_accepts_nothing_and_cuts_the_torn_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allow: int
) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([rec(0)])
    fail = _FailingWrites(monkeypatch, allow)
    with pytest.raises(OSError) as err:
        spool.append([rec(1), rec(2)])
    assert err.value.errno == errno.ENOSPC
    # Nothing was accepted: the counters agree with what can be read.
    assert spool.depth() == 1
    assert spool.disk_bytes() == 8 + len(rec(0))
    assert spool.peek(3) == [rec(0)]
    fail.on = False
    spool.append([rec(1), rec(2)])
    assert spool.peek(5) == [rec(0), rec(1), rec(2)]
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert again.truncated_bytes == 0  # the partial write was cut back at once
    assert again.peek(5) == [rec(0), rec(1), rec(2)]
    again.close()


def test_failed_write_past_the_bound_leaves_no_overflow_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 8 + len(rec(0))
    spool = Spool(tmp_path, max_bytes=2 * size)
    fail = _FailingWrites(monkeypatch)
    with pytest.raises(OSError):
        spool.append([rec(i) for i in range(4)])  # 2 to disk, 2 to the overflow
    assert (spool.depth(), spool.overflow_depth(), spool.full) == (0, 0, False)
    assert spool.peek(4) == []
    fail.on = False
    spool.close()


def test_ack_survives_a_full_disk_and_keeps_the_overflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 8 + len(rec(0))
    spool = Spool(tmp_path, max_bytes=2 * size)
    spool.append([rec(i) for i in range(4)])
    fail = _FailingWrites(monkeypatch)
    spool.ack(1)  # moving rec(2) to disk fails: it stays in memory, in order
    assert spool.depth() == 3
    assert spool.overflow_depth() == 2
    assert spool.peek(3) == [rec(1), rec(2), rec(3)]
    fail.on = False
    spool.ack(1)
    assert spool.overflow_depth() == 0
    assert spool.peek(3) == [rec(2), rec(3)]
    spool.close()


def test_held_records_stay_in_order_and_reach_the_disk_when_it_has_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    spool = Spool(tmp_path, max_bytes=1 << 20, on_full=calls.append)
    spool.append([rec(0)])
    fail = _FailingWrites(monkeypatch)
    batch = [rec(1), rec(2)]
    with pytest.raises(OSError):
        spool.append(batch)
    spool.hold(batch)
    assert spool.full
    assert calls == [3]
    spool.append([rec(3)])  # the disk is still full: behind the held ones, in memory
    assert spool.peek(5) == [rec(0), rec(1), rec(2), rec(3)]
    assert spool.overflow_depth() == 3
    fail.on = False
    spool.append([rec(4)])  # room again: the held records go first
    assert spool.overflow_depth() == 0
    spool.close()
    again = Spool(tmp_path, max_bytes=1 << 20)
    assert again.peek(6) == [rec(i) for i in range(5)]
    again.close()


def test_write_ahead_appends_are_synced_by_a_job_that_owns_its_descriptors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr("monitor.sinks.spool.os.fsync", fsync)
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert spool.sync_job() is None  # nothing appended yet
    spool.append_one(rec(0))
    spool.append((rec(1), rec(2)), sync=False)  # rolls past 64 bytes: a new segment
    assert synced == []  # no fsync on the owner's path
    assert spool.unsynced()
    job = spool.sync_job()
    assert job is not None and not spool.unsynced()
    spool.append_one(rec(3))  # the owner goes on appending while the job runs elsewhere
    job()
    assert len(synced) >= 2  # the closed segment and the directory (and the writer's dup)
    assert spool.unsynced()  # rec(3) came after the job was made
    spool.close()  # syncs the rest
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert reopened.peek(10) == [rec(i) for i in range(4)]
    reopened.ack(4)  # without peeking past what it read: the walk finds the same records
    assert reopened.depth() == 0
    reopened.close()


def test_fsync_never_makes_no_sync_job(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, fsync=FsyncPolicy.NEVER)
    spool.append_one(rec(0))
    assert not spool.unsynced() and spool.sync_job() is None
    spool.close()
