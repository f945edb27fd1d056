"""What each adapter makes of its vendor's answer: stop reasons, structured output and reasoning tokens.

Every vendor through its real SDK over real HTTP to a loopback fake of its API: an answer cut at the
output limit says ``length`` whatever the vendor calls it, a request with a JSON Schema carries it in
the vendor's own wire shape and gets JSON back, and reasoning tokens are counted apart and paid for.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Callable

import pytest

from agent.config import Limits
from agent.errors import ProviderError
from agent.llm import Completion, CompletionRequest, Usage, complete, llm_spec, normalize_finish_reason
from agent.pricing import cost_of, price_of
from agent.providers import get_provider
from agent.steps import Runtime
from agent.store import Store
from tests.servers import serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.fake_api import FakeAPI
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

KEY = "test-key-5e6f7a81"
FAST = Limits(concurrency=4, timeout_s=5.0, max_retries=1, retry_cap_s=0.01)
PLAN = {
    "title": "plan",
    "type": "object",
    "properties": {"queries": {"type": "array", "items": {"type": "string", "maxLength": 120}, "maxItems": 3}},
    "required": ["queries"],
    "additionalProperties": False,
}
ASK = CompletionRequest(prompt="What do the sources say about heat pumps?", system="Answer briefly.", max_tokens=300)
PLAN_ASK = CompletionRequest(prompt="Propose follow-up searches.", system="Plan.", max_tokens=300, schema=PLAN)


@dataclass
class Vendor:
    model_id: str
    fake: Callable[..., FakeAPI]
    env: Callable[[str], dict[str, str]]
    #: The vendor's own words for "cut at the limit", and a reason of its that is none of the three.
    length: str
    other: tuple[str, str]

    @property
    def name(self) -> str:
        return self.model_id.split(":")[0]


VENDORS = {
    "openai": Vendor("openai:gpt-4o-mini", OpenAIAPI,
                     lambda url: {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{url}/v1"},
                     '"finish_reason": "length"', ("tool_calls", "tool_calls")),
    "anthropic": Vendor("anthropic:claude-haiku-4-5", AnthropicAPI,
                        lambda url: {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url},
                        '"stop_reason": "max_tokens"', ("pause_turn", "pause_turn")),
    "gemini": Vendor("gemini:gemini-2.5-flash", GeminiAPI,
                     lambda url: {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url},
                     '"finishReason": "MAX_TOKENS"', ("LANGUAGE", "language")),
}


@pytest.fixture(params=sorted(VENDORS))
def vendor(request) -> Vendor:
    return VENDORS[request.param]


@pytest.fixture
def served(vendor, monkeypatch):
    fake = vendor.fake(key=KEY)
    with serve(fake) as server:
        for name, value in vendor.env(server.url).items():
            monkeypatch.setenv(name, value)
        yield fake, server


def calls(model_id: str, *requests: CompletionRequest) -> list:
    """Each request's completion (or provider error) through one provider, in one event loop."""
    provider = get_provider(model_id, limits=FAST)

    async def go():
        out = []
        try:
            for request in requests:
                try:
                    out.append(await provider.call(request))
                except ProviderError as exc:
                    out.append(exc)
        finally:
            await provider.aclose()
        return out

    return asyncio.run(go())


def sent(server) -> list[dict]:
    return [r.json() for r in server.requests]


# -- stop reasons --------------------------------------------------------------------------------

def test_a_cut_answer_says_length_whatever_the_vendor_calls_it(vendor, served):
    fake, server = served
    fake.script(fake.truncated())
    cut, whole = calls(vendor.model_id, ASK, ASK)
    assert cut.finish_reason == "length" and whole.finish_reason == "stop"
    assert whole.text.startswith(cut.text) and len(cut.text) < len(whole.text)
    # The fake said it in the vendor's own words: that is what the adapter read.
    assert vendor.length in json.dumps(fake.truncated()("m", server.requests[0]).body)


def test_a_filtered_answer_says_filter_and_other_reasons_stay_the_vendors(vendor, served):
    fake, _ = served
    raw, normalized = vendor.other
    fake.script(fake.answer("Part of an answer", finish="filter"), fake.answer("An answer", finish=raw))
    filtered, other = calls(vendor.model_id, ASK, ASK)
    assert filtered.finish_reason == "filter" and filtered.text == "Part of an answer"
    assert other.finish_reason == normalized


def test_a_cut_structured_answer_says_length(vendor, served):
    fake, _ = served
    fake.script(fake.answer(finish="length"))
    (cut,) = calls(vendor.model_id, PLAN_ASK)
    assert cut.finish_reason == "length"


def test_stored_vendor_words_replay_normalized():
    # Records paid before reasons were normalized hold the vendor's spelling.
    for raw, reason in [("end_turn", "stop"), ("max_tokens", "length"), ("MAX_TOKENS", "length"),
                        ("content_filter", "filter"), ("safety", "filter"), ("stop", "stop"), ("", ""),
                        ("model_context_window_exceeded", "length"), ("tool_calls", "tool_calls")]:
        assert normalize_finish_reason(raw) == reason
        assert Completion.from_json({"text": "x", "finish_reason": raw}).finish_reason == reason


# -- the request's new fields leave old keys and records alone ----------------------------------

def test_no_schema_means_the_key_and_record_shape_of_before():
    assert "schema" not in ASK.for_key() and "schema" not in ASK.for_key(offline=True)
    assert PLAN_ASK.for_key()["schema"] == PLAN
    provider = get_provider("local:extractive")
    with_schema = CompletionRequest(**{**ASK.__dict__, "schema": PLAN})
    assert llm_spec(provider, ASK, "n").key != llm_spec(provider, with_schema, "n").key
    plain = Completion(text="t", finish_reason="stop")
    assert set(plain.to_json()) == {"text", "usage", "model", "finish_reason"}
    noted = Completion(text="t", notes=["said so"])
    assert noted.to_json()["notes"] == ["said so"]
    assert Completion.from_json(noted.to_json()).notes == ["said so"]
    assert Completion.from_json(plain.to_json()).notes == []


# -- structured output ---------------------------------------------------------------------------

def test_the_schema_goes_in_the_vendors_wire_shape_and_json_comes_back(vendor, served):
    fake, server = served
    fake.json_reply = {"queries": ["cold climate heat pump COP", "heat pump running cost gas price"]}
    (answer,) = calls(vendor.model_id, PLAN_ASK)
    assert json.loads(answer.text) == fake.json_reply
    assert answer.finish_reason == "stop" and answer.notes == []
    (body,) = sent(server)
    if vendor.name == "openai":
        assert body["response_format"] == {"type": "json_schema",
                                           "json_schema": {"name": "plan", "schema": PLAN, "strict": True}}
    elif vendor.name == "anthropic":
        (tool,) = body["tools"]
        assert tool["name"] == "plan" and tool["input_schema"] == PLAN
        assert body["tool_choice"] == {"type": "tool", "name": "plan"}
    else:
        config = body["generationConfig"]
        assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == PLAN


def test_a_request_without_a_schema_asks_for_no_format(vendor, served):
    _, server = served
    calls(vendor.model_id, ASK)
    body = json.dumps(sent(server)[0])
    for field in ("response_format", "tool_choice", "responseMimeType", "responseJsonSchema"):
        assert field not in body


def test_a_model_that_ignores_the_format_answers_prose(vendor, served):
    fake, _ = served
    fake.follows_schema = False
    (answer,) = calls(vendor.model_id, PLAN_ASK)
    assert answer.text.startswith(f"{vendor.name} ")  # the fake's prose, not JSON
    with pytest.raises(ValueError):
        json.loads(answer.text)
    if vendor.name == "anthropic":  # the one vendor whose answer shows the format was not used
        assert answer.notes and "prose" in answer.notes[0]


def test_openai_sends_a_schema_strict_only_when_strict_mode_takes_it(monkeypatch):
    loose = {"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "string"}}}}
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        (answer,) = calls("openai:gpt-4o-mini", CompletionRequest(prompt="p", schema=loose))
    assert json.loads(answer.text)["queries"]
    (body,) = sent(server)
    assert body["response_format"]["json_schema"] == {"name": "answer", "schema": loose, "strict": False}


def test_official_openai_does_not_drop_the_format_on_a_400(monkeypatch):
    with serve(OpenAIAPI(rejects_schema=True)) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        (exc,) = calls("openai:gpt-4o-mini", PLAN_ASK)
    assert isinstance(exc, ProviderError) and exc.status == 400 and not exc.retryable
    assert len(server.requests) == 1


@pytest.mark.parametrize("model_id", ["openai-compatible:llama3", "ollama:llama3.2"])
def test_a_compatible_server_that_refuses_the_format_is_asked_again_without_it(model_id, monkeypatch):
    with serve(OpenAIAPI(rejects_schema=True)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        first, second, plain = calls(model_id, PLAN_ASK, PLAN_ASK, ASK)
    bodies = sent(server)
    # Refused once, asked again without it; later requests of this provider go without it at once.
    assert [("response_format" in b) for b in bodies] == [True, False, False, False]
    assert first.text and "response_format" in first.notes[0] and "HTTP 400" in first.notes[0]
    assert second.text and len(second.notes) == 1 and "response_format" in second.notes[0]
    assert plain.notes == []


def test_a_compatible_server_that_takes_the_format_gets_it(monkeypatch):
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        (answer,) = calls("openai-compatible:qwen", PLAN_ASK)
    assert json.loads(answer.text)["queries"] and answer.notes == []
    assert sent(server)[0]["response_format"]["type"] == "json_schema"


def test_notes_are_stored_and_replayed_with_the_answer(tmp_path, monkeypatch):
    async def once(store: Store):
        provider = get_provider("openai-compatible:llama3", limits=FAST)
        try:
            return await complete(Runtime(store), provider, PLAN_ASK, name="plan")
        finally:
            await provider.aclose()

    with serve(OpenAIAPI(rejects_schema=True)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        store = Store(tmp_path / "cache")
        try:
            paid, first = asyncio.run(once(store))
            replayed, second = asyncio.run(once(store))
        finally:
            store.close()
    assert not first.replayed and second.replayed and len(server.requests) == 2
    assert replayed.notes == paid.notes and "response_format" in paid.notes[0]


def test_the_offline_model_ignores_the_schema():
    local = get_provider("local:extractive")
    context = {"question": "heat pumps", "breadth": 1,
               "summaries": [{"id": 1, "text": "Vapour injection compressors help in the cold."}]}
    plain = asyncio.run(local.complete(CompletionRequest(prompt="p", offline="queries", context=context)))
    shaped = asyncio.run(local.complete(CompletionRequest(prompt="p", offline="queries", context=context, schema=PLAN)))
    assert shaped.text == plain.text and json.loads(shaped.text)["queries"]


# -- reasoning tokens ----------------------------------------------------------------------------

def test_reasoning_tokens_are_counted_apart_and_paid_as_output(vendor, served):
    fake, _ = served
    fake.reasoning = 40
    (answer,) = calls(vendor.model_id, ASK)
    usage = answer.usage
    assert usage.reasoning_tokens == 40
    assert usage.output_tokens == len(answer.text.split()) + 40  # the answer's own tokens plus the thinking
    price = price_of(vendor.name, vendor.model_id.split(":")[1])
    without = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens - 40)
    thinking_cost = cost_of(vendor.name, vendor.model_id.split(":")[1], usage) - \
        cost_of(vendor.name, vendor.model_id.split(":")[1], without)
    assert thinking_cost == pytest.approx(40 * price["output"] / 1_000_000)
