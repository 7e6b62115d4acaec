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
from typing import Any

import orjson

from service import snapshots
from service.engine import Engine
from service.engine.persistence import export_accounts, export_partitions

AVAILABLE = hasattr(os, "fork")


def start(engine: Engine, offsets: dict[int, int], store: snapshots.SnapshotStore
          ) -> tuple[int, int]:
    """Forks the writer; returns its pid and the pipe to read its report from."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        _write_and_exit(engine, offsets, store, write_fd)
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


def _write_and_exit(engine: Engine, offsets: dict[int, int], store: snapshots.SnapshotStore,
                    write_fd: int) -> None:
    code = 1
    try:
        # A terminal's Ctrl-C reaches the whole process group; the parent decides when
        # to stop, and waits for this write.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        gc.disable()
        partitions = export_partitions(engine)
        accounts = list(export_accounts(engine))
        data = snapshots.encode(offsets, partitions, accounts, engine.changes)
        path = store.write(data)
        report = {"path": str(path), "bytes": len(data), "accounts": len(accounts)}
        code = 0
    except BaseException as error:  # the child must always reach os._exit
        report = {"error": repr(error)}
    try:
        os.write(write_fd, orjson.dumps(report))
    finally:
        os._exit(code)
