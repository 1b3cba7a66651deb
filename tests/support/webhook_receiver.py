"""A loopback stand-in for a business's webhook endpoint, for offline delivery tests.

It is a real HTTP server on 127.0.0.1 (a port of its own), so the real client path runs:
urllib's request, the socket timeouts, what a dropped connection or a non-HTTP answer
does to it. It checks every request as docs/webhooks.md tells a business to: the
signature, with ``delivery.verify_signature`` (the reference implementation) against the
receiver's own clock, and answers 400 when it does not verify.

It can be told to fail the way receivers and the paths to them fail: ``script(...)``
queues answers for the next requests (an HTTP status, ``HANG`` until the client gives
up, ``DROP`` the connection, ``GARBAGE`` that is not HTTP, a redirect); once the script
is used up every request is accepted with 200. Every request is recorded, whatever it
was answered, with its headers, body, parsed payload and whether its signature held;
``wait_for(n)`` waits for the n-th to arrive (for a test that must act while one hangs).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from delivery import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass(frozen=True)
class Answer:
    """How to answer one request."""

    kind: str  # "status", "hang", "drop", "garbage"
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def http(cls, status: int, body: str = "", **headers: str) -> Answer:
        return cls(
            "status", status, body, tuple((k.replace("_", "-"), v) for k, v in headers.items())
        )


ACCEPT = Answer("status", 200, '{"ok":true}')
HANG = Answer("hang")  # read the request, never answer (until the receiver closes)
DROP = Answer("drop")  # read the request, close the connection without a word
GARBAGE = Answer("garbage")  # answer bytes that are not HTTP


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names lower-cased
    body: bytes
    signature_ok: bool
    answer: Answer
    payload: Any = field(default=None)  # the parsed JSON body, None if it was not JSON

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get(IDEMPOTENCY_HEADER.lower())

    @property
    def accepted(self) -> bool:
        return self.answer.kind == "status" and 200 <= self.answer.status < 300


class WebhookReceiver:
    def __init__(
        self,
        secret: str,
        *,
        clock: Callable[[], float] = time.time,
        tolerance_s: float = 300.0,
    ) -> None:
        self.secret = secret
        self.clock = clock
        self.tolerance_s = tolerance_s
        self.received: list[Received] = []
        self._script: deque[Answer] = deque()
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/phone?token=query-token"

    def script(self, *answers: Answer) -> None:
        """Answer the next requests so, in order; then accept."""
        with self._changed:
            self._script.extend(answers)

    def fail_first(self, n: int, answer: Answer) -> None:
        self.script(*[answer] * n)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if r.accepted]

    def keys(self) -> list[str | None]:
        return [r.idempotency_key for r in self.received]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests have arrived (the bound only turns a hang into
        a failure); the requests so far."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.received) >= count, timeout_s):
                raise AssertionError(
                    f"the webhook received {len(self.received)} requests, not {count}, "
                    f"within {timeout_s} s"
                )
            return list(self.received)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()  # hanging handlers end
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def _next_answer(self) -> Answer:
        with self._changed:
            return self._script.popleft() if self._script else ACCEPT

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                signature_ok = verify_signature(
                    receiver.secret,
                    headers.get(SIGNATURE_HEADER.lower(), ""),
                    body,
                    receiver.tolerance_s,
                    receiver.clock(),
                )
                answer = (
                    receiver._next_answer() if signature_ok else Answer.http(400, "bad signature")
                )
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                receiver._record(Received(headers, body, signature_ok, answer, payload))
                self._answer(answer)

            def do_GET(self) -> None:  # a client that followed a redirect would come here
                receiver._record(Received({}, b"", False, Answer.http(405), None))
                self._answer(Answer.http(405))

            def _answer(self, answer: Answer) -> None:
                if answer.kind == "hang":
                    receiver._release.wait()
                    self.close_connection = True
                elif answer.kind == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                elif answer.kind == "garbage":
                    self.wfile.write(b"\x00\x17 this is not HTTP\r\n\r\n")
                    self.close_connection = True
                else:
                    data = answer.body.encode()
                    self.send_response(answer.status)
                    for name, value in answer.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

        return Handler
