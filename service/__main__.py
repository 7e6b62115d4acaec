"""`python -m service` (and the `engagement-scoring` script): run the HTTP server."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from service import log_format
from service.app import create_app
from service.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    settings = Settings()
    log_format.configure(settings.log_format, settings.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handler that was there before it; make that handler end the process with code 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    server.run()


if __name__ == "__main__":
    main()
