"""A real nginx in front of the test backends of :mod:`tests.engine._haproxy` (tests only).

nginx runs in the foreground (``daemon off``) under a prefix in the test's directory, with its
pid file, logs and temporary paths there, and its upstream block in an include file that the
provider rewrites (``keepalive_timeout 0``: see the config). ``proxy_next_upstream off``: nginx
would otherwise retry a failed request on the next server and hide exactly what the
zero-downtime tests count.
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from opendeploy.testing.server import free_port
from tests.engine._haproxy import Backend


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: Path
    config: Path
    upstreams: Path
    upstream: str = "app"

    def declaration(self, servers: dict[str, str], **extra: object) -> str:
        """The YAML of target group ``web`` on this nginx (``servers``: host -> address)."""
        lines = [
            "target_groups:",
            "  web:",
            "    nginx:",
            f"      file: {self.upstreams}",
            f"      upstream: {self.upstream}",
            f"      config: {self.config}",
            f"      prefix: {self.prefix}",
            *[f"    {k}: {v}" for k, v in extra.items()],
            "    servers:",
            *[f"      {host}: {address}" for host, address in servers.items()],
        ]
        return "\n".join(lines) + "\n"

    def get(self, path: str = "/") -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            answer = conn.getresponse()
            return answer.status, answer.read().decode()
        finally:
            conn.close()


def address(backend: Backend) -> str:
    return f"127.0.0.1:{backend.port}"


@contextmanager
def running_nginx(tmp_path: Path, backends: list[Backend]) -> Iterator[Nginx]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), (
        "nginx is not installed (Debian's nginx-light; scripts/install installs it)"
    )
    prefix = tmp_path / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstreams = prefix / "upstreams.conf"
    servers = "\n".join(f"    server {address(b)};" for b in backends)
    upstreams.write_text(f"upstream app {{\n{servers}\n}}\n")
    config = prefix / "nginx.conf"
    config.write_text(
        f"""daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    # A reload closes the old workers' idle keep-alive client connections; a client that sends
    # on one at that moment sees it closed before nginx read its request (browsers and most
    # HTTP clients retry that). The load generator does not, so each request has its own
    # connection here: what the tests count is requests lost to a host leaving, not this race.
    keepalive_timeout 0;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    include {upstreams};
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream off;
        }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(config), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (prefix / "nginx.pid").exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            assert time.monotonic() < deadline, "nginx did not write its pid file"
            time.sleep(0.01)
        yield Nginx(process, port, prefix, config, upstreams)
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
