"""A loopback Anthropic Message Batches API, for the real ``anthropic`` SDK's ``messages.batches`` calls.

``AnthropicBatchAPI`` answers ``POST /v1/messages`` exactly as ``AnthropicAPI`` does, and besides it:

- ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params": {...}}]}`` (custom ids present
  and unique, each ``params`` naming a model, else Anthropic's 400) starts a batch;
- ``GET /v1/messages/batches/{id}`` is a poll; ``GET /v1/messages/batches`` lists them newest first
  (``after_id``/``before_id``/``limit`` pages); ``POST /v1/messages/batches/{id}/cancel`` cancels one;
- ``GET /v1/messages/batches/{id}/results`` streams its JSONL once it has ended: a line per request,
  ``{"custom_id", "result": {"type": "succeeded", "message": {...}}}`` (or "errored" with Anthropic's
  error object, "expired", "canceled"), in an order other than the input's.

A batch's ``processing_status`` is "in_progress" (or "canceling" once asked to) until it ends, then
"ended"; ``request_counts`` has every request ``processing`` until then, as Anthropic counts them.
``results_url`` is an absolute URL on this server (the SDK fetches it as given, like Anthropic's own).
A line's answer is what the synchronous fake answers for the same ``params``. Batches are scripted with
``fake.plan(...)`` and ``fake.script_batch(...)`` as in ``openai_batch``.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from tests.servers import Reply, Request
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.openai_batch import BatchBook, Job, Line, Outcome, iso_time, page, query

_ROUTE = re.compile(r"^/v1/messages/batches(?:/([^/]+))?(?:/(cancel|results))?$")
_RESULT = {"answered": "succeeded", "failed": "errored", "expired": "expired", "cancelled": "canceled"}



class AnthropicBatchAPI(BatchBook, AnthropicAPI):
    """``AnthropicAPI`` plus Message Batches."""

    def batch_kind(self, request: Request) -> str | None:
        match = _ROUTE.match(urlsplit(request.path).path)
        if not match:
            return None
        ident, action = match.groups()
        if not ident:
            return "create" if request.method == "POST" else "list"
        return {None: "poll", "cancel": "cancel", "results": "results"}[action]

    def batch_reply(self, request: Request) -> Reply | None:
        match = _ROUTE.match(urlsplit(request.path).path)
        if not match:
            return None
        ident, action = match.groups()
        method = request.method
        if not ident:
            if method == "POST":
                return self.scripted("create", request) or self.create(request)
            if method == "GET":
                return self.scripted("list", request) or self.listed(request)
            return self.error(404, f"no such route: {method} {request.path}")
        kind = {None: "poll", "cancel": "cancel", "results": "results"}[action]
        scripted = self.scripted(kind, request)
        if scripted is not None:
            return scripted
        job = self.jobs.get(ident)
        if job is None:
            return self.error(404, f"message batch {ident} not found")
        if method == "GET" and kind == "poll":
            return Reply(200, self.batch(self.poll(job), request))
        if method == "POST" and kind == "cancel":
            return Reply(200, self.batch(self.cancel(job), request))
        if method == "GET" and kind == "results":
            if job.end is None:
                return self.error(404, f"results for message batch {ident} are not ready: it is still processing")
            return Reply(200, self.results(job), headers={"Content-Type": "application/binary"})
        return self.error(404, f"no such route: {method} {request.path}")

    def create(self, request: Request) -> Reply:
        body = request.json() or {}
        entries = body.get("requests")
        if not isinstance(entries, list) or not entries:
            return self.error(400, "requests: a batch needs at least one request")
        lines: list[Line] = []
        for index, entry in enumerate(entries):
            custom_id, params = (entry or {}).get("custom_id"), (entry or {}).get("params")
            if not isinstance(custom_id, str) or not custom_id:
                return self.error(400, f"requests.{index}.custom_id: Field required")
            if any(line.key == custom_id for line in lines):
                return self.error(400, f"requests.{index}.custom_id: duplicate custom_id {custom_id!r}")
            if not isinstance(params, dict) or not params.get("model"):
                return self.error(400, f"requests.{index}.params.model: Field required")
            sync = Request("POST", "/v1/messages", {"content-type": "application/json"}, json.dumps(params).encode())
            lines.append(Line(custom_id, str(params["model"]), sync))
        return Reply(200, self.batch(self.new_job("msgbatch_", lines), request))

    def finish(self, job: Job, end: str) -> None:
        super().finish(job, end)
        if end == "failed":  # Anthropic has no failed batches: every request errors instead
            for line in job.lines:
                job.outcomes[line.key] = Outcome("failed", self.error(500, job.plan.fail or "the batch failed"))

    def listed(self, request: Request) -> Reply:
        params = query(request)
        newest = list(reversed(self.jobs.values()))
        limit = int(params.get("limit") or 20)
        if params.get("before_id"):
            older_first = list(reversed(newest))
            items, more = page(older_first, params["before_id"], limit)
            items = list(reversed(items))
        else:
            items, more = page(newest, params.get("after_id"), limit)
        data = [self.batch(job, request) for job in items]
        return Reply(200, {"data": data, "has_more": more, "first_id": data[0]["id"] if data else None,
                           "last_id": data[-1]["id"] if data else None})

    def batch(self, job: Job, request: Request) -> dict:
        if job.end is None:
            status = "canceling" if job.cancel_asked is not None else "in_progress"
            counts = {"processing": len(job.lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        else:
            status = "ended"
            counts = {"processing": 0, "succeeded": job.count("answered"), "errored": job.count("failed"),
                      "canceled": job.count("cancelled"), "expired": job.count("expired")}
        host = request.headers.get("host", "127.0.0.1")
        return {
            "id": job.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
            "created_at": iso_time(job.created),
            "expires_at": iso_time(job.created + timedelta(days=1).total_seconds()),
            "ended_at": iso_time(job.ended), "cancel_initiated_at": iso_time(job.cancel_asked), "archived_at": None,
            "results_url": f"http://{host}/v1/messages/batches/{job.id}/results" if job.end else None,
        }

    def results(self, job: Job) -> bytes:
        out = []
        for line in reversed(job.lines):
            outcome = job.outcomes[line.key]
            result: dict[str, Any] = {"type": _RESULT[outcome.kind]}
            if outcome.kind == "answered":
                result["message"] = outcome.body()
            elif outcome.kind == "failed":
                result["error"] = outcome.body()
            out.append(json.dumps({"custom_id": line.key, "result": result}))
        return ("\n".join(out) + "\n").encode()
