"""The server's peak memory under unsigned 300 MiB requests (memory spent before authentication).

A real ``opendeploy server`` process; for each route that takes a body (awsJson ``POST /``,
the CBOR route, an S3 upload to the bundle store, unsigned and with a forged S3 signature), one
request of ``--mib`` MiB with a Content-Length and one without (chunked). Prints the status each
got and the growth of the server's peak resident memory (``VmHWM``) over its value before the
first request.

    python bench/preauth_memory.py [--mib 300]

Target: under +32 MiB.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import header, work_dir

from opendeploy.testing.server import running_server

TARGET_MIB = 32


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _chunks(total: int) -> Iterator[bytes]:
    chunk = b"x" * (1 << 20)
    for _ in range(total >> 20):
        yield chunk


def _forged_s3() -> dict[str, str]:
    """Headers that claim an S3 signature by an unknown key (so the S3 front takes it)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=AKIAUNKNOWNKEY000000/{stamp[:8]}/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            f"Signature={'0' * 64}"
        ),
        "x-amz-date": stamp,
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=300)
    args = parser.parse_args()
    size = args.mib << 20
    header(f"unsigned {args.mib} MiB requests: the server's peak memory")
    with work_dir() as root, running_server(root / "server") as server:
        server.client("s3").create_bucket(Bucket="preauth")
        pid = server.process.pid
        base = _peak_rss(pid)
        print(f"server peak RSS before: {base / 2**20:.1f} MiB")
        routes: tuple[tuple[str, str, str, dict[str, str]], ...] = (
            (
                "awsJson POST /",
                "POST",
                f"{server.endpoint}/",
                {"X-Amz-Target": "CodeDeploy_20141006.ListApplications"},
            ),
            (
                "CBOR POST",
                "POST",
                f"{server.endpoint}/service/CodeDeploy_20141006/operation/ListApplications",
                {"Content-Type": "application/cbor"},
            ),
            ("S3 PutObject", "PUT", f"{server.endpoint}/preauth/big.zip", {}),
            ("S3, forged", "PUT", f"{server.endpoint}/preauth/big.zip", _forged_s3()),
        )
        worst = 0
        with httpx.Client(timeout=300) as http:
            for name, method, url, headers in routes:
                for with_length in (True, False):
                    sent = dict(headers)
                    if with_length:
                        sent["Content-Length"] = str(size)
                    started = time.perf_counter()
                    response = http.request(method, url, content=_chunks(size), headers=sent)
                    elapsed = time.perf_counter() - started
                    growth = _peak_rss(pid) - base
                    worst = max(worst, growth)
                    print(
                        f"{name:16} {'Content-Length' if with_length else 'chunked':14} "
                        f"-> {response.status_code} in {elapsed:.2f} s; "
                        f"peak +{growth / 2**20:.1f} MiB"
                    )
        verdict = "met" if worst < TARGET_MIB << 20 else "NOT met"
        print(
            f"worst peak growth: +{worst / 2**20:.1f} MiB (target < +{TARGET_MIB} MiB: {verdict})"
        )


if __name__ == "__main__":
    main()
