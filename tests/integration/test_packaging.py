"""The Dockerfile's install steps, run outside Docker (no engine here): a clean venv,
`pip install .`, the console script, and a healthy service against the real broker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import BOOTSTRAP, REPO, ServiceProcess

pytestmark = pytest.mark.integration


def test_dockerfile_install_steps_give_a_working_console_script(
    service: ServiceProcess, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):  # what the Dockerfile copies
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "service", source / "service",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)], check=True)
    script = venv / "bin" / "engagement-scoring"
    assert script.exists()
    env = {**service.env(), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "ENGAGEMENT_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP}
    process = subprocess.Popen([str(script)], env=env, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail("installed service never became ready")
        process.terminate()
        assert process.wait(30) == 0
    finally:
        process.kill()
