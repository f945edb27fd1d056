"""The batch fakes, each driven by its vendor's real async SDK over loopback (``max_retries=0``).

The product's batch mode submits many completions at once, polls until the batch ends, and reads the
answers back by ``custom_id`` (by position for Gemini). These tests hold the fakes to what the SDKs
send and parse, so the product's batch tests can trust them: a whole round trip whose answers are the
synchronous fake's, lines that fail, a batch that expires part-way, one cancelled, a 429 on a poll, and
the record a test uses to see that nothing was submitted twice. A batch that "takes a while" is one
that stays running for N polls; nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.servers import serve
from tests.servers.anthropic_batch import AnthropicBatchAPI
from tests.servers.gemini_batch import GeminiBatchAPI
from tests.servers.openai_batch import BatchBook, OpenAIBatchAPI, Plan

KEY = "test-key-b47c0e19"
PROMPTS = ["What do the sources say about heat pumps?", "And about district heating?",
           "Which of them is cheaper to run?", "Summarize the disagreement."]
SYSTEM = "Answer briefly."


# -- one adapter per vendor: the SDK calls the product's batch mode makes -------------------------

class OpenAIVendor:
    name = "openai"
    fake = OpenAIBatchAPI
    rate_limited = openai.RateLimitError

    @staticmethod
    def key(i: int) -> str:
        return f"q{i}"

    def client(self, url: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0, timeout=10)

    def body(self, prompt: str) -> dict:
        return {"model": "gpt-4o-mini", "max_completion_tokens": 300,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]}

    async def sync_text(self, client, prompt: str) -> str:
        return (await client.chat.completions.create(**self.body(prompt))).choices[0].message.content

    async def submit(self, client, prompts: list[str], tag: str) -> str:
        jsonl = "".join(json.dumps({"custom_id": self.key(i), "method": "POST", "url": "/v1/chat/completions",
                                    "body": self.body(p)}) + "\n" for i, p in enumerate(prompts))
        upload = await client.files.create(file=("batch.jsonl", jsonl.encode()), purpose="batch")
        batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                            completion_window="24h", metadata={"run": tag})
        assert batch.status == "validating"
        return batch.id

    async def status(self, client, ident: str) -> str:
        batch = await client.batches.retrieve(ident)
        return {"validating": "running", "in_progress": "running", "finalizing": "running",
                "cancelling": "running"}.get(batch.status, batch.status)

    async def cancel(self, client, ident: str) -> None:
        assert (await client.batches.cancel(ident)).status == "cancelling"

    async def find(self, client, tag: str) -> str | None:
        async for batch in client.batches.list():
            if (batch.metadata or {}).get("run") == tag:
                return batch.id
        return None

    async def results(self, client, ident: str) -> dict[Any, tuple]:
        batch = await client.batches.retrieve(ident)
        found: dict[Any, tuple] = {}
        order = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            for raw in (await client.files.content(file_id)).text.splitlines():
                line = json.loads(raw)
                order.append(line["custom_id"])
                response = line["response"]
                if line["error"] is not None:
                    assert line["error"]["code"] == "batch_expired"
                    found[line["custom_id"]] = ("expired",)
                elif response["status_code"] == 200:
                    completion = openai.types.chat.ChatCompletion.model_validate(response["body"])
                    found[line["custom_id"]] = ("answered", completion.choices[0].message.content)
                else:
                    found[line["custom_id"]] = ("failed", response["body"]["error"]["message"])
        found["__order__"] = tuple(order)
        return found

    async def close(self, client) -> None:
        await client.close()


class AnthropicVendor:
    name = "anthropic"
    fake = AnthropicBatchAPI
    rate_limited = anthropic.RateLimitError

    def __init__(self) -> None:
        #: Anthropic batches carry no metadata: the product keeps the id it got for its tag.
        self.tags: dict[str, str] = {}

    @staticmethod
    def key(i: int) -> str:
        return f"q{i}"

    def client(self, url: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0, timeout=10)

    def params(self, prompt: str) -> dict:
        return {"model": "claude-haiku-4-5", "max_tokens": 300, "system": SYSTEM,
                "messages": [{"role": "user", "content": prompt}]}

    async def sync_text(self, client, prompt: str) -> str:
        return (await client.messages.create(**self.params(prompt))).content[0].text

    async def submit(self, client, prompts: list[str], tag: str) -> str:
        batch = await client.messages.batches.create(
            requests=[{"custom_id": self.key(i), "params": self.params(p)} for i, p in enumerate(prompts)])
        assert batch.processing_status == "in_progress" and batch.request_counts.processing == len(prompts)
        self.tags[tag] = batch.id
        return batch.id

    async def status(self, client, ident: str) -> str:
        batch = await client.messages.batches.retrieve(ident)
        if batch.processing_status != "ended":
            return "running"
        counts = batch.request_counts
        if counts.canceled:
            return "cancelled"
        return "expired" if counts.expired else "completed"

    async def cancel(self, client, ident: str) -> None:
        assert (await client.messages.batches.cancel(ident)).processing_status == "canceling"

    async def find(self, client, tag: str) -> str | None:
        ids = [batch.id async for batch in client.messages.batches.list()]
        return self.tags[tag] if self.tags.get(tag) in ids else None

    async def results(self, client, ident: str) -> dict[Any, tuple]:
        found: dict[Any, tuple] = {}
        order = []
        async for line in await client.messages.batches.results(ident):
            order.append(line.custom_id)
            result = line.result
            if result.type == "succeeded":
                found[line.custom_id] = ("answered", result.message.content[0].text)
            elif result.type == "errored":
                found[line.custom_id] = ("failed", result.error.error.message)
            else:
                found[line.custom_id] = ({"canceled": "cancelled"}.get(result.type, result.type),)
        found["__order__"] = tuple(order)
        return found

    async def close(self, client) -> None:
        await client.close()


class GeminiVendor:
    name = "gemini"
    fake = GeminiBatchAPI
    rate_limited = genai_errors.ClientError

    @staticmethod
    def key(i: int) -> int:
        return i

    def client(self, url: str) -> Any:
        options = genai_types.HttpOptions(base_url=url, timeout=10_000,
                                          retry_options=genai_types.HttpRetryOptions(attempts=1))
        return genai.Client(api_key=KEY, vertexai=False, http_options=options)

    def config(self) -> dict:
        return {"max_output_tokens": 300, "system_instruction": SYSTEM}

    async def sync_text(self, client, prompt: str) -> str:
        return (await client.aio.models.generate_content(model="gemini-2.5-flash", contents=prompt,
                                                         config=self.config())).text

    async def submit(self, client, prompts: list[str], tag: str) -> str:
        src = [{"contents": [{"role": "user", "parts": [{"text": p}]}], "config": self.config(),
                "metadata": {"key": str(i)}} for i, p in enumerate(prompts)]
        job = await client.aio.batches.create(model="gemini-2.5-flash", src=src, config={"display_name": tag})
        assert job.state == genai_types.JobState.JOB_STATE_PENDING and job.display_name == tag
        return job.name

    async def status(self, client, ident: str) -> str:
        job = await client.aio.batches.get(name=ident)
        return {"JOB_STATE_PENDING": "running", "JOB_STATE_RUNNING": "running",
                "JOB_STATE_SUCCEEDED": "completed", "JOB_STATE_EXPIRED": "expired",
                "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_FAILED": "failed"}[job.state.value]

    async def cancel(self, client, ident: str) -> None:
        await client.aio.batches.cancel(name=ident)

    async def find(self, client, tag: str) -> str | None:
        async for job in await client.aio.batches.list():
            if job.display_name == tag:
                return job.name
        return None

    async def results(self, client, ident: str) -> dict[Any, tuple]:
        job = await client.aio.batches.get(name=ident)
        found: dict[Any, tuple] = {}
        responses = job.dest.inlined_responses if job.dest else []
        for position, entry in enumerate(responses):
            assert entry.metadata == {"key": str(position)}  # in input order, metadata echoed
            if entry.response is not None:
                found[position] = ("answered", entry.response.text)
            elif entry.error.code == 4:
                found[position] = ("expired",)
            elif entry.error.code == 1:
                found[position] = ("cancelled",)
            else:
                found[position] = ("failed", entry.error.message)
        found["__order__"] = tuple(range(len(responses)))
        return found

    async def close(self, client) -> None:
        await client.aio.aclose()
        client.close()


VENDORS = {vendor.name: vendor for vendor in (OpenAIVendor, AnthropicVendor, GeminiVendor)}

# google-genai defines a ClientSession subclass, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")


@dataclass
class Drive:
    vendor: Any
    fake: BatchBook
    url: str


@pytest.fixture(params=sorted(VENDORS))
def drive(request):
    vendor = VENDORS[request.param]()
    fake = vendor.fake(key=KEY)
    with serve(fake) as server:
        yield Drive(vendor, fake, server.url)


def run(drive: Drive, scenario: Callable) -> Any:
    async def main():
        client = drive.vendor.client(drive.url)
        try:
            return await scenario(drive.vendor, client)
        finally:
            await drive.vendor.close(client)
    return asyncio.run(main())


async def wait(vendor, client, ident: str, *, most: int = 20) -> tuple[str, int]:
    """Poll until the batch ends: its final status and how many polls it took."""
    for polls in range(1, most + 1):
        status = await vendor.status(client, ident)
        if status != "running":
            return status, polls
    raise AssertionError(f"batch {ident} still running after {most} polls")


# -- every vendor --------------------------------------------------------------------------------

def test_round_trip_answers_what_the_synchronous_fake_answers(drive):
    drive.fake.plan(polls=2)

    async def scenario(vendor, client):
        expected = [await vendor.sync_text(client, prompt) for prompt in PROMPTS]
        ident = await vendor.submit(client, PROMPTS, "run-1")
        status, polls = await wait(vendor, client, ident)
        return expected, ident, status, polls, await vendor.results(client, ident), await vendor.find(client, "run-1")

    expected, ident, status, polls, results, found = run(drive, scenario)
    assert status == "completed" and polls == 3  # running for two polls, ended on the third
    key = drive.vendor.key
    assert {k: v for k, v in results.items() if k != "__order__"} == {
        key(i): ("answered", text) for i, text in enumerate(expected)}
    assert all(text.startswith(f"{drive.vendor.name} ") for text in expected)
    order = list(results["__order__"])
    if drive.vendor.name == "gemini":
        assert order == [key(i) for i in range(len(PROMPTS))]  # inlined responses keep input order
    else:
        assert sorted(order) == [key(i) for i in range(len(PROMPTS))] and order != sorted(order)
    assert found == ident  # a resumed run finds its batch by its tag
    assert len(drive.fake.jobs) == 1 and drive.fake.submitted() == [key(i) for i in range(len(PROMPTS))]
    assert len(drive.fake.batch_answered) == len(PROMPTS)
    assert len(drive.fake.answered) == len(PROMPTS)  # the synchronous calls, counted apart as before


def test_failed_lines(drive):
    key = drive.vendor.key
    drive.fake.plan(failed=[key(1), key(3)])

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS, "run-f")
        return await wait(vendor, client, ident), await vendor.results(client, ident)

    (status, _), results = run(drive, scenario)
    assert status == "completed"
    assert [results[key(i)][0] for i in range(4)] == ["answered", "failed", "answered", "failed"]
    assert "not valid" in results[key(1)][1]


def test_expired_batch_answers_some_lines_and_not_the_rest(drive):
    key = drive.vendor.key
    drive.fake.plan(polls=1, expire=True, answered=[key(0), key(2)])

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS, "run-e")
        return await wait(vendor, client, ident), await vendor.results(client, ident)

    (status, polls), results = run(drive, scenario)
    assert status == "expired" and polls == 2
    assert [results[key(i)][0] for i in range(4)] == ["answered", "expired", "answered", "expired"]
    assert len(drive.fake.batch_answered) == 2


def test_cancelled_batch(drive):
    key = drive.vendor.key
    drive.fake.plan(polls=5, answered=1)  # the first line had run before the cancel reached it

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS, "run-c")
        assert await vendor.status(client, ident) == "running"
        await vendor.cancel(client, ident)
        return await wait(vendor, client, ident), await vendor.results(client, ident)

    (status, polls), results = run(drive, scenario)
    assert status == "cancelled" and polls == 1  # the poll after the cancel sees it ended
    assert results[key(0)][0] == "answered"
    for i in range(1, 4):  # never run: OpenAI leaves them out of both files, the others say so
        assert results.get(key(i), ("cancelled",)) == ("cancelled",)
    if drive.vendor.name == "openai":
        assert key(1) not in results


def test_a_429_on_a_poll_then_the_batch_as_before(drive):
    fake = drive.fake
    fake.plan(polls=1)
    fake.script_batch(fake.error(429, "slow down", headers={"retry-after": "0"}), on="poll")

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS[:2], "run-429")
        with pytest.raises(vendor.rate_limited) as raised:
            await vendor.status(client, ident)
        return raised.value, await wait(vendor, client, ident)

    error, (status, polls) = run(drive, scenario)
    assert getattr(error, "status_code", getattr(error, "code", None)) == 429
    assert status == "completed" and polls == 2  # the refused poll did not count as one
    assert len(drive.fake.jobs) == 1


def test_a_batch_that_takes_a_while_by_the_clock(drive):
    drive.fake.plan(seconds=3600)

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS[:1], "run-slow")
        for _ in range(3):
            assert await vendor.status(client, ident) == "running"
        job = next(iter(drive.fake.jobs.values()))
        job.created -= 3600  # an hour passes
        return await vendor.status(client, ident)

    assert run(drive, scenario) == "completed"


def test_the_record_shows_a_double_submission(drive):
    async def scenario(vendor, client):
        first = await vendor.submit(client, PROMPTS[:2], "run-d")
        second = await vendor.submit(client, PROMPTS[:2], "run-d")
        return first, second

    first, second = run(drive, scenario)
    assert first != second and list(drive.fake.jobs) == [first.split("/")[-1], second.split("/")[-1]]
    assert Counter(drive.fake.submitted()) == {drive.vendor.key(0): 2, drive.vendor.key(1): 2}
    creates = [r for r in drive.fake.batch_requests if r.method == "POST" and not r.path.endswith("cancel")
               and "/files" not in r.path]
    assert len(creates) == 2


def test_a_wrong_key_is_refused_by_the_batch_api(drive):
    fake = drive.fake
    fake.key = "another-key"

    async def scenario(vendor, client):
        with pytest.raises(Exception) as raised:
            await vendor.submit(client, PROMPTS[:1], "run-k")
        return raised.value

    error = run(drive, scenario)
    assert getattr(error, "status_code", getattr(error, "code", None)) in (400, 401)
    assert fake.jobs == {}


def test_the_synchronous_script_is_not_spent_by_batches(drive):
    fake = drive.fake
    fake.script(fake.error(500, "boom"))

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS[:2], "run-s")
        await wait(vendor, client, ident)
        with pytest.raises(Exception) as raised:
            await vendor.sync_text(client, PROMPTS[0])
        return raised.value, await vendor.results(client, ident)

    error, results = run(drive, scenario)
    assert getattr(error, "status_code", getattr(error, "code", None)) == 500
    assert results[drive.vendor.key(0)][0] == results[drive.vendor.key(1)][0] == "answered"


def test_a_line_can_be_scripted_like_a_synchronous_reply(drive):
    fake = drive.fake
    key = drive.vendor.key
    fake.plan(lines={key(0): fake.answer("scripted text"), key(1): fake.error(500, "line broke")})

    async def scenario(vendor, client):
        ident = await vendor.submit(client, PROMPTS[:3], "run-l")
        await wait(vendor, client, ident)
        return await vendor.results(client, ident)

    results = run(drive, scenario)
    assert results[key(0)] == ("answered", "scripted text")
    assert results[key(1)] == ("failed", "line broke")
    assert results[key(2)][0] == "answered"


# -- each vendor's own ---------------------------------------------------------------------------

def test_openai_files_and_batch_objects():
    fake = OpenAIBatchAPI(key=KEY)
    vendor = OpenAIVendor()
    fake.plan(polls=1, failed=["q1"])

    async def scenario(client):
        ident = await vendor.submit(client, PROMPTS[:3], "run-o")
        first = await client.batches.retrieve(ident)
        done = await client.batches.retrieve(ident)
        errors = (await client.files.content(done.error_file_id)).text
        output_file = await client.files.retrieve(done.output_file_id)
        cancel_after = None
        try:
            await client.batches.cancel(ident)
        except openai.BadRequestError as exc:
            cancel_after = exc
        page = await client.batches.list(limit=1)
        return first, done, errors, output_file, cancel_after, page

    with serve(fake) as server:
        async def main():
            client = vendor.client(server.url)
            try:
                return await scenario(client)
            finally:
                await client.close()
        first, done, errors, output_file, cancel_after, page = asyncio.run(main())
        uploads = [r for r in server.requests if r.path == "/v1/files"]
    assert first.status == "in_progress" and first.request_counts.total == 3
    assert done.status == "completed" and done.completed_at and done.model == "gpt-4o-mini"
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.metadata == {"run": "run-o"} and done.input_file_id.startswith("file-")
    line = json.loads(errors)
    assert line["custom_id"] == "q1" and line["response"]["status_code"] == 400
    assert output_file.purpose == "batch_output"
    assert cancel_after is not None  # an ended batch cannot be cancelled
    assert [b.id for b in page.data] == [done.id]
    assert len(uploads) == 1 and uploads[0].headers["content-type"].startswith("multipart/form-data")


def test_openai_a_bad_input_file_fails_the_batch_at_validation():
    fake = OpenAIBatchAPI()

    async def main(url):
        client = OpenAIVendor().client(url)
        try:
            line = {"custom_id": "same", "method": "POST", "url": "/v1/chat/completions",
                    "body": OpenAIVendor().body("x")}
            jsonl = (json.dumps(line) + "\n") * 2
            upload = await client.files.create(file=("batch.jsonl", jsonl.encode()), purpose="batch")
            batch = await client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                completion_window="24h")
            return await client.batches.retrieve(batch.id)
        finally:
            await client.close()

    with serve(fake) as server:
        batch = asyncio.run(main(server.url))
    assert batch.status == "failed" and batch.failed_at
    assert batch.errors.data[0].code == "duplicate_custom_id" and batch.errors.data[0].line == 2
    assert batch.output_file_id is None and fake.batch_answered == []


def test_anthropic_batch_objects_and_early_results():
    fake = AnthropicBatchAPI(key=KEY)
    vendor = AnthropicVendor()
    fake.plan(polls=1)

    async def main(url):
        client = vendor.client(url)
        try:
            ident = await vendor.submit(client, PROMPTS[:2], "run-a")
            with pytest.raises(anthropic.AnthropicError, match="results_url"):
                await client.messages.batches.results(ident)  # its poll said still in progress
            ended = await client.messages.batches.retrieve(ident)
            with pytest.raises(anthropic.BadRequestError, match="duplicate"):
                await client.messages.batches.create(requests=[
                    {"custom_id": "x", "params": vendor.params("a")}, {"custom_id": "x", "params": vendor.params("b")}])
            return ended
        finally:
            await client.close()

    with serve(fake) as server:
        ended = asyncio.run(main(server.url))
        assert ended.results_url == f"{server.url}/v1/messages/batches/{ended.id}/results"
    assert ended.processing_status == "ended" and ended.ended_at and ended.created_at < ended.expires_at
    assert ended.request_counts.succeeded == 2 and ended.request_counts.processing == 0
    assert len(fake.jobs) == 1


def test_gemini_failed_and_expired_without_answers():
    fake = GeminiBatchAPI(key=KEY)
    vendor = GeminiVendor()
    fake.plan(fail="the input is not valid")
    fake.plan(expire=True)

    async def main(url):
        client = vendor.client(url)
        try:
            failed = await vendor.submit(client, PROMPTS[:2], "run-g1")
            expired = await vendor.submit(client, PROMPTS[:2], "run-g2")
            statuses = [await wait(vendor, client, failed), await wait(vendor, client, expired)]
            jobs = [await client.aio.batches.get(name=failed), await client.aio.batches.get(name=expired)]
            names = [job.display_name async for job in await client.aio.batches.list(config={"page_size": 1})]
            return statuses, jobs, names
        finally:
            await vendor.close(client)

    with serve(fake) as server:
        statuses, jobs, names = asyncio.run(main(server.url))
        paths = {r.path for r in server.requests}
    assert [status for status, _ in statuses] == ["failed", "expired"]
    assert all(job.dest is None and job.end_time for job in jobs)  # nothing to read back
    assert names == ["run-g2", "run-g1"]  # newest first, one page at a time
    assert "/v1/models/gemini-2.5-flash:batchGenerateContent" in paths and "/v1/batches?pageSize=1" in paths


def test_plans_are_used_in_order_then_the_default():
    fake = OpenAIBatchAPI(default_plan=Plan(polls=4))
    fake.plan(polls=1)

    async def main(url):
        vendor = OpenAIVendor()
        client = vendor.client(url)
        try:
            first = await vendor.submit(client, PROMPTS[:1], "p1")
            second = await vendor.submit(client, PROMPTS[:1], "p2")
            return (await wait(vendor, client, first))[1], (await wait(vendor, client, second))[1]
        finally:
            await client.close()

    with serve(fake) as server:
        assert asyncio.run(main(server.url)) == (2, 5)
