"""A loopback Gemini Batch Mode API (inlined requests), for the real ``google-genai`` SDK's ``batches`` calls.

``GeminiBatchAPI`` answers ``:generateContent`` exactly as ``GeminiAPI`` does, and besides it (under any
of ``/v1``, ``/v1beta``, ``/v1alpha``: the SDK sends its client's API version):

- ``POST /{version}/models/{model}:batchGenerateContent`` with ``{"batch": {"displayName", "inputConfig":
  {"requests": {"requests": [{"request": <a generateContent body>, "metadata": {...}}]}}}}`` (what
  ``client.aio.batches.create(model=..., src=[...], config={"display_name": ...})`` sends) starts a batch
  and answers its long-running operation, ``{"name": "batches/...", "metadata": {...}, "done"}``;
- ``GET /{version}/batches/{id}`` is a poll, ``GET /{version}/batches`` lists them newest first as
  ``{"operations": [...], "nextPageToken"}`` (display names included, so a resumed run can find its
  batch), ``POST /{version}/batches/{id}:cancel`` cancels one, ``DELETE`` forgets one.

The operation's ``metadata.state`` is BATCH_STATE_PENDING until polled, BATCH_STATE_RUNNING while it runs,
then SUCCEEDED, FAILED, CANCELLED or EXPIRED (the SDK turns these into ``JOB_STATE_*``). Once it has
ended, ``metadata.output.inlinedResponses.inlinedResponses`` holds one entry per request *in input
order*, a ``response`` (what the synchronous fake answers for the same body) or an ``error``
(a ``google.rpc.Status``: gRPC code and message), each with its request's ``metadata``. An expired or
cancelled batch has no output unless the plan says some lines were answered first; the rest then carry
an error (DEADLINE_EXCEEDED, CANCELLED). Lines are named by position in plans. Scripting as in
``openai_batch``.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from tests.servers import Reply, Request
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_batch import BatchBook, Job, Line, iso_time, page, query

_CREATE = re.compile(r"^/(v1(?:beta|alpha)?)/models/([^/:?]+):batchGenerateContent$")
_BATCHES = re.compile(r"^/(v1(?:beta|alpha)?)/batches(?:/([^/:?]+))?(?::(cancel))?$")
_STATE = {None: "BATCH_STATE_RUNNING", "completed": "BATCH_STATE_SUCCEEDED", "failed": "BATCH_STATE_FAILED",
          "cancelled": "BATCH_STATE_CANCELLED", "expired": "BATCH_STATE_EXPIRED"}
#: gRPC codes, as a batch line's error carries them.
_GRPC = {"INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5, "PERMISSION_DENIED": 7,
         "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13, "UNAVAILABLE": 14, "UNAUTHENTICATED": 16, "CANCELLED": 1}
_UNRUN = {"expired": (4, "The batch expired before this request was run."),
          "cancelled": (1, "The batch was cancelled before this request was run.")}



class GeminiBatchAPI(BatchBook, GeminiAPI):
    """``GeminiAPI`` plus Batch Mode with inlined requests and inlined responses."""

    def batch_kind(self, request: Request) -> str | None:
        path = urlsplit(request.path).path
        if _CREATE.match(path) and request.method == "POST":
            return "create"
        match = _BATCHES.match(path)
        if not match:
            return None
        _, ident, action = match.groups()
        if not ident:
            return "list"
        return "cancel" if action == "cancel" else "poll"

    def batch_reply(self, request: Request) -> Reply | None:
        path = urlsplit(request.path).path
        created = _CREATE.match(path)
        if created and request.method == "POST":
            return self.scripted("create", request) or self.create(request, created.group(1), created.group(2))
        match = _BATCHES.match(path)
        if not match:
            return None
        version, ident, action = match.groups()
        method = request.method
        if not ident:
            if method == "GET":
                return self.scripted("list", request) or self.listed(request, version)
            return self.error(404, f"no such route: {method} {request.path}")
        kind = "cancel" if action == "cancel" else "poll"
        scripted = self.scripted(kind, request)
        if scripted is not None:
            return scripted
        job = self.jobs.get(ident)
        if job is None:
            return self.error(404, f"batch batches/{ident} not found")
        if method == "GET" and kind == "poll":
            return Reply(200, self.operation(self.poll(job), version))
        if method == "POST" and kind == "cancel":
            self.cancel(job)
            return Reply(200, {})
        if method == "DELETE" and kind == "poll":
            del self.jobs[ident]
            return Reply(200, {})
        return self.error(404, f"no such route: {method} {request.path}")

    def create(self, request: Request, version: str, model: str) -> Reply:
        batch = (request.json() or {}).get("batch") or {}
        entries = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(entries, list) or not entries:
            return self.error(400, "batch.input_config: inlined requests are required (this fake reads no files)")
        lines: list[Line] = []
        for position, entry in enumerate(entries):
            body = dict((entry or {}).get("request") or {})
            if not body.get("contents"):
                return self.error(400, f"batch.input_config.requests.requests[{position}].request.contents is empty")
            line_model = str(body.pop("model", "") or f"models/{model}").split("/")[-1]
            sync = Request("POST", f"/{version}/models/{line_model}:generateContent",
                           {"content-type": "application/json"}, json.dumps(body).encode())
            lines.append(Line(position, line_model, sync, {"metadata": (entry or {}).get("metadata")}))
        job = self.new_job("fake-", lines, model=model, display_name=batch.get("displayName"))
        return Reply(200, self.operation(job, version))

    def listed(self, request: Request, version: str) -> Reply:
        params = query(request)
        newest = list(reversed(self.jobs.values()))
        items, more = page(newest, params.get("pageToken"), int(params.get("pageSize") or 20))
        answer: dict[str, Any] = {"operations": [self.operation(job, version) for job in items]}
        if more:
            answer["nextPageToken"] = items[-1].id
        return Reply(200, answer)

    def operation(self, job: Job, version: str) -> dict:
        state = "BATCH_STATE_PENDING" if job.polls == 0 and job.end is None else _STATE[job.end]
        counts = {"requestCount": str(len(job.lines)),
                  "pendingRequestCount": str(0 if job.end else len(job.lines)),
                  "successfulRequestCount": str(job.count("answered")),
                  "failedRequestCount": str(job.count("failed"))}
        metadata: dict[str, Any] = {
            "@type": f"type.googleapis.com/google.ai.generativelanguage.{version}.GenerateContentBatch",
            "name": f"batches/{job.id}", "model": f"models/{job.info['model']}",
            "displayName": job.info.get("display_name"), "state": state, "batchStats": counts,
            "createTime": iso_time(job.created), "updateTime": iso_time(job.ended or job.created),
        }
        operation: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": metadata, "done": job.end is not None}
        if job.end is not None:
            metadata["endTime"] = iso_time(job.ended)
        output = self.output(job)
        if output is not None:
            metadata["output"] = output
            operation["response"] = {
                "@type": f"type.googleapis.com/google.ai.generativelanguage.{version}.GenerateContentBatchOutput",
                **output}
        if job.end == "failed":
            operation["error"] = {"code": 3, "message": job.plan.fail or "the batch failed"}
        return operation

    def output(self, job: Job) -> dict | None:
        """The inlined responses, in input order, once the batch has ended with something to give."""
        if job.end is None or job.end == "failed":
            return None
        if not any(outcome.kind in ("answered", "failed") for outcome in job.outcomes.values()):
            return None  # expired or cancelled before any line ran: Gemini gives no results
        entries = []
        for line in job.lines:
            outcome = job.outcomes[line.key]
            entry: dict[str, Any] = {}
            if outcome.kind == "answered":
                entry["response"] = outcome.body()
            elif outcome.kind == "failed":
                error = outcome.body().get("error") or {}
                entry["error"] = {"code": _GRPC.get(error.get("status"), 2), "message": error.get("message", "")}
            else:
                code, message = _UNRUN[outcome.kind]
                entry["error"] = {"code": code, "message": message}
            if line.extra.get("metadata") is not None:
                entry["metadata"] = line.extra["metadata"]
            entries.append(entry)
        return {"inlinedResponses": {"inlinedResponses": entries}}
