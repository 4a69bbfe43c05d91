"""A loopback HTTP receiver for notification tests: records every POST and answers as told.

Each path has a script of answers, used in order (the last one repeats): ``200``, ``500``,
``"redirect"`` (302 to elsewhere), ``("sleep", s)`` (answer 200 after ``s`` seconds: a timeout
for a sender that waits less), ``"hold"`` (answer only after :meth:`Receiver.release`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = int | str | tuple[str, float]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.scripts: dict[str, list[Answer]] = {}
        self.cond = threading.Condition()
        self.released = threading.Event()
        self.url = ""

    def script(self, path: str, *answers: Answer) -> None:
        with self.cond:
            self.scripts[path] = list(answers)

    def release(self) -> None:
        self.released.set()

    def on(self, path: str) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path == path]

    def wait_for(
        self, check: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Wait (on the receiver's condition, no polling) until ``check(requests)`` holds."""
        with self.cond:
            if not self.cond.wait_for(lambda: check(list(self.requests)), timeout):
                raise AssertionError(
                    f"receiver: condition not met in {timeout} s; got "
                    f"{[(r.path, r.headers.get('X-OpenDeploy-Event')) for r in self.requests]}"
                )
            return list(self.requests)

    def _next(self, path: str) -> Answer:
        with self.cond:
            script = self.scripts.get(path) or [200]
            return script.pop(0) if len(script) > 1 else script[0]

    def _record(self, received: Received) -> None:
        with self.cond:
            self.requests.append(received)
            self.cond.notify_all()


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver._record(Received(self.path, dict(self.headers), body, time.monotonic()))
            answer = receiver._next(self.path)
            if answer == "hold":
                receiver.released.wait(60)
                answer = 200
            if isinstance(answer, tuple):
                time.sleep(answer[1])  # the slow endpoint itself
                answer = 200
            try:
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                assert isinstance(answer, int)
                payload = b"ok" if answer < 300 else b"receiver says no"
                self.send_response(answer)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the sender gave up (timeout) or died

    # The sender opens up to 8 connections at once; http.server's default backlog (5) would
    # drop some, for TCP to retry a second later.
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 128})
    server = server_class(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        server.shutdown()
        server.server_close()
