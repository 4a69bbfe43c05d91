"""Throwaway system users for the runas and ownership tests (root only).

Every test that needs a real account gets it from ``throwaway_user``: a unique name starting
with ``od``, created with useradd and removed (with its home directory and, for
``own_group=True``, its group) when the test ends. The suite's header says that it does this
(``tests/conftest.py``).

useradd, userdel, groupadd and groupdel lock ``/etc/passwd`` and ``/etc/group`` and give up at
once when another process holds the lock, which happens when tests run in parallel (pytest-xdist
workers, or another checkout's suite on the same machine): they are retried until the lock is
free.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

__all__ = ["throwaway_user"]

#: Exit codes of the shadow-utils tools meaning "could not lock or update the files" (useradd 1
#: "can't update password file", 10 "can't update group file"; groupadd 10; userdel 1 and 10).
_LOCK_CODES = {1, 10}
_LOCK_WAIT = 30.0


def _run_locked(args: list[str], *, check: bool = True) -> None:
    """Run a shadow-utils command, retrying while another process holds its lock files."""
    deadline = time.monotonic() + _LOCK_WAIT
    delay = 0.05
    while True:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        busy = done.returncode in _LOCK_CODES and (
            "lock" in done.stderr or "can't update" in done.stderr or "cannot" in done.stderr
        )
        if not busy or time.monotonic() > deadline:
            if check:
                raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


@contextmanager
def throwaway_user(
    prefix: str,
    *,
    home: bool | str = False,
    shell: str = "/bin/sh",
    own_group: bool = False,
) -> Iterator[str]:
    """A new user named ``<prefix><random>`` for the body of the ``with``, then removed.

    ``home``: True creates a home directory (``useradd --create-home``), removed afterwards; a
    string sets the home path without creating it (``{name}`` in it stands for the user's name);
    False leaves useradd's default path, uncreated.
    ``own_group``: create a group of the same name first and make it the primary group (removed
    afterwards). Skips the test unless it runs as root with useradd available.
    """
    if os.geteuid() != 0:
        pytest.skip("creating a throwaway user with useradd needs root")
    if shutil.which("useradd") is None:
        pytest.skip("creating a throwaway user needs useradd")
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    args = ["useradd", "--shell", shell]
    if home is True:
        args.append("--create-home")
    else:
        args.append("--no-create-home")
        if isinstance(home, str):
            args += ["--home-dir", home.format(name=name)]
    if own_group:
        _run_locked(["groupadd", name])
        args += ["--no-user-group", "--gid", name]
    try:
        _run_locked([*args, name])
        try:
            yield name
        finally:
            _run_locked(["userdel", *(["--remove"] if home is True else []), name], check=False)
    finally:
        if own_group:
            _run_locked(["groupdel", name], check=False)
