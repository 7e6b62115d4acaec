"""`python -m service` (and the `engagement-scoring` script): run the HTTP server."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from service import log_format
from service.app import create_app
from service.settings import Settings


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as invalid:
        # A bad setting is a clear error at start-up, never a retry loop.
        print(f"engagement-scoring: invalid configuration:\n{invalid}", file=sys.stderr)
        raise SystemExit(2) from None
    log_format.configure(settings.log_format, settings.log_level)
    app = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
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
    try:
        server.run()
    finally:
        if app.state.fatal is not None:
            print(f"engagement-scoring: cannot start: {app.state.fatal}", file=sys.stderr)
            os._exit(2)


if __name__ == "__main__":
    main()
