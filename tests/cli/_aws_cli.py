"""CLI test helpers: run ``opendeploy`` and ``aws`` as subprocesses in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from opendeploy.testing.server import RunningServer

BIN = Path(sys.executable).parent
OPENDEPLOY = BIN / "opendeploy"
AWS = BIN / "aws"
ROLE = "arn:aws:iam::123456789012:role/CodeDeploy"


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ without AWS_* / OPENDEPLOY_* settings, HOME (and XDG dirs) under ``home``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "OPENDEPLOY_", "XDG_")) and k != "HOME"
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), **extra)
    return env


def local_server_env(server: RunningServer, home: Path, **extra: str) -> dict[str, str]:
    """An environment in which only the server's data dir tells the CLI where and how to connect."""
    return clean_env(home, OPENDEPLOY_DATA_DIR=str(server.data_dir), **extra)


def shared_files_env(server: RunningServer, home: Path, **extra: str) -> dict[str, str]:
    """The aws-cli way: the server's credentials/config files as the shared files."""
    files = {
        "AWS_SHARED_CREDENTIALS_FILE": str(server.credentials_path),
        "AWS_CONFIG_FILE": str(server.config_path),
    }
    return clean_env(home, **{**files, **extra})


def run(
    program: Path, *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``program args`` and capture its output (never raises on a non-zero status)."""
    return subprocess.run(
        [str(program), *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
