"""`python -m service` (and the `engagement-scoring` script): run the HTTP server."""

from __future__ import annotations

import uvicorn

from service import log_format
from service.app import create_app
from service.settings import Settings


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
    server.run()


if __name__ == "__main__":
    main()
