"""A webhook receiver for the delivery tests: answers from a script, over the loopback harness.

``Receiver(*replies)`` is an app for :func:`tests.servers.serve`; the harness records each request's
method, path, headers and body. The n-th request gets the n-th reply of the script and, once it runs
out, the last one again; a reply may be a function of the request (to echo what it was sent). The
helpers build the scripts the tests need: failing a few times, rate limiting, refusing, hanging.
"""

from __future__ import annotations

import threading
from typing import Callable, Union

from tests.servers import Reply, Request

Step = Union[Reply, Callable[[Request], Reply]]


class Receiver:
    def __init__(self, *script: Step) -> None:
        self.script = list(script) or [Reply(204)]
        self.answered = 0
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self._lock:
            step = self.script[min(self.answered, len(self.script) - 1)]
            self.answered += 1
        return step(request) if callable(step) else step


def accepting(status: int = 204) -> Receiver:
    """Takes every notification (Discord-style 204 No Content)."""
    return Receiver(Reply(status))


def flaky(failures: int = 2, status: int = 500) -> Receiver:
    """Answers ``status`` ``failures`` times, then 200."""
    return Receiver(*[Reply(status, body={"error": "try later"})] * failures, Reply(200, body="ok"))


def rate_limited(*retry_after: str) -> Receiver:
    """429 with each ``Retry-After`` value in turn, then 200."""
    return Receiver(*[Reply(429, headers={"Retry-After": value}) for value in retry_after], Reply(200))


def refusing(status: int = 400, body: str = "invalid_payload") -> Receiver:
    """The same refusal every time (Slack answers a bad payload with 400 and a reason word)."""
    return Receiver(Reply(status, body=body, headers={"Content-Type": "text/plain"}))


def hanging(seconds: float) -> Receiver:
    """Reads the request, then says nothing for ``seconds``: the client's timeout must end it."""
    return Receiver(Reply(200, delay=seconds))


def echoing(status: int = 404) -> Receiver:
    """Refuses, quoting the path and query it was sent, as many a server's error page does."""
    return Receiver(lambda request: Reply(status, body=f"no webhook at {request.path}",
                                          headers={"Content-Type": "text/plain"}))
