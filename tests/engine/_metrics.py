"""Real metric servers for the alarm tests: VictoriaMetrics (pushed samples) and vmalert.

Debian's ``victoria-metrics`` package ships both binaries (scripts/install installs it). Each
runs as its own process on a free loopback port and is killed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.revisions.servers import _process, free_port


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is missing: install Debian's victoria-metrics package "
            "(apt-get install victoria-metrics)"
        )
    return path


class VictoriaMetrics:
    """A VictoriaMetrics server taking pushed samples in the Prometheus text format."""

    def __init__(self, url: str) -> None:
        self.url = url

    def push(self, metric: str, value: float, timeout: float = 15.0) -> None:
        """Push ``metric value`` now and return once a query answers it (VictoriaMetrics
        makes pushed data readable after a flush; the first sample of a series can take a
        second push)."""
        deadline = time.monotonic() + timeout
        while True:
            stamp = int(time.time() * 1000)
            body = f"{metric} {value} {stamp}\n".encode()
            urllib.request.urlopen(
                urllib.request.Request(f"{self.url}/api/v1/import/prometheus", data=body),
                timeout=5,
            ).close()
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=5).close()
            for _ in range(5):
                if value in self.values(metric):
                    return
                time.sleep(0.1)  # the flush has no event to wait on
            assert time.monotonic() < deadline, f"{metric} {value} never became readable"

    def values(self, expression: str) -> list[float]:
        query = urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as r:
            data = json.loads(r.read())["data"]
        return [float(s["value"][1]) for s in data["result"]]


@contextlib.contextmanager
def victoria_metrics(tmp: Path) -> Iterator[VictoriaMetrics]:
    port = free_port()
    args = [
        _binary("victoria-metrics"),
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={tmp / 'vm'}",
        "-search.latencyOffset=0s",
        "-search.disableCache",
    ]
    with _process(args, port):
        yield VictoriaMetrics(f"http://127.0.0.1:{port}")


@contextlib.contextmanager
def vmalert(tmp: Path, datasource: str, rules: str) -> Iterator[str]:
    """vmalert evaluating ``rules`` every second against ``datasource``; yields its URL (it
    answers ``/api/v1/alerts`` as Prometheus does). Its notifier goes nowhere: the tests read
    its alerts over the API."""
    path = tmp / "rules.yml"
    path.write_text(rules)
    port, nowhere = free_port(), free_port()
    args = [
        _binary("vmalert"),
        f"-rule={path}",
        f"-datasource.url={datasource}",
        f"-notifier.url=http://127.0.0.1:{nowhere}",
        "-evaluationInterval=1s",
        f"-httpListenAddr=127.0.0.1:{port}",
    ]
    with _process(args, port):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def alertmanager(tmp: Path, webhook_url: str, token: str) -> Iterator[str]:
    """Debian's Alertmanager delivering every alert at once (``group_wait: 0s``) to
    ``webhook_url`` with ``Authorization: Bearer <token>``; yields its URL."""
    config = tmp / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1s\n"
        "  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n"
        f"      - url: {webhook_url}\n        send_resolved: true\n"
        f"        http_config: {{authorization: {{credentials: {token}}}}}\n"
    )
    port = free_port()
    binary = shutil.which("prometheus-alertmanager")
    if binary is None:
        raise RuntimeError(
            "prometheus-alertmanager is missing: install Debian's prometheus-alertmanager package"
        )
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp / 'alertmanager'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with _process(args, port):
        yield f"http://127.0.0.1:{port}"


def raise_alert(alertmanager_url: str, labels: dict[str, str]) -> None:
    """Hand Alertmanager a firing alert, as Prometheus or vmalert do (``/api/v2/alerts``)."""
    body = json.dumps([{"labels": labels}]).encode()
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()
