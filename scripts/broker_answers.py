"""Exit 0 if the configured Kafka bootstrap server accepts a TCP connection."""

from __future__ import annotations

import socket
import sys

from service.settings import Settings


def main() -> int:
    for address in Settings().kafka_bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=1.0):
                return 0
        except OSError:
            continue
    return 1


if __name__ == "__main__":
    sys.exit(main())
