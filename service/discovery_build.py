"""A partition's first discovery index, scored by a forked child.

Re-scoring every account is what a build costs (~400 µs an account on a loaded machine,
`python -m bench.discovery --rebuild-accounts`): done on the event loop at the
refresher's tenth of its time, 1 M accounts would take over an hour. So a child forked
from the process scores them in a copy-on-write image of the engine at one instant, on
the other core, as snapshots are written (service/snapshot_child.py), and streams the
index entries back through a pipe; the parent only decodes them and loads the index
(~30 µs an account), a slice at a time. Accounts that change after the fork are noted
by the checkpoints and re-indexed after the load, as any change is.

The child runs only synchronous code, never the event loop or the Kafka connections,
and leaves with `os._exit`. Frames on the pipe: a 4-byte big-endian length, then a
msgpack list of [account_id, tier, credibility, confidence, followers, rate, topics].
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import signal
import struct
from collections.abc import Iterable

import msgpack

from service.engine import Engine
from service.engine.discovery import IndexEntry, entry_of

AVAILABLE = hasattr(os, "fork")
ROWS_PER_FRAME = 1_000
PIPE_BYTES = 1 << 20  # the child runs ahead by this much before it waits for the parent
_LENGTH = struct.Struct(">I")


class ScoringChild:
    """A forked child scoring `account_ids` of `engine` into index entries."""

    def __init__(self, engine: Engine, account_ids: Iterable[str]) -> None:
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        ids = list(account_ids)
        pid = os.fork()
        if pid == 0:  # the child
            os.close(read_fd)
            _score_and_exit(engine, ids, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid = pid
        self._fd: int | None = read_fd
        self._buffer = bytearray()
        self.done = False  # every entry received
        self.failed: str | None = None  # why the child's entries cannot be trusted

    def receive(self, most: int) -> list[tuple[str, IndexEntry]]:
        """The entries the child has sent since, up to about `most`; never waits. When
        the child has finished, `done` (or `failed`) is set."""
        entries: list[tuple[str, IndexEntry]] = []
        while len(entries) < most and self._fd is not None:
            frame = self._next_frame()
            if frame is None:
                break
            for account_id, tier, credibility, confidence, followers, rate, topics in (
                    msgpack.unpackb(frame)):
                entries.append((account_id, IndexEntry(
                    tier, credibility, confidence, followers, rate, tuple(topics))))
        return entries

    def _next_frame(self) -> bytes | None:
        buffer = self._buffer
        while True:
            if len(buffer) >= _LENGTH.size:
                (length,) = _LENGTH.unpack_from(buffer)
                if len(buffer) >= _LENGTH.size + length:
                    frame = bytes(buffer[_LENGTH.size:_LENGTH.size + length])
                    del buffer[:_LENGTH.size + length]
                    return frame
            assert self._fd is not None
            try:
                chunk = os.read(self._fd, PIPE_BYTES)
            except BlockingIOError:
                return None
            if not chunk:
                self._finish()
                return None
            buffer += chunk

    def _finish(self) -> None:
        self._close()
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0 or self._buffer:
            self.failed = f"the scoring child exited with status {code}"
        self.done = True

    def stop(self) -> None:
        """Ends the child, if it still runs (its partition is no longer followed)."""
        if self._fd is None:
            return
        self._close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _score_and_exit(engine: Engine, account_ids: list[str], write_fd: int) -> None:
    code = 1
    try:
        # A terminal's Ctrl-C reaches the whole process group; the parent ends this child.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gc.disable()
        rows: list[list[object]] = []
        for account_id in account_ids:
            score = engine.score(account_id)
            if score is None:
                continue
            entry = entry_of(engine, score)
            rows.append([account_id, entry.tier, entry.credibility, entry.confidence,
                         entry.followers, entry.engagement_rate, list(entry.topics)])
            if len(rows) == ROWS_PER_FRAME:
                _write_frame(write_fd, rows)
                rows = []
        if rows:
            _write_frame(write_fd, rows)
        code = 0
    except BaseException:  # the child must always reach os._exit
        code = 1
    finally:
        os._exit(code)


def _write_frame(write_fd: int, rows: list[list[object]]) -> None:
    packed = msgpack.packb(rows)
    data = memoryview(_LENGTH.pack(len(packed)) + packed)
    while data:
        written = os.write(write_fd, data)
        data = data[written:]
