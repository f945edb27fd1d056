"""The web view's HTTP side: pages, the guard every request passes, and CSRF for every state change.

Built on Starlette and served by uvicorn (``agent/cli_ui.py``). Each request opens the store through
:class:`agent.runs.Workspace` and closes it again, so a page is what the journal says at that moment
and a run in progress shows its progress (its page reloads itself while it runs; the pages need no
JavaScript at all, and their content security policy allows none).

Safety, by default:

- GET never changes anything. Approve and Reject are POSTs carrying a CSRF token: the HMAC, with a
  secret made at start-up, of a random value in a same-site cookie; a POST without the pair, or
  from another origin, is refused with 403.
- With ``RESEARCH_UI_TOKEN`` set (required off loopback), every request carries it: as a cookie set
  by opening any page with ``?token=...`` (the address then drops it), or as ``Authorization: Bearer``
  or ``X-Research-Token``. On loopback, requests naming another host are refused, so a web page
  cannot reach this server through a DNS name that resolves to 127.0.0.1.
- Templates autoescape everything; Markdown is rendered with raw HTML escaped; report HTML files are
  served with a CSP that forbids scripts and sandboxes them, and shown in an iframe sandboxed without
  ``allow-scripts``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from jinja2 import Environment, PackageLoader
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.errors import ResearchError, UsageError
from agent.secrets import redact
from agent.ui import is_loopback, views
from agent.ui.actions import MAX_NOTE, Continuations, decide, store_flags

#: Pages: no script of any kind, styles and images only from here, frames only of this server's files.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")
#: Report files (HTML written from model and source text): no script, nothing fetched, sandboxed even
#: when opened directly, and framed only by this server's own pages.
FILE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; "
            "frame-ancestors 'self'; sandbox")
CSRF_COOKIE = "research_ui_csrf"
MAX_FORM_BYTES = 64 * 1024
FILE_TYPES = {"md": "text/plain; charset=utf-8", "html": "text/html; charset=utf-8",
              "json": "application/json; charset=utf-8"}


@dataclass
class Settings:
    """What the server was started with."""

    #: ``--store`` or ``--cache-dir`` as given; None is the default store (``RESEARCH_STORE``, else the cache).
    store: str | None = None
    config: str | None = None
    token: str | None = None
    loopback: bool = True
    port: int = 8765
    #: Made fresh at each start: a CSRF token of an earlier server process is no longer valid.
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def token_cookie(self) -> str:
        return f"research_ui_token_{self.port}"  # cookies ignore ports: two servers keep theirs apart

    def token_proof(self) -> str:
        """What the token cookie holds: derived from the token, never the token itself."""
        return hmac.new((self.token or "").encode(), b"research-ui-cookie", hashlib.sha256).hexdigest()

    def csrf_for(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()


class UI:
    """The pages and actions, over one store."""

    def __init__(self, settings: Settings) -> None:
        from agent.runs import Workspace

        self.settings = settings
        self.continuations = Continuations(store=settings.store, config=settings.config)
        self._workspace_class = Workspace
        self.templates = Environment(loader=PackageLoader("agent.ui", "templates"), autoescape=True,
                                     trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["q"] = lambda value: quote(str(value), safe="")

    # -- the store -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[Any]:
        """The store for one request, opened as ``research runs`` opens it (the storage factory picks the
        backend; a local cache is read-only when it must be)."""
        workspace = self._workspace_class.for_reading(self.settings.store)
        try:
            yield workspace
        finally:
            workspace.close()

    def store_label(self) -> str:
        """Which store this is, for a page: a directory, or a URL without its password."""
        from agent.storage import locate

        where = locate(self.settings.store)
        return redact(str(where.directory.absolute()) if where.backend == "local" else str(where))

    # -- rendering --------------------------------------------------------------------------------
    def page(self, request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        nonce = request.cookies.get(CSRF_COOKIE)
        fresh = not nonce or len(nonce) > 128
        if fresh:
            nonce = secrets.token_urlsafe(24)
        html = self.templates.get_template(template).render(
            csrf=self.settings.csrf_for(nonce), store=self.store_label(), path=request.url.path, **context)
        response = HTMLResponse(html, status_code=status_code)
        if fresh:
            response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict", path="/")
        return response

    def message(self, request: Request, status_code: int, title: str, text: str, back: str | None = None) -> HTMLResponse:
        return self.page(request, "message.html", status_code, title=title, text=redact(text), back=back)

    # -- pages ------------------------------------------------------------------------------------
    def home(self, request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    def runs(self, request: Request) -> Response:
        params = request.query_params
        chosen = {k: params.get(k, "") for k in ("status", "report", "pipeline")}
        with self.reading() as workspace:
            data = views.run_rows(workspace, **chosen)
        return self.page(request, "runs.html", title="Runs", chosen=chosen, refresh=5 if data["live"] else None,
                         **data)

    def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        with self.reading() as workspace:
            try:
                run = views.run_detail(workspace, run_id, flags=store_flags(self.settings.store, shown=True),
                                       config=self.settings.config)
            except UsageError as exc:
                return self.message(request, 404, "No such run", exc.one_line(), back="/runs")
        did = request.query_params.get("did")
        continuation = self.continuations.get(run_id)
        # Followed while it runs, and while an approved run waits for its continuation to take it up.
        following = run["live"] or (run["status"] == views.APPROVED and (continuation is None or continuation["running"]))
        return self.page(request, "run.html", title=f"Run {run_id}", run=run,
                         did=did if did in ("approved", "rejected") else None,
                         continuation=continuation, max_note=MAX_NOTE, refresh=2 if following else None)

    def _run_row(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        run_id = request.path_params["run_id"]
        with self.reading() as workspace:
            run = workspace.journal.find_run(run_id)
        if run is None:
            return None, self.message(request, 404, "No such run", f"no run with id {run_id!r} in {self.store_label()}",
                                      back="/runs")
        return run, None

    def report(self, request: Request) -> Response:
        run, missing = self._run_row(request)
        if missing:
            return missing
        files = views.report_files(run)
        try:
            text = views.report_markdown(run) if "md" in files else None
        except OSError as exc:
            return self.message(request, 500, "Cannot read the report", f"{files['md']}: {exc.strerror or exc}",
                                back=f"/runs/{quote(run['run_id'], safe='')}")
        return self.page(request, "report.html", title=f"Report of {run['run_id']}", run=run, files=sorted(files),
                         body=views.markdown_html(text) if text is not None else None,
                         report_path=redact(run["report_path"]) if run.get("report_path") else None)

    def report_frame(self, request: Request) -> Response:
        run, missing = self._run_row(request)
        if missing:
            return missing
        if "html" not in views.report_files(run):
            return self.message(request, 404, "No HTML report", f"run {run['run_id']} has no HTML report here",
                                back=f"/runs/{quote(run['run_id'], safe='')}")
        return self.page(request, "frame.html", title=f"Report of {run['run_id']}", run=run)

    def report_file(self, request: Request) -> Response:
        run, missing = self._run_row(request)
        if missing:
            return missing
        fmt = request.path_params["fmt"]
        path = views.report_files(run).get(fmt)
        if path is None:
            return self.message(request, 404, "No such file", f"run {run['run_id']} has no {fmt} report here",
                                back=f"/runs/{quote(run['run_id'], safe='')}")
        try:
            content = path.read_bytes()
        except OSError as exc:
            return self.message(request, 500, "Cannot read the report", f"{path}: {exc.strerror or exc}",
                                back=f"/runs/{quote(run['run_id'], safe='')}")
        response = Response(content, media_type=FILE_TYPES[fmt])
        response.headers["Content-Security-Policy"] = FILE_CSP
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    def reports(self, request: Request) -> Response:
        with self.reading() as workspace:
            data = views.reports_overview(workspace, self.settings.config, _dt.datetime.now(_dt.timezone.utc))
        return self.page(request, "reports.html", title="Scheduled reports", **data)

    # -- actions ----------------------------------------------------------------------------------
    async def approve(self, request: Request) -> Response:
        return await self._decide(request, "approved")

    async def reject(self, request: Request) -> Response:
        return await self._decide(request, "rejected")

    async def _decide(self, request: Request, decision: str) -> Response:
        run_id = request.path_params["run_id"]
        back = f"/runs/{quote(run_id, safe='')}"
        form = await request.form()
        nonce, token = request.cookies.get(CSRF_COOKIE), form.get("csrf")
        if not nonce or not isinstance(token, str) or not hmac.compare_digest(token, self.settings.csrf_for(nonce)):
            return self.message(request, 403, "Refused",
                                "this form's CSRF token is missing or out of date; reload the run's page and try again",
                                back=back)
        note = form.get("note")
        note = note.strip() if isinstance(note, str) and note.strip() else None
        if note is not None and len(note) > MAX_NOTE:
            return self.message(request, 400, "Note too long", f"a note may have up to {MAX_NOTE} characters", back=back)
        try:
            await run_in_threadpool(decide, run_id, decision, note, self.settings.store)
        except ResearchError as exc:
            # A double click or a second tab lands here: the run is no longer waiting.
            return self.message(request, 409 if isinstance(exc, UsageError) else 500, "Nothing done",
                                exc.one_line(), back=back)
        if decision == "approved":
            await run_in_threadpool(self.continuations.start, run_id)
        return RedirectResponse(f"{back}?did={decision}", status_code=303)


class Guard(BaseHTTPMiddleware):
    """Every request: its Host (on loopback), its token (when one is set), its size; every response:
    the headers that keep pages from running or leaking anything."""

    def __init__(self, app: Any, ui: UI) -> None:
        super().__init__(app)
        self.ui, self.settings = ui, ui.settings

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        response = self.check(request)
        if response is None:
            response = await call_next(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        headers.setdefault("X-Frame-Options", "DENY")
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["Cache-Control"] = "no-store"
        return response

    def check(self, request: Request) -> Response | None:
        settings = self.settings
        if settings.loopback and not is_loopback(request.url.hostname or ""):
            return Response("this server answers only to localhost, 127.0.0.1 and [::1]\n", status_code=400,
                            media_type="text/plain")
        if request.method == "POST":
            if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
                return Response("too large\n", status_code=413, media_type="text/plain")
            origin = request.headers.get("origin")
            if origin and origin != "null" and origin != f"{request.url.scheme}://{request.url.netloc}":
                return self.ui.message(request, 403, "Refused", "a form from another site cannot act here")
        if not settings.token:
            return None
        given = request.query_params.get("token")
        if given is not None and request.method == "GET" and hmac.compare_digest(given.encode(), settings.token.encode()):
            # Kept as a cookie, and taken out of the address (history, bookmarks, screenshots).
            url = request.url.remove_query_params("token")
            response = RedirectResponse(url.path + (f"?{url.query}" if url.query else ""), status_code=303)
            response.set_cookie(settings.token_cookie, settings.token_proof(), httponly=True, samesite="lax", path="/")
            return response
        proof = request.cookies.get(settings.token_cookie, "")
        bearer = request.headers.get("authorization", "")
        header = request.headers.get("x-research-token", "")
        presented = bearer[7:] if bearer.lower().startswith("bearer ") else header
        if (proof and hmac.compare_digest(proof, settings.token_proof())) or \
                (presented and hmac.compare_digest(presented.encode(), settings.token.encode())):
            return None
        return Response("this view needs its token: open it with ?token=... (the value of RESEARCH_UI_TOKEN)\n",
                        status_code=401, media_type="text/plain")


def create_app(ui: UI) -> Starlette:
    # Plain (not async) endpoints run in Starlette's thread pool: the store is read synchronously.
    routes = [
        Route("/", ui.home),
        Route("/runs", ui.runs),
        Route("/runs/{run_id}", ui.run),
        Route("/runs/{run_id}/approve", ui.approve, methods=["POST"]),
        Route("/runs/{run_id}/reject", ui.reject, methods=["POST"]),
        Route("/runs/{run_id}/report", ui.report),
        Route("/runs/{run_id}/report/view", ui.report_frame),
        Route("/runs/{run_id}/files/{fmt:str}", ui.report_file),
        Route("/reports", ui.reports),
        Mount("/static", app=StaticFiles(directory=str(Path(__file__).with_name("static"))), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Guard, ui=ui)])
    app.state.ui = ui
    return app
