"""Snapshots written by a forked child: the pause is the fork, not the copy.

`fork()` gives the child a copy-on-write image of the whole state at one instant, with
the offsets it reflects; the child exports, encodes and writes it while the parent goes
on ingesting (the technique Redis uses for RDB snapshots). The child runs only
synchronous code, never the event loop or the Kafka connections, and leaves with
`os._exit`. Pages the parent changes meanwhile are copied by the kernel, so memory can
grow by what changes during one write.
"""

from __future__ import annotations

import gc
import os
import signal
from pathlib import Path
from typing import Any

import orjson

from service import snapshots
from service.partition_state import PartitionState

AVAILABLE = hasattr(os, "fork")


def write_partitions(states: list[PartitionState], directory: Path, keep: int
                     ) -> dict[str, Any]:
    """Writes one snapshot file per partition; the one place snapshots are made (the
    forked child calls it, and so does the in-process path)."""
    written = accounts = actors = 0
    for state in states:
        packed = list(state.packed_accounts())
        data = snapshots.encode(state.snapshot_header(), packed, state.actors.snapshot())
        snapshots.partition_store(directory, state.partition, keep).write(data)
        written += len(data)
        accounts += len(packed)
        actors += len(state.actors)
    return {"path": str(directory), "bytes": written, "accounts": accounts,
            "actors": actors, "partitions": sorted(state.partition for state in states)}


def start(states: list[PartitionState], directory: Path, keep: int) -> tuple[int, int]:
    """Forks the writer; returns its pid and the pipe to read its report from."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        _write_and_exit(states, directory, keep, write_fd)
    os.close(write_fd)
    return pid, read_fd


def wait(pid: int, read_fd: int) -> dict[str, Any]:
    """Blocks until the child is done (call it from a thread); returns its report."""
    chunks = []
    try:
        while chunk := os.read(read_fd, 65_536):
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if chunks:
        report: dict[str, Any] = orjson.loads(b"".join(chunks))
        return report
    return {"error": f"snapshot writer exited with status {os.waitstatus_to_exitcode(status)}"}


def _write_and_exit(states: list[PartitionState], directory: Path, keep: int,
                    write_fd: int) -> None:
    code = 1
    try:
        # A terminal's Ctrl-C reaches the whole process group; the parent decides when
        # to stop, and waits for this write.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gc.disable()
        report = write_partitions(states, directory, keep)
        code = 0
    except BaseException as error:  # the child must always reach os._exit
        report = {"error": repr(error)}
    try:
        os.write(write_fd, orjson.dumps(report))
    finally:
        os._exit(code)
