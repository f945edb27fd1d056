"""A loopback OpenAI Files and Batches API, for the real ``openai`` SDK's batch calls; and what the batch fakes share.

The product can send its completions as one batch (half price, answered within the day) instead of one
request each. ``OpenAIBatchAPI`` answers the synchronous ``/chat/completions`` exactly as ``OpenAIAPI``
does, and besides it (paths under ``http://host:port/v1``, the SDK's ``base_url``):

- ``POST /files`` (multipart, ``purpose=batch``) keeps a JSONL of ``{"custom_id", "method": "POST",
  "url": "/v1/chat/completions", "body": {...}}`` lines; ``GET /files/{id}`` and ``/files/{id}/content``
  give a file back (the batch's own output and error files too);
- ``POST /batches`` starts a batch over such a file; ``GET /batches/{id}`` is a poll, ``GET /batches``
  lists them newest first (with their ``metadata``, so a resumed run can find the batch it submitted),
  ``POST /batches/{id}/cancel`` cancels one.

A batch reads "validating" until it is polled, "in_progress" while it runs, then "completed" (or
"expired", "cancelled", "failed" at validation). Its ``output_file_id`` holds a line per answered request,
``{"id", "custom_id", "response": {"status_code": 200, "body": <chat.completion>}, "error": null}``, in an
order other than the input's; ``error_file_id`` holds the requests that got an error (their
``response.status_code`` and error body) and those the window ran out on (``error.code`` "batch_expired").
A line's answer is what the synchronous fake answers for the same body, so a batch and a run of single
calls write the same report.

How a batch goes is scripted per test with a :class:`Plan` (``fake.plan(polls=3, failed=["b"])``, one per
batch created, else ``fake.default_plan``); ``fake.script_batch(fake.error(429), None, on="poll")`` scripts
replies to the batch API itself. ``fake.jobs`` keeps every batch and ``fake.submitted()`` every line ever
submitted, for tests that check nothing was sent twice; ``fake.batch_answered`` the lines paid for.
:class:`BatchBook` and :class:`Plan` are shared by the Anthropic and Gemini batch fakes.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

from tests.servers import Reply, Request
from tests.servers.fake_api import Scripted, digest
from tests.servers.openai_api import OpenAIAPI

#: The batch API requests a test can script replies for (``script_batch(..., on=kind)``).
KINDS = ("upload", "download", "create", "poll", "list", "cancel", "results")


# -- what the three batch fakes share ---------------------------------------------------------------

@dataclass
class Plan:
    """How one batch goes. A line is named by its ``custom_id`` (by its position for Gemini)."""

    #: Polls answered "still running" before the batch ends (the next one sees it ended).
    polls: int = 0
    #: And the batch runs at least this long after it was created (0: polls alone decide).
    seconds: float = 0.0
    #: Lines that fail with the vendor's 400 for a bad request.
    failed: Iterable[Any] = ()
    #: A line's own reply: a ``Reply`` (an error status fails the line) or a made one (``fake.truncated()``).
    lines: dict[Any, Scripted] = field(default_factory=dict)
    #: The batch ends expired rather than done: only the ``answered`` lines got answers.
    expire: bool = False
    #: For an expired or cancelled batch, the lines answered before it stopped: names, or the first N.
    answered: Iterable[Any] | int = ()
    #: The whole batch fails validation with this message (OpenAI "failed", Gemini JOB_STATE_FAILED).
    fail: str | None = None


@dataclass
class Line:
    """One request of a batch: its name, model, and the synchronous request it stands for."""

    key: Any
    model: str
    request: Request
    extra: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """What became of a line: "answered" or "failed" (with the reply), "expired" or "cancelled"."""

    kind: str
    reply: Reply | None = None

    def body(self) -> Any:
        data, _ = self.reply.encoded() if self.reply is not None else (b"null", {})
        return json.loads(data or b"null")


@dataclass
class Job:
    id: str
    lines: list[Line]
    plan: Plan
    info: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    polls: int = 0
    cancel_asked: float | None = None
    ended: float | None = None
    #: None while it runs, then "completed", "expired", "cancelled" or "failed".
    end: str | None = None
    outcomes: dict[Any, Outcome] = field(default_factory=dict)

    def count(self, kind: str) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome.kind == kind)

    def keys(self) -> list[Any]:
        return [line.key for line in self.lines]


class BatchBook:
    """Batches over a synchronous fake: plans, the batch lifecycle, scripted replies and the record.

    Mixed in before a vendor's ``FakeAPI`` subclass, which then answers its batch paths through
    ``batch_reply`` (``None`` for any other request, left to the synchronous fake)."""

    def __init__(self, *, default_plan: Plan | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.default_plan = default_plan or Plan()
        #: Every batch created, by id, in order.
        self.jobs: dict[str, Job] = {}
        #: Every request the batch API got (the server records all requests too).
        self.batch_requests: list[Request] = []
        #: The synchronous requests that batch lines stand for, each answered with a 200 (what was paid).
        self.batch_answered: list[Request] = []
        self._plans: deque[Plan] = deque()
        self._batch_scripts: dict[str, deque[Reply | None]] = {kind: deque() for kind in KINDS}
        self._book_lock = threading.RLock()
        self._ids = itertools.count(1)
        self._gates: dict[str, threading.Event] = {}
        self._dropping: set[str] = set()
        self._losing: dict[str, int] = {}
        #: Batch API requests of each kind received, counted before any gate holds them.
        self.received: dict[str, int] = {kind: 0 for kind in KINDS}

    # -- scripting ---------------------------------------------------------------------------
    def plan(self, plan: Plan | None = None, **fields: Any) -> "BatchBook":
        """The plan of the next batch created (each call queues one more)."""
        with self._book_lock:
            self._plans.append(plan if plan is not None else Plan(**fields))
        return self

    def script_batch(self, *replies: Reply | None, on: str = "poll") -> "BatchBook":
        """Replies to the next batch API requests of a kind (``None``: the real answer at that point)."""
        if on not in KINDS:
            raise ValueError(f"on must be one of {KINDS}")
        with self._book_lock:
            self._batch_scripts[on].extend(replies)
        return self

    def gate(self, kind: str) -> threading.Event:
        """Hold every batch API request of ``kind`` until the returned event is set (then it is answered as
        usual): a client killed meanwhile never hears the answer, though the vendor acted on it. With
        ``ungate(kind, act=False)`` the held requests are dropped instead, never acted on."""
        gate = self._gates[kind] = threading.Event()
        return gate

    def lose_answers(self, kind: str, count: int = 1) -> None:
        """Act on the next ``count`` requests of ``kind``, then drop the connection instead of answering
        (a create that timed out after the vendor made the batch)."""
        self._losing[kind] = self._losing.get(kind, 0) + count

    def ungate(self, kind: str, *, act: bool = True) -> None:
        gate = self._gates.pop(kind, None)
        if gate is not None:
            self._dropping = self._dropping | ({kind} if not act else set())
            gate.set()

    def submitted(self) -> list[Any]:
        """Every line ever submitted, by name, across all batches (a repeat means a double submission)."""
        with self._book_lock:
            return [key for job in self.jobs.values() for key in job.keys()]

    # -- the handler -------------------------------------------------------------------------
    def __call__(self, request: Request) -> Reply:
        kind = self.batch_kind(request)
        if kind is not None:
            self.received[kind] += 1
            gate = self._gates.get(kind)
            if gate is not None:
                gate.wait(60)
                if kind in self._dropping:  # released without acting: as if it never arrived
                    return Reply(drop=True)
        with self._book_lock:
            reply = self.batch_reply(request)
            if kind is not None and self._losing.get(kind):
                self._losing[kind] -= 1
                return Reply(drop=True)
        return reply if reply is not None else super().__call__(request)  # type: ignore[misc]

    def batch_kind(self, request: Request) -> str | None:
        """Which kind of batch API request ``request`` is (``None``: not one), for gates."""
        return None

    def batch_reply(self, request: Request) -> Reply | None:
        """The answer to a batch API request, or ``None`` if ``request`` is not one."""
        raise NotImplementedError

    def scripted(self, kind: str, request: Request) -> Reply | None:
        """The reply a test scripted for this request, or a wrong key's rejection; else ``None``.
        Called by the vendor's routing once it knows a request is a batch API request of ``kind``."""
        self.batch_requests.append(request)
        queue = self._batch_scripts[kind]
        scripted = queue.popleft() if queue else None
        if scripted is not None:
            return scripted
        if self.key is not None and self.presented_key(request) != self.key:  # type: ignore[attr-defined]
            return self.bad_key()  # type: ignore[attr-defined]
        return None

    # -- the lifecycle -----------------------------------------------------------------------
    def new_job(self, prefix: str, lines: list[Line], **info: Any) -> Job:
        plan = self._plans.popleft() if self._plans else self.default_plan
        job = Job(id=f"{prefix}{next(self._ids):04d}", lines=lines, plan=plan, info=info)
        self.jobs[job.id] = job
        return job

    def poll(self, job: Job) -> Job:
        """One status read of ``job``: it ends on the first poll past its plan's polls and seconds."""
        if job.end is not None:
            return job
        job.polls += 1
        if job.cancel_asked is not None:
            self.finish(job, "cancelled")
        elif job.plan.fail is not None:
            self.finish(job, "failed")
        elif job.polls > job.plan.polls and time.time() - job.created >= job.plan.seconds:
            self.finish(job, "expired" if job.plan.expire else "completed")
        return job

    def cancel(self, job: Job) -> Job:
        if job.end is None and job.cancel_asked is None:
            job.cancel_asked = time.time()
        return job

    def finish(self, job: Job, end: str) -> None:
        job.end, job.ended = end, time.time()
        if end == "failed":
            return
        answered = job.plan.answered
        early = set(job.keys()[:answered] if isinstance(answered, int) else answered)
        for line in job.lines:
            if end in ("expired", "cancelled") and line.key not in early:
                job.outcomes[line.key] = Outcome(end)
                continue
            reply = self.line_reply(job.plan, line)
            job.outcomes[line.key] = Outcome("answered" if reply.status == 200 else "failed", reply)
            if reply.status == 200:
                self.batch_answered.append(line.request)

    def line_reply(self, plan: Plan, line: Line) -> Reply:
        """A line's reply: scripted by the plan, else what the synchronous fake answers for its body."""
        scripted = plan.lines.get(line.key)
        if line.key in set(plan.failed):
            return self.error(400, f"request {line.key} is not valid")  # type: ignore[attr-defined]
        if callable(scripted):
            return scripted(line.model, line.request)
        if scripted is not None:
            return scripted
        if self.rejects_schema and self.requested_schema(line.request) is not None:  # type: ignore[attr-defined]
            return self.error(400, "structured output is not supported by this server")  # type: ignore[attr-defined]
        return self.answer()(line.model, line.request)  # type: ignore[attr-defined]


def iso_time(seconds: float | None) -> str | None:
    """A UNIX time as the RFC 3339 text the vendors' batch objects carry (``None`` stays ``None``)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def query(request: Request) -> dict[str, str]:
    return {name: values[-1] for name, values in parse_qs(urlsplit(request.path).query).items()}


def page(items: list, after: str | None, limit: int, ident=lambda item: item.id) -> tuple[list, bool]:
    """One page of ``items`` (newest first) after the item named ``after``, and whether more follow."""
    if after:
        names = [ident(item) for item in items]
        items = items[names.index(after) + 1:] if after in names else []
    return items[:limit], len(items) > limit


# -- OpenAI -------------------------------------------------------------------------------------------

_ROUTE = re.compile(r"^(?:/v1)?/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?$")
_EXPIRED = "This request could not be executed before the completion window expired."


class OpenAIBatchAPI(BatchBook, OpenAIAPI):
    """``OpenAIAPI`` plus the Files and Batches APIs (only the ``/v1/chat/completions`` endpoint)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: Every file, by id: its file object and its bytes (uploads, and each batch's output and errors).
        self.files: dict[str, tuple[dict, bytes]] = {}

    def batch_kind(self, request: Request) -> str | None:
        match = _ROUTE.match(urlsplit(request.path).path)
        if not match:
            return None
        kind, ident, action = match.groups()
        if kind == "files":
            return "upload" if request.method == "POST" else "download"
        if not ident:
            return "create" if request.method == "POST" else "list"
        return "cancel" if action == "cancel" else "poll"

    def batch_reply(self, request: Request) -> Reply | None:
        match = _ROUTE.match(urlsplit(request.path).path)
        if not match:
            return None
        kind, ident, action = match.groups()
        method = request.method
        if kind == "files":
            if method == "POST" and not ident:
                return self.scripted("upload", request) or self.upload(request)
            if method == "GET" and ident:
                return self.scripted("download", request) or self.download(ident, action == "content")
            return self.error(404, f"no such route: {method} {request.path}")
        if method == "POST" and not ident:
            return self.scripted("create", request) or self.create(request)
        if method == "GET" and not ident:
            return self.scripted("list", request) or self.listed(request)
        job = self.jobs.get(ident or "")
        if method == "GET" and not action:
            return self.scripted("poll", request) or (
                Reply(200, self.batch(self.poll(job))) if job else self._no_batch(ident))
        if method == "POST" and action == "cancel":
            scripted = self.scripted("cancel", request)
            if scripted or not job:
                return scripted or self._no_batch(ident)
            if job.end is not None:
                return self.error(400, f"Cannot cancel a batch with status '{self.status(job)}'.")
            return Reply(200, self.batch(self.cancel(job)))
        return self.error(404, f"no such route: {method} {request.path}")

    # -- files -------------------------------------------------------------------------------
    def upload(self, request: Request) -> Reply:
        fields = multipart(request)
        if "file" not in fields:
            return self.error(400, "Missing required parameter: 'file'.")
        filename, data = fields["file"]
        purpose = fields.get("purpose", ("", b""))[1].decode()
        if purpose != "batch":
            return self.error(400, f"this fake keeps batch files only, not purpose {purpose!r}")
        return Reply(200, self.keep(data, filename or "upload.jsonl", purpose))

    def keep(self, data: bytes, filename: str, purpose: str) -> dict:
        file_id = f"file-{next(self._ids):04d}"
        obj = {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
               "status_details": None}
        self.files[file_id] = (obj, data)
        return obj

    def download(self, file_id: str, content: bool) -> Reply:
        if file_id not in self.files:
            return self.error(404, f"No such File object: {file_id}")
        obj, data = self.files[file_id]
        if content:
            return Reply(200, data, headers={"Content-Type": "application/octet-stream"})
        return Reply(200, obj)

    # -- batches -----------------------------------------------------------------------------
    def create(self, request: Request) -> Reply:
        body = request.json() or {}
        file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        if file_id not in self.files:
            return self.error(400, f"No such File object: {file_id}")
        if endpoint != "/v1/chat/completions":
            return self.error(400, f"this fake batches /v1/chat/completions only, not {endpoint!r}")
        if body.get("completion_window") != "24h":
            return self.error(400, "completion_window must be '24h'")
        lines, errors = self.read_lines(self.files[file_id][1], endpoint)
        job = self.new_job("batch_", lines, endpoint=endpoint, input_file_id=file_id,
                           metadata=body.get("metadata"), errors=errors)
        if errors:  # OpenAI validates the file after accepting the batch: the first poll says "failed"
            job.plan = Plan(fail=errors[0]["message"])
        return Reply(200, self.batch(job))

    def read_lines(self, data: bytes, endpoint: str) -> tuple[list[Line], list[dict]]:
        lines: list[Line] = []
        errors: list[dict] = []
        seen: set[str] = set()
        for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                errors.append(_line_error("invalid_json_line", "This line is not valid JSON.", number))
                continue
            custom_id, body = item.get("custom_id"), item.get("body")
            if not isinstance(custom_id, str) or not custom_id or custom_id in seen:
                errors.append(_line_error("duplicate_custom_id" if custom_id in seen else "missing_required_parameter",
                                          f"custom_id {custom_id!r} is missing or not unique", number))
                continue
            if item.get("method") != "POST" or item.get("url") != endpoint or not isinstance(body, dict):
                errors.append(_line_error("invalid_url", f"every line must POST a body to {endpoint}", number))
                continue
            seen.add(custom_id)
            sync = Request("POST", endpoint, {"content-type": "application/json"}, json.dumps(body).encode())
            lines.append(Line(custom_id, str(body.get("model", "")), sync))
        if not lines and not errors:
            errors.append(_line_error("empty_file", "The batch input file is empty.", None))
        return lines, errors

    def listed(self, request: Request) -> Reply:
        params = query(request)
        newest = list(reversed(self.jobs.values()))
        items, more = page(newest, params.get("after"), int(params.get("limit") or 20))
        data = [self.batch(job) for job in items]
        return Reply(200, {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                           "last_id": data[-1]["id"] if data else None, "has_more": more})

    def status(self, job: Job) -> str:
        if job.end is not None:
            return job.end
        if job.cancel_asked is not None:
            return "cancelling"
        return "validating" if job.polls == 0 else "in_progress"

    def batch(self, job: Job) -> dict:
        ended = int(job.ended) if job.ended else None
        created = int(job.created)
        if job.end is not None and "output_file_id" not in job.info:
            self.write_files(job)
        errors = job.info["errors"] if job.end == "failed" else None
        if job.end == "failed" and not errors:
            errors = [_line_error("failed", job.plan.fail or "the batch failed", None)]
        failed = job.count("failed") + job.count("expired")
        return {
            "id": job.id, "object": "batch", "endpoint": job.info["endpoint"],
            "errors": {"object": "list", "data": errors} if errors else None,
            "input_file_id": job.info["input_file_id"], "completion_window": "24h",
            "status": self.status(job), "model": job.lines[0].model if job.lines else None,
            "output_file_id": job.info.get("output_file_id"), "error_file_id": job.info.get("error_file_id"),
            "created_at": created, "in_progress_at": created if job.polls else None,
            "expires_at": created + 86_400, "finalizing_at": ended if job.end == "completed" else None,
            "completed_at": ended if job.end == "completed" else None,
            "failed_at": ended if job.end == "failed" else None,
            "expired_at": ended if job.end == "expired" else None,
            "cancelling_at": int(job.cancel_asked) if job.cancel_asked else None,
            "cancelled_at": ended if job.end == "cancelled" else None,
            "request_counts": {"total": len(job.lines), "completed": job.count("answered"),
                               "failed": failed if job.end is not None else 0},
            "metadata": job.info.get("metadata"),
        }

    def write_files(self, job: Job) -> None:
        """The batch's output and error files, once it has ended; lines in reverse input order."""
        output, errors = [], []
        for line in reversed(job.lines):
            outcome = job.outcomes.get(line.key)
            if outcome is None or outcome.kind == "cancelled":  # never run: in neither file
                continue
            entry: dict[str, Any] = {"id": f"batch_req_{digest(line.request)}", "custom_id": line.key,
                                     "response": None, "error": None}
            if outcome.kind == "expired":
                entry["error"] = {"code": "batch_expired", "message": _EXPIRED}
            else:
                entry["response"] = {"status_code": outcome.reply.status, "request_id": f"req_{line.key}",
                                     "body": outcome.body()}
            (output if outcome.kind == "answered" else errors).append(json.dumps(entry))
        job.info["output_file_id"] = job.info["error_file_id"] = None
        if output:
            job.info["output_file_id"] = self.keep(("\n".join(output) + "\n").encode(),
                                                   "batch_output.jsonl", "batch_output")["id"]
        if errors:
            job.info["error_file_id"] = self.keep(("\n".join(errors) + "\n").encode(),
                                                  "batch_errors.jsonl", "batch_output")["id"]

    def _no_batch(self, ident: str | None) -> Reply:
        return self.error(404, f"No batch found with id '{ident}'.")


def _line_error(code: str, message: str, line: int | None) -> dict:
    return {"code": code, "message": message, "param": None, "line": line}


def multipart(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a ``multipart/form-data`` body: name -> (filename, bytes)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields
