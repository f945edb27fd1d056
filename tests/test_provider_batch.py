"""The adapters' batch API methods, each through its vendor's real SDK over real HTTP to the batch fakes.

Every vendor gets the same drill: a round trip whose answers are the synchronous call's, batch lines
whose bodies are what a synchronous call sends, failed lines, a batch that expired or was cancelled
part-way, a poll refused with a 429, a dropped connection, a rejected key, and structured output.
Finding a batch again differs by vendor (a tag for OpenAI and Gemini; count and creation time for
Anthropic), and so do their own tests. Nothing here patches an SDK or an adapter; a plan says how many
polls a batch runs for, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

import pytest

from agent.config import Limits
from agent.errors import AuthError, ProviderError
from agent.llm import CompletionRequest
from agent.providers import get_provider
from agent.providers.base import BatchItem, BatchState, Provider
from tests.servers import Reply, serve
from tests.servers.anthropic_batch import AnthropicBatchAPI
from tests.servers.gemini_batch import GeminiBatchAPI
from tests.servers.openai_batch import BatchBook, OpenAIBatchAPI

# google-genai defines a ClientSession subclass, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

KEY = "test-key-9e2a51d0"
SYSTEM = "Answer briefly."
PROMPTS = ["What do the sources say about heat pumps?", "And about district heating?",
           "Which of them is cheaper to run?", "Summarize the disagreement."]
SCHEMA = {"title": "Verdict", "type": "object", "additionalProperties": False, "required": ["answer", "sure"],
          "properties": {"answer": {"type": "string"}, "sure": {"type": "boolean"}}}
FAST = Limits(concurrency=4, timeout_s=5.0, max_retries=0, retry_cap_s=0.05)


@dataclass
class Vendor:
    model_id: str
    fake: Callable[..., BatchBook]
    env: Callable[[str], dict[str, str]]
    key_variable: str

    @property
    def name(self) -> str:
        return self.model_id.split(":")[0]

    def line(self, i: int) -> Any:
        """How a plan names the i-th line: by custom_id, or by position for Gemini."""
        return i if self.name == "gemini" else f"q{i}"


VENDORS = {
    "openai": Vendor("openai:gpt-4o-mini", OpenAIBatchAPI,
                     lambda url: {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{url}/v1"}, "OPENAI_API_KEY"),
    "anthropic": Vendor("anthropic:claude-haiku-4-5", AnthropicBatchAPI,
                        lambda url: {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url}, "ANTHROPIC_API_KEY"),
    "gemini": Vendor("gemini:gemini-2.5-flash", GeminiBatchAPI,
                     lambda url: {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url}, "GEMINI_API_KEY"),
}


def ask(prompt: str, **fields: Any) -> CompletionRequest:
    return CompletionRequest(prompt=prompt, system=SYSTEM, max_tokens=300, **fields)


def items(prompts: list[str] = PROMPTS, **fields: Any) -> list[BatchItem]:
    return [BatchItem(f"q{i}", ask(prompt, **fields)) for i, prompt in enumerate(prompts)]


class Served:
    """A running batch fake of one vendor, the environment pointing at it, and a provider to drive it."""

    def __init__(self, vendor: Vendor, fake: BatchBook, server: Any) -> None:
        self.vendor, self.fake, self.server = vendor, fake, server

    def run(self, scenario: Callable[[Provider], Awaitable[Any]]) -> Any:
        """``scenario(provider)`` on a fresh provider in its own event loop, the provider closed after."""
        provider = get_provider(self.vendor.model_id, limits=FAST)

        async def main() -> Any:
            try:
                return await scenario(provider)
            finally:
                await provider.aclose()
        return asyncio.run(main())

    def job(self, vendor_id: str) -> Any:
        return self.fake.jobs[vendor_id.split("/")[-1]]  # Gemini's ids are "batches/<id>"


@contextlib.contextmanager
def serving(vendor: Vendor, monkeypatch) -> Iterator[Served]:
    fake = vendor.fake(key=KEY)
    with serve(fake) as server:
        for name, value in vendor.env(server.url).items():
            monkeypatch.setenv(name, value)
        yield Served(vendor, fake, server)


@pytest.fixture(params=sorted(VENDORS))
def vendor(request) -> Vendor:
    return VENDORS[request.param]


@pytest.fixture
def served(vendor, monkeypatch):
    with serving(vendor, monkeypatch) as served:
        yield served


async def until_ended(provider: Provider, vendor_id: str, *, most: int = 10) -> list[BatchState]:
    """Every poll's state, up to the first that is not running."""
    states = []
    for _ in range(most):
        states.append(await provider.batch_status(vendor_id))
        if states[-1].status != "running":
            return states
    raise AssertionError(f"batch {vendor_id} still running after {most} polls")


async def submitted_and_ended(provider: Provider, batch: list[BatchItem], tag: str = "run-1") -> tuple[str, list]:
    vendor_id = await provider.batch_submit(batch, tag)
    return vendor_id, await until_ended(provider, vendor_id)


# -- every vendor --------------------------------------------------------------------------------

def test_round_trip_answers_what_a_synchronous_call_answers(vendor, served):
    served.fake.plan(polls=2)
    batch = items()

    async def scenario(provider):
        expected = [await provider.complete(item.request) for item in batch]
        vendor_id, states = await submitted_and_ended(provider, batch)
        return expected, vendor_id, states, await provider.batch_results(vendor_id, [i.custom_id for i in batch])

    expected, vendor_id, states, answers = served.run(scenario)
    assert [state.status for state in states] == ["running", "running", "ended"]
    assert all(state.vendor_id == vendor_id for state in states)
    assert states[-1].done == states[-1].total == len(batch)
    assert [answer.custom_id for answer in answers] == ["q0", "q1", "q2", "q3"]
    assert all(answer.error is None and answer.unanswered is None for answer in answers)
    assert [answer.completion for answer in answers] == expected  # text, usage, model and finish reason
    assert all(text.startswith(f"{vendor.name} ") for text in (c.text for c in expected))
    usage = answers[0].completion.usage
    assert usage.input_tokens >= len(PROMPTS[0].split()) and usage.output_tokens > 0
    assert len(served.fake.jobs) == 1 and len(served.fake.batch_answered) == len(batch)


def test_each_line_sends_what_a_synchronous_call_sends(vendor, served):
    batch = items(PROMPTS[:2]) + [BatchItem("q2", ask(PROMPTS[2], schema=SCHEMA, temperature=0.3))]

    async def scenario(provider):
        for item in batch:
            await provider.complete(item.request)
        return await provider.batch_submit(batch, "run-b")

    vendor_id = served.run(scenario)
    lines = served.job(vendor_id).lines
    assert [line.request.json() for line in lines] == [sent.json() for sent in served.fake.answered]
    assert lines[0].model == vendor.model_id.split(":")[1]
    if vendor.name != "gemini":
        assert [line.key for line in lines] == ["q0", "q1", "q2"]
    else:  # the custom_id travels as the request's metadata, and comes back with its response
        assert [line.extra["metadata"] for line in lines] == [{"custom_id": f"q{i}"} for i in range(3)]


def test_a_schema_request_comes_back_as_json_text(vendor, served):
    batch = items(PROMPTS[:2], schema=SCHEMA)

    async def scenario(provider):
        expected = await provider.complete(batch[0].request)
        vendor_id, _ = await submitted_and_ended(provider, batch)
        return expected, await provider.batch_results(vendor_id, ["q0", "q1"])

    expected, answers = served.run(scenario)
    assert answers[0].completion == expected
    for answer in answers:
        data = json.loads(answer.completion.text)
        assert set(data) == {"answer", "sure"} and data["sure"] is True
        assert answer.completion.finish_reason == "stop"  # Anthropic's forced tool call ends the answer
        assert answer.completion.notes == []


def test_failed_lines_are_final_errors_and_the_rest_answers(vendor, served):
    served.fake.plan(failed=[vendor.line(1), vendor.line(3)])

    async def scenario(provider):
        vendor_id, states = await submitted_and_ended(provider, items())
        return states[-1], await provider.batch_results(vendor_id, ["q0", "q1", "q2", "q3"])

    state, answers = served.run(scenario)
    assert state.status == "ended" and state.done == 4
    assert [answer.completion is not None for answer in answers] == [True, False, True, False]
    for answer in (answers[1], answers[3]):
        error = answer.error
        assert isinstance(error, ProviderError) and not error.retryable and not error.fatal
        assert error.status == 400 and error.provider == vendor.name
        assert f"request {vendor.line(int(answer.custom_id[1:]))} is not valid" in str(error)


def test_a_line_with_no_text_is_the_empty_answer_error(vendor, served):
    fake = served.fake
    fake.plan(lines={vendor.line(0): fake.answer(""), vendor.line(1): fake.error(503, "overloaded")})

    async def scenario(provider):
        vendor_id, _ = await submitted_and_ended(provider, items(PROMPTS[:3]))
        return await provider.batch_results(vendor_id, ["q0", "q1", "q2"])

    empty, unavailable, answered = served.run(scenario)
    assert "returned no text" in str(empty.error) and not empty.error.retryable
    # An Anthropic result carries the error's type, not its status: a 503 is an api_error, read as 500.
    assert unavailable.error.retryable and unavailable.error.status == (500 if vendor.name == "anthropic" else 503)
    assert "overloaded" in str(unavailable.error)
    assert answered.completion is not None


def test_an_expired_batch_answers_the_lines_it_ran(vendor, served):
    served.fake.plan(polls=1, expire=True, answered=2)

    async def scenario(provider):
        vendor_id, states = await submitted_and_ended(provider, items())
        return states, await provider.batch_results(vendor_id, ["q0", "q1", "q2", "q3"])

    states, answers = served.run(scenario)
    assert [state.status for state in states] == ["running", "ended"]
    assert [answer.completion is not None for answer in answers] == [True, True, False, False]
    assert [answer.unanswered for answer in answers] == [None, None, "expired", "expired"]
    assert all(answer.error is None for answer in answers)


def test_a_cancelled_batch_answers_the_lines_it_ran(vendor, served):
    served.fake.plan(polls=5, answered=1)

    async def scenario(provider):
        vendor_id = await provider.batch_submit(items(), "run-c")
        assert (await provider.batch_status(vendor_id)).status == "running"
        served.fake.cancel(served.job(vendor_id))  # cancelled from the vendor's console
        states = await until_ended(provider, vendor_id)
        return states, await provider.batch_results(vendor_id, ["q0", "q1", "q2", "q3"])

    states, answers = served.run(scenario)
    assert [state.status for state in states] == ["ended"]
    assert answers[0].completion is not None
    assert [answer.unanswered for answer in answers[1:]] == ["cancelled"] * 3


@pytest.mark.parametrize("end", ["expired", "cancelled"])
def test_a_batch_that_ended_before_running_anything(vendor, served, end):
    served.fake.plan(polls=5, expire=end == "expired")

    async def scenario(provider):
        vendor_id = await provider.batch_submit(items(PROMPTS[:2]), "run-n")
        job = served.job(vendor_id)
        if end == "cancelled":
            served.fake.cancel(job)
        else:
            job.plan.polls = 0
        await until_ended(provider, vendor_id)
        return await provider.batch_results(vendor_id, ["q0", "q1"])

    answers = served.run(scenario)
    assert [(answer.completion, answer.error, answer.unanswered) for answer in answers] == [(None, None, end)] * 2


def test_a_request_the_results_do_not_hold_is_missing(vendor, served):
    async def scenario(provider):
        vendor_id, _ = await submitted_and_ended(provider, items(PROMPTS[:2]))
        return await provider.batch_results(vendor_id, ["q0", "q1", "q2"])

    answers = served.run(scenario)
    assert [answer.completion is not None for answer in answers] == [True, True, False]
    assert answers[2].unanswered == "missing" and answers[2].custom_id == "q2"


def test_a_429_on_a_poll_is_retryable_with_its_wait(vendor, served):
    fake = served.fake
    fake.plan(polls=1)
    fake.script_batch(fake.error(429, "slow down", headers={"retry-after": "1"}), on="poll")

    async def scenario(provider):
        vendor_id = await provider.batch_submit(items(PROMPTS[:2]), "run-429")
        with pytest.raises(ProviderError) as raised:
            await provider.batch_status(vendor_id)
        return raised.value, await until_ended(provider, vendor_id)

    error, states = served.run(scenario)
    assert error.retryable and error.status == 429 and error.retry_after == 1.0 and not error.fatal
    assert [state.status for state in states] == ["running", "ended"]  # the refused poll did not count


def test_a_dropped_connection_is_a_retryable_transport_error(vendor, served):
    served.fake.script_batch(Reply(drop=True), on="create")

    async def scenario(provider):
        with pytest.raises(ProviderError) as raised:
            await provider.batch_submit(items(PROMPTS[:1]), "run-drop")
        return raised.value

    error = served.run(scenario)
    assert error.retryable and error.status is None and "could not be reached" in str(error)
    assert served.fake.jobs == {}


def test_a_rejected_key_stops_the_submission(vendor, served, monkeypatch):
    monkeypatch.setenv(vendor.key_variable, "wrong-key-1f3e8a2b")

    async def scenario(provider):
        with pytest.raises(ProviderError) as raised:
            await provider.batch_submit(items(PROMPTS[:1]), "run-k")
        return raised.value

    error = served.run(scenario)
    assert isinstance(error, AuthError) and error.fatal and vendor.key_variable in str(error)
    assert served.fake.jobs == {}


def test_a_warmed_client_is_adopted(vendor, served):
    async def scenario(provider):
        provider.warm()
        _, warming = provider._client._warming  # the client being made in a thread
        await provider.batch_submit(items(PROMPTS[:1]), "run-w")
        return provider._client._client is warming.result()

    assert served.run(scenario)  # the batch call waited for it rather than making another


# -- finding a batch again -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["openai", "gemini"])
def test_tagged_batches_are_found_by_their_tag(name, monkeypatch):
    async def scenario(provider):
        made = [await provider.batch_submit(items(PROMPTS[:2]), tag) for tag in ("run-a", "run-b")]
        found = [await provider.batch_find(tag, count=2, created_after=time.time() - 60)
                 for tag in ("run-a", "run-b", "run-z")]
        return made, found

    with serving(VENDORS[name], monkeypatch) as served:
        made, found = served.run(scenario)
    assert found == [made[0], made[1], None]


def test_anthropic_finds_the_earliest_batch_by_count_and_time(monkeypatch):
    with serving(VENDORS["anthropic"], monkeypatch) as served:
        async def scenario(provider):
            started = time.time()
            made = [await provider.batch_submit(items(prompts), "any") for prompts in (PROMPTS, PROMPTS[:2], PROMPTS)]

            async def find(count, since=started, taken=frozenset()):
                return await provider.batch_find("any", count=count, created_after=since, taken=taken)

            found = {"four": await find(4), "two": await find(2), "three": await find(3),
                     "skip": await find(4, taken=frozenset({made[0]})),
                     "none left": await find(4, taken=frozenset({made[0], made[2]})),
                     "skewed": await find(2, since=started + 3)}
            for job in served.fake.jobs.values():
                job.created -= 3600  # an hour ago: made before this attempt
            found["older"] = await find(4)
            return made, found

        made, found = served.run(scenario)
    assert found == {"four": made[0], "two": made[1], "three": None, "skip": made[2], "none left": None,
                     "skewed": made[1], "older": None}


def test_anthropic_stops_listing_at_batches_older_than_the_attempt(monkeypatch):
    with serving(VENDORS["anthropic"], monkeypatch) as served:
        async def scenario(provider):
            for _ in range(25):  # more than one page of the list
                await provider.batch_submit(items(PROMPTS[:1]), "any")
            for job in list(served.fake.jobs.values())[:-1]:
                job.created -= 3600
            served.server.clear()
            return await provider.batch_find("any", count=2, created_after=time.time() - 60)

        assert served.run(scenario) is None
        listed = [r for r in served.server.requests if r.method == "GET"]
    assert len(listed) == 1


def test_results_for_requests_this_run_never_sent_are_refused(vendor, served):
    async def scenario(provider):
        vendor_id, _ = await submitted_and_ended(provider, items())
        with pytest.raises(ProviderError) as raised:
            await provider.batch_results(vendor_id, ["q0", "q1"])  # q2 and q3 are not this run's
        return vendor_id, raised.value

    vendor_id, error = served.run(scenario)
    assert not error.retryable and vendor_id in str(error) and "not this run's" in str(error)


def test_results_come_in_the_order_asked_for(vendor, served):
    """By custom_id where the vendor names them; Gemini answers by position, and its responses echo the
    custom_id each request carried, so answers read in another order are refused, not mismatched."""
    async def scenario(provider):
        vendor_id, _ = await submitted_and_ended(provider, items())
        in_order = await provider.batch_results(vendor_id, ["q0", "q1", "q2", "q3"])
        try:
            return in_order, await provider.batch_results(vendor_id, ["q2", "q0", "q3", "q1"])
        except ProviderError as exc:
            return in_order, exc

    in_order, shuffled = served.run(scenario)
    if vendor.name == "gemini":
        assert isinstance(shuffled, ProviderError) and "response 0 is for 'q0'" in str(shuffled)
    else:
        assert shuffled == [in_order[2], in_order[0], in_order[3], in_order[1]]


# -- each vendor's own ---------------------------------------------------------------------------

def test_openai_a_batch_refused_at_validation_has_failed(monkeypatch):
    with serving(VENDORS["openai"], monkeypatch) as served:
        served.fake.plan(fail="the input file is not valid")
        vendor_id, states = served.run(lambda provider: submitted_and_ended(provider, items(PROMPTS[:2])))
        (upload,) = [r for r in served.server.requests if r.path == "/v1/files"]
    assert [(s.status, s.total, s.detail) for s in states] == [("failed", 2, "the input file is not valid")]
    assert upload.headers["content-type"].startswith("multipart/form-data")


def test_openai_batches_carry_the_tag_in_their_metadata(monkeypatch):
    with serving(VENDORS["openai"], monkeypatch) as served:
        vendor_id = served.run(lambda provider: provider.batch_submit(items(), "run-m"))
    job = served.fake.jobs[vendor_id]
    assert job.info["metadata"] == {"research_tag": "run-m"} and job.info["endpoint"] == "/v1/chat/completions"


def test_gemini_a_failed_batch_has_failed(monkeypatch):
    async def scenario(provider):
        vendor_id, states = await submitted_and_ended(provider, items(PROMPTS[:2]))
        return vendor_id, states, await provider.batch_results(vendor_id, ["q0", "q1"])

    with serving(VENDORS["gemini"], monkeypatch) as served:
        served.fake.plan(fail="the input is not valid")
        vendor_id, states, answers = served.run(scenario)
    assert vendor_id.startswith("batches/") and [s.status for s in states] == ["failed"]
    assert states[0].detail  # the SDK does not read the operation's error: a generic detail
    assert [answer.unanswered for answer in answers] == ["missing", "missing"]


def test_only_the_vendors_with_a_batch_api_say_so(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    flags = {model_id: get_provider(model_id).batch_api
             for model_id in ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash",
                              "openai-compatible:qwen", "ollama:llama3")}
    assert flags == {"openai:gpt-4o-mini": True, "anthropic:claude-haiku-4-5": True, "gemini:gemini-2.5-flash": True,
                     "openai-compatible:qwen": False, "ollama:llama3": False}
