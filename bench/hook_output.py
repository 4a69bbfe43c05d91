"""Hook output speed: lines per second from a script's stdout to ``scripts.log``.

Runs one hook script that prints N lines of 80 characters (``yes | head``) through
``run_scripts``, the code both the agent and ``opendeploy local`` run, with ``scripts.log`` and the
deployments log both written (``enable_deployments_log``, the default) and an ``on_output``
callback that counts lines, or with ``--agent`` the agent's own (``OutputStreamer``, batching
lines for PostHostCommandUpdate; its requests go nowhere here). Prints lines/s and MB/s per run
and checks every line arrived in both logs. Issue 24 measured about 12,000 lines/s (262,144
lines in 21 s) when every line reopened both files.

    python bench/hook_output.py [--lines 262144] [--runs 3] [--agent] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _common import header, work_dir

from opendeploy.agent.hooks import HookSettings, run_scripts
from opendeploy.agent.script_log import ScriptLog
from opendeploy.agent.updates import OutputStreamer
from opendeploy.appspec.model import Script

LINE = "x" * 79  # + "\n" = 80 bytes


def run_once(directory: Path, lines: int, agent: bool) -> tuple[float, int]:
    archive = directory / "deployment-archive"
    archive.mkdir(parents=True, exist_ok=True)
    script = archive / "chatty.sh"
    script.write_text(f"#!/bin/sh\nyes {LINE} | head -n {lines}\n")
    script.chmod(0o755)
    log = ScriptLog(
        directory / "logs" / "scripts.log",
        deployments_log=directory / "deployment-logs" / "codedeploy-agent-deployments.log",
        deployment_id="d-BENCH0001",
    )
    seen = 0

    def on_output(stream: str, line: str) -> None:
        nonlocal seen
        seen += 1

    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        callback: Callable[[str, str], None] = on_output
        if agent:
            streamer = stack.enter_context(OutputStreamer(lambda payload: None))

            def callback(stream: str, line: str) -> None:
                on_output(stream, line)
                streamer(stream, line)

        run_scripts(
            [Script("chatty.sh", timeout=3600)],
            event="ApplicationStart",
            archive_dir=archive,
            env={},
            script_log=log,
            on_output=callback,
            settings=HookSettings(),
        )
    elapsed = time.perf_counter() - started
    with open(directory / "logs" / "scripts.log", "rb") as handle:
        logged = sum(1 for line in handle if b"[stdout]" in line)
    with open(directory / "deployment-logs" / "codedeploy-agent-deployments.log", "rb") as handle:
        mirrored = sum(1 for line in handle if b"[stdout]" in line)
    if not seen == logged == mirrored == lines:
        sys.exit(f"lost lines: callback {seen}, scripts.log {logged}, deployments log {mirrored}")
    return elapsed, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=262_144)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--agent", action="store_true", help="stream output as the agent does")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    via = " and the agent's OutputStreamer" if args.agent else ""
    header(f"hook output: {args.lines} lines of 80 bytes through run_scripts{via}")
    rates = []
    with work_dir(args.keep) as base:
        for index in range(args.runs):
            elapsed, lines = run_once(base / f"run{index}", args.lines, args.agent)
            rates.append(lines / elapsed)
            print(
                f"run {index + 1}: {elapsed:.2f} s, {lines / elapsed:,.0f} lines/s, "
                f"{lines * 80 / elapsed / 1e6:.1f} MB/s"
            )
    print(f"median {statistics.median(rates):,.0f} lines/s")


if __name__ == "__main__":
    main()
