"""schemathesis against the running service's OpenAPI document: no request gets a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.events import followers
from tests.integration.conftest import ServiceProcess, produce

pytestmark = pytest.mark.integration


async def test_no_generated_request_gets_a_server_error(
    service: ServiceProcess, producer: AIOKafkaProducer
) -> None:
    service.extra_env["ENGAGEMENT_API_TOKEN"] = "fuzz-token"
    service.start()
    service.wait_ready()
    await produce(producer, service.topic, [followers("acc-1", 10, 0)])
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    for headers in ([], ["-H", "Authorization: Bearer fuzz-token"]):
        run = subprocess.run(
            [cli, "run", f"{service.url}/openapi.json", "--checks", "not_a_server_error",
             "--max-examples", "150", "--generation-deterministic", *headers],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert " passed" in run.stdout
