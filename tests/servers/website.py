"""A small website for the fetcher tests: pages by path, each a scripted :class:`Reply`, plus a PDF maker.

``Site`` is an app for :func:`tests.servers.serve`; its pages can be swapped while it runs (a page that
changed between two runs), and it counts the requests each path received. :func:`serve_at` runs one on
another loopback address, such as 127.0.0.2: another "machine" for redirects to private addresses.

A site that defines no ``/robots.txt`` answers the fetcher's request for it with a 404 and counts it in
``robots_hits``, not in ``hits``: tests count the pages read, and a fetcher that honours robots.txt
asks for it once per site as well.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections import Counter
from typing import Callable, Iterator

from tests.servers import App, Reply, Request, Server, _Server

HTML = "text/html; charset=utf-8"

ARTICLE_PAGE = """<!doctype html>
<html><head><title>Heat pumps in the cold</title></head>
<body>
<div id="cookie-banner" class="cookie-consent">We use cookies to improve your experience. Accept all cookies?</div>
<nav class="menu"><ul><li><a href="/">Home</a></li><li><a href="/shop">Shop our catalogue</a></li>
<li><a href="/about">About us</a></li></ul></nav>
<main><article>
<h1>Heat pumps in the cold</h1>
<p>Modern air-source heat pumps keep working well below freezing. Field trials in Norway measured a
seasonal coefficient of performance near 2.5 at outdoor temperatures around minus fifteen degrees.</p>
<p>Running costs depend on the electricity price. Where electricity costs three times as much as gas per
kilowatt-hour, a heat pump with a coefficient of performance of three roughly breaks even with a boiler.</p>
<p>Installers recommend sizing the unit for the coldest week of the year and insulating the house first,
because a smaller heat load lets a smaller and cheaper unit do the job.</p>
</article></main>
<footer><p>Copyright 2026 Example Heating Ltd. All rights reserved. Terms, privacy and imprint.</p></footer>
</body></html>
"""


def page(title: str, *paragraphs: str) -> str:
    """A plain article page with ``paragraphs``."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return (f"<!doctype html><html><head><title>{title}</title></head><body><main><article>"
            f"<h1>{title}</h1>\n{body}\n</article></main></body></html>")


def _escape_pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal valid one-page PDF showing ``lines`` in Helvetica; pypdf extracts them as text."""
    ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
    for line in lines:
        ops.append(f"({_escape_pdf_text(line)}) Tj T*")
    ops.append("ET")
    stream = zlib.compress("\n".join(ops).encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    if title is not None:
        objects.append(b"<< /Title (" + _escape_pdf_text(title).encode("latin-1") + b") >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if title is not None:
        trailer += b" /Info %d 0 R" % len(objects)
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


Handler = Callable[[Request], Reply]


class Site:
    """Routes a path (without its query string) to a reply; unknown paths are 404s."""

    def __init__(self, pages: dict[str, Reply | Handler] | None = None) -> None:
        self.pages: dict[str, Reply | Handler] = dict(pages or {})
        self.hits: Counter[str] = Counter()
        self.robots_hits = 0
        self._lock = threading.Lock()

    def __setitem__(self, path: str, reply: Reply | Handler) -> None:
        with self._lock:
            self.pages[path] = reply

    def __call__(self, request: Request) -> Reply:
        path = request.path.split("?", 1)[0]
        with self._lock:
            reply = self.pages.get(path)
            if reply is None and path == "/robots.txt":
                self.robots_hits += 1
                return Reply(404, "no robots.txt here", {"Content-Type": "text/plain"})
            self.hits[path] += 1
        if reply is None:
            return Reply(404, "<html><body><h1>Not found</h1></body></html>", {"Content-Type": HTML})
        return reply(request) if callable(reply) else reply

    def total(self) -> int:
        with self._lock:
            return sum(self.hits.values())


def html(body: str, status: int = 200, **kw) -> Reply:
    return Reply(status, body, {"Content-Type": HTML}, **kw)


@contextlib.contextmanager
def serve_at(host: str, app: App) -> Iterator[Server]:
    """Like :func:`tests.servers.serve`, on the loopback address ``host`` (127.0.0.0/8 is all loopback)."""

    class _ServerAt(_Server):
        def server_bind(self) -> None:
            # Chosen before binding: _Server names 127.0.0.1, and the port stays the system's pick.
            self.server_address = (host, 0)
            super().server_bind()

    server = _ServerAt(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    bound, port = server.server_address[:2]
    try:
        yield Server(url=f"http://{bound}:{port}", requests=server.requests, _server=server)
    finally:
        server.shutdown()
        server.server_close()
