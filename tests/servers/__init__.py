"""Loopback HTTP servers for the tests: real sockets, real HTTP, scripted answers.

``serve(app)`` starts a threaded server on 127.0.0.1 with a random port and yields a :class:`Server`
whose ``url`` the SDK under test is pointed at. ``app(request)`` returns a :class:`Reply`, which can
also delay, hang, or drop the connection mid-answer, so failure paths run over a real socket.
Every request is recorded (method, path, headers, JSON body) for assertions.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The client's (host, port): which connection, and so which process, sent the request.
    client: tuple = ()

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | list = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the socket without answering
    hang: float = 0.0  # send headers, then stall this long before the body

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        body = self.body
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        return body, headers


App = Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK, adding ~40 ms to every answer (a real server sets TCP_NODELAY too).
    disable_nagle_algorithm = True
    server: "_Server"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          client=tuple(self.client_address[:2]))
        with self.server.lock:
            self.server.requests.append(request)
        reply = self.server.app(request)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        data, headers = reply.encoded()
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if reply.hang:
            self.wfile.flush()
            time.sleep(reply.hang)
        with contextlib.suppress(OSError):
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5: a burst of more new connections than that overflows
    # it, and the extra clients stall or are reset, which looks like a concurrency cap in the client.
    request_queue_size = 128

    def __init__(self, app: App) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.app = app
        self.requests: list[Request] = []
        self.lock = threading.Lock()


@dataclass
class Server:
    url: str
    requests: list[Request]
    _server: _Server

    def clear(self) -> None:
        with self._server.lock:
            self.requests.clear()


@contextlib.contextmanager
def serve(app: App) -> Iterator[Server]:
    """Run ``app`` on a loopback port for the duration of the block."""
    server = _Server(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield Server(url=f"http://{host}:{port}", requests=server.requests, _server=server)
    finally:
        server.shutdown()
        server.server_close()
