"""A profile of the cold takeover: `bench.cluster`'s failover without a standby, with
py-spy attached to the surviving instance the moment the other one dies (the group
notices 4-6 s later, so the whole restore is in the profile).

    python -m bench.profile_takeover [--accounts 1000000] [--seconds 14] --output x.raw

The instances run the `service` of the checkout that `bench.cluster` comes from; for
another build, run this file by path from that checkout with `PYTHONPATH` set to it
(`cd <checkout> && PYTHONPATH=. python /path/to/bench/profile_takeover.py ...`). The
output is py-spy's raw (collapsed) format, one stack per line with its sample count; the
failover's figures go to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path


def _service_children() -> list[int]:
    """This process's children that run `python -m service` (the bench's instances)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (proc / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"-m\x00service" in command:
            found.append(int(proc.name))
    return found


def _profile_survivor(pyspy: str, output: Path, seconds: int) -> None:
    both: list[int] = []
    while True:
        running = _service_children()
        if len(running) == 2:
            both = running
        elif len(both) == 2 and len(running) == 1:
            subprocess.run([pyspy, "record", "-p", str(running[0]), "--rate", "250",
                            "--duration", str(seconds), "--format", "raw",
                            "-o", str(output)], capture_output=True, check=False)
            return
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=14, help="how long py-spy samples")
    parser.add_argument("--output", type=Path, required=True)
    arguments = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    threading.Thread(target=_profile_survivor, daemon=True,
                     args=(pyspy, arguments.output, arguments.seconds)).start()
    from bench import cluster

    print(json.dumps(cluster.failover_and_queries(arguments.accounts, 0)))
    deadline = time.monotonic() + arguments.seconds + 5
    while not arguments.output.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


if __name__ == "__main__":
    main()
