"""The Dockerfile's install steps, run outside Docker (no engine here): a clean venv,
`pip install .`, the console script, and a healthy service against the real broker."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, ServiceProcess

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
    service.command = [str(script)]
    service.extra_env["PATH"] = f"{venv / 'bin'}:{os.environ['PATH']}"
    service.start()
    service.wait_ready()
    assert service.terminate() == 0
