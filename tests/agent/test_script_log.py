from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from opendeploy.agent.script_log import TAIL_LIMIT, ScriptLog

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def test_entries_are_written_in_the_official_format(tmp_path: Path) -> None:
    path = tmp_path / "d-ABC" / "logs" / "scripts.log"
    log = ScriptLog(path)
    assert not path.parent.exists()  # created lazily

    log.event("BeforeInstall")
    log.script("scripts/a.sh")
    log.output("stdout", "hello\n")
    log.output("stderr", "oops\n")
    log.output("stdout", "no newline")

    lines = path.read_text().splitlines(keepends=True)
    patterns = [
        "LifecycleEvent - BeforeInstall\n",
        "Script - scripts/a.sh\n",
        r"\[stdout\]hello\n",
        r"\[stderr\]oops\n",
        r"\[stdout\]no newline",
    ]
    assert len(lines) == len(patterns)
    for line, pattern in zip(lines, patterns, strict=True):
        assert re.fullmatch(STAMP + pattern, line), line


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "scripts.log"
    path.write_text("earlier\n")
    ScriptLog(path).event("AfterInstall")
    assert path.read_text().startswith("earlier\n")
    assert path.read_text().endswith("LifecycleEvent - AfterInstall\n")


def test_tail_holds_entries_without_timestamps(tmp_path: Path) -> None:
    log = ScriptLog(tmp_path / "scripts.log")
    log.event("ApplicationStart")
    log.script("start.sh")
    log.output("stdout", "up\n")
    assert log.tail == "LifecycleEvent - ApplicationStart\nScript - start.sh\n[stdout]up\n"


def test_tail_is_bounded_and_drops_whole_entries_oldest_first(tmp_path: Path) -> None:
    log = ScriptLog(tmp_path / "scripts.log")
    for number in range(1000):
        log.output("stdout", f"line {number:04d}\n")
    tail = log.tail
    assert len(tail) <= TAIL_LIMIT == 4096
    entry = len("[stdout]line 0000\n")
    assert len(tail) > TAIL_LIMIT - entry  # a clean "last N", no entry lost to bad accounting
    assert tail.startswith("[stdout]line ")
    assert tail.endswith("[stdout]line 0999\n")


def test_a_single_huge_entry_keeps_its_last_characters(tmp_path: Path) -> None:
    log = ScriptLog(tmp_path / "scripts.log")
    log.output("stdout", "x" * 10_000 + "END\n")
    assert len(log.tail) == TAIL_LIMIT
    assert log.tail.endswith("xEND\n")
    log.output("stderr", "next\n")
    assert log.tail.endswith("[stderr]next\n")
    assert len(log.tail) <= TAIL_LIMIT


def test_unknown_stream_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stream: 'stdin'"):
        ScriptLog(tmp_path / "scripts.log").output("stdin", "x")


def test_entries_are_mirrored_into_the_deployments_log(tmp_path: Path) -> None:
    deployments_log = tmp_path / "deployment-logs" / "codedeploy-agent-deployments.log"
    log = ScriptLog(
        tmp_path / "scripts.log", deployments_log=deployments_log, deployment_id="d-ABCDEFGHI"
    )
    log.event("ValidateService")
    log.output("stdout", "  ok  \n")
    lines = deployments_log.read_text().splitlines()
    stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[d-ABCDEFGHI\]"
    assert re.fullmatch(stamp + "LifecycleEvent - ValidateService", lines[0])
    assert re.fullmatch(stamp + r"\[stdout\]  ok", lines[1])


def test_concurrent_writers_do_not_interleave_entries(tmp_path: Path) -> None:
    path = tmp_path / "scripts.log"
    log = ScriptLog(path)

    def write(stream: str) -> None:
        for number in range(300):
            log.output(stream, f"{stream} {number}\n")

    threads = [threading.Thread(target=write, args=(s,)) for s in ("stdout", "stderr")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text().splitlines()
    assert len(lines) == 600
    assert all(re.fullmatch(STAMP + r"\[(stdout|stderr)\](stdout|stderr) \d+", x) for x in lines)
