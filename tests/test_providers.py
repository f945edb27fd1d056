"""The hosted-model adapters, each through its real SDK over real HTTP to a loopback fake of its vendor.

Every vendor gets the same drill: an answer and its usage, a rejected key, a rate limit with
``Retry-After``, a server error, a hung answer, a dropped connection, and a durable replay that sends
nothing. Nothing here patches an SDK or an adapter; the fakes speak each vendor's wire format.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from agent.config import Limits
from agent.errors import AuthError, MissingKeyError, ProviderError, UsageError
from agent.llm import CompletionRequest, complete
from agent.providers import get_provider
from agent.runs import Workspace
from agent.steps import Runtime
from agent.store import Store
from tests.servers import Reply, serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.fake_api import FakeAPI
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI

# google-genai defines a ClientSession subclass, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

KEY = "test-key-4c1d9f27"


@dataclass
class Vendor:
    model_id: str
    fake: Callable[..., FakeAPI]
    key_variable: str
    env: Callable[[str], dict[str, str]]

    @property
    def name(self) -> str:
        return self.model_id.split(":")[0]


VENDORS = {
    "openai": Vendor("openai:gpt-4o-mini", OpenAIAPI, "OPENAI_API_KEY",
                     lambda url: {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{url}/v1"}),
    "anthropic": Vendor("anthropic:claude-haiku-4-5", AnthropicAPI, "ANTHROPIC_API_KEY",
                        lambda url: {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": url}),
    "gemini": Vendor("gemini:gemini-2.5-flash", GeminiAPI, "GEMINI_API_KEY",
                     lambda url: {"GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": url}),
}

FAST = Limits(concurrency=4, timeout_s=5.0, max_retries=2, retry_cap_s=0.05)
REQUEST = CompletionRequest(prompt="What do the sources say about heat pumps?", system="Answer briefly.",
                            max_tokens=300, context={"task": "summarize", "private": "context-never-sent"})


@pytest.fixture(params=sorted(VENDORS))
def vendor(request) -> Vendor:
    return VENDORS[request.param]


@pytest.fixture
def served(vendor, monkeypatch):
    """A running fake of ``vendor``, the environment pointing at it, and a way to call it."""

    class Served:
        def __init__(self, server, fake):
            self.server, self.fake = server, fake

        def call(self, request: CompletionRequest = REQUEST, limits: Limits = FAST):
            """The completion, or the provider error (returned, so tests can look at it)."""
            return _run(vendor.model_id, request, limits)

    fake = vendor.fake(key=KEY)
    with serve(fake) as server:
        for name, value in vendor.env(server.url).items():
            monkeypatch.setenv(name, value)
        yield Served(server, fake)


def timed(fn):
    started = time.perf_counter()
    try:
        return fn(), time.perf_counter() - started
    except Exception as exc:  # returned so tests can assert on it and on the time it took
        return exc, time.perf_counter() - started


# -- every vendor --------------------------------------------------------------------------------

def test_answer_and_usage(vendor, served):
    served.fake.cached, served.fake.reasoning = 3, 2
    completion = served.call()
    assert completion.text.startswith(f"{vendor.name} ")
    assert completion.finish_reason
    usage = completion.usage
    assert usage.cached_tokens == 3
    assert usage.reasoning_tokens == 2
    assert usage.input_tokens >= 3 + len(REQUEST.prompt.split())
    assert usage.output_tokens >= len(completion.text.split())
    (sent,) = served.server.requests
    body = sent.body.decode()
    assert REQUEST.prompt in body and REQUEST.system in body and "300" in body
    assert "context-never-sent" not in body and KEY not in body


def test_rejected_key_is_one_line_and_not_retried(vendor, served, monkeypatch):
    monkeypatch.setenv(vendor.key_variable, "wrong-key-77a1b2c3")
    exc = served.call()
    assert isinstance(exc, AuthError) and exc.fatal and not exc.retryable
    line = exc.one_line()
    assert vendor.name in line and vendor.key_variable in line and "\n" not in line
    assert "wrong-key-77a1b2c3" not in line
    assert len(served.server.requests) == 1


def test_rate_limit_waits_for_retry_after_ms(vendor, served):
    served.fake.script(served.fake.error(429, "slow down", headers={"retry-after-ms": "300"}))
    completion, elapsed = timed(lambda: served.call(limits=Limits(max_retries=2, retry_cap_s=5.0)))
    assert completion.text
    assert len(served.server.requests) == 2
    assert 0.28 <= elapsed < 2.0


def test_retry_after_seconds_is_capped(vendor, served, monkeypatch):
    monkeypatch.setenv("RESEARCH_RETRY_CAP", "0.2")
    served.fake.script(served.fake.error(429, headers={"Retry-After": "30"}))
    completion, elapsed = timed(lambda: served.call(limits=Limits.from_env()))
    assert completion.text
    assert len(served.server.requests) == 2
    assert 0.18 <= elapsed < 2.0


def test_server_error_then_success(vendor, served):
    served.fake.script(served.fake.error(500, "internal"), served.fake.error(503, "unavailable"))
    completion = served.call()
    assert completion.text
    assert len(served.server.requests) == 3


def test_dropped_connection_is_retried(vendor, served):
    served.fake.script(Reply(drop=True))
    completion = served.call()
    assert completion.text
    assert len(served.server.requests) == 2


def test_hung_answer_times_out_retries_and_fails_the_step(vendor, served, tmp_path):
    hang = Reply(200, {"never": "read"}, hang=30.0)  # far longer than any load can stretch the timeouts
    served.fake.script(hang, hang)
    limits = Limits(timeout_s=0.25, max_retries=1, retry_cap_s=0.01)
    provider = get_provider(vendor.model_id, limits=limits)
    workspace = Workspace.open(tmp_path / "ws")

    async def go():
        runtime = workspace.start("hung", question="q", inputs={"q": 1}, config={})
        try:
            await complete(runtime, provider, REQUEST, name="hung call")
        finally:
            await provider.aclose()

    try:
        exc, elapsed = timed(lambda: asyncio.run(go()))
        (step,) = workspace.journal.steps("hung")
    finally:
        workspace.close()
    assert isinstance(exc, ProviderError) and exc.retryable
    assert "0.25s" in exc.one_line() or "timed out" in exc.one_line()
    assert len(served.server.requests) == 2
    assert elapsed < 15  # neither attempt waited for the server to finish hanging (60 s for both)
    assert step["status"] == "failed" and step["error"]


def test_unknown_model_is_final_with_the_vendors_words(vendor, served):
    served.fake.script(served.fake.error(404, "model 'nope' does not exist"))
    exc = served.call()
    assert isinstance(exc, ProviderError) and not exc.retryable and not exc.fatal
    assert exc.status == 404
    assert "HTTP 404" in exc.one_line() and "does not exist" in exc.one_line()
    assert len(served.server.requests) == 1


def test_vendor_text_echoing_the_key_is_redacted(vendor, served):
    served.fake.script(served.fake.error(400, f"bad request for key {KEY}"))
    exc = served.call()
    assert isinstance(exc, ProviderError) and exc.status == 400
    assert KEY not in exc.one_line() and KEY not in str(exc)


def test_replay_sends_nothing(vendor, served, tmp_path):
    async def once():
        provider = get_provider(vendor.model_id, limits=FAST)
        store = Store(tmp_path / "cache")
        try:
            completion, result = await complete(Runtime(store), provider, REQUEST, name="ask")
            return completion, result
        finally:
            store.close()
            await provider.aclose()

    first, paid = asyncio.run(once())
    assert not paid.replayed and paid.input_tokens and paid.cost_usd is not None and paid.cost_usd > 0
    assert len(served.server.requests) == 1
    second, replayed = asyncio.run(once())
    assert replayed.replayed and second.text == first.text
    assert len(served.server.requests) == 1


def test_missing_key_fails_before_any_request(vendor, served, monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    provider = get_provider(vendor.model_id)
    with pytest.raises(MissingKeyError) as caught:
        provider.check_ready()
    assert caught.value.variable == vendor.key_variable
    assert vendor.key_variable in caught.value.one_line()
    assert served.server.requests == []


def test_endpoint_is_the_base_url_and_part_of_the_key(vendor, served, monkeypatch):
    from agent.llm import llm_spec

    here = get_provider(vendor.model_id)
    assert here.endpoint.startswith(served.server.url)
    assert KEY not in here.endpoint
    for name, value in vendor.env(served.server.url).items():
        monkeypatch.setenv(name, value.replace("127.0.0.1", "localhost"))
    there = get_provider(vendor.model_id)
    assert there.endpoint.startswith("http://localhost:")
    assert llm_spec(here, REQUEST, "x").key != llm_spec(there, REQUEST, "x").key
    monkeypatch.setenv(vendor.key_variable, "another-key-9f8e7d")  # keys are never part of a step key
    assert llm_spec(get_provider(vendor.model_id), REQUEST, "x").key == llm_spec(there, REQUEST, "x").key


# -- one vendor at a time ------------------------------------------------------------------------

def _run(model_id: str, request: CompletionRequest = REQUEST, limits: Limits = FAST):
    provider = get_provider(model_id, limits=limits)

    async def go():
        try:
            return await provider.call(request)
        finally:
            await provider.aclose()

    try:
        return asyncio.run(go())
    except ProviderError as exc:
        return exc


def test_openai_reasoning_models_get_no_temperature(monkeypatch):
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        assert _run("openai:gpt-5-mini").text
        assert _run("openai:gpt-4o-mini").text
    reasoning, plain = (r.json() for r in server.requests)
    assert "temperature" not in reasoning and reasoning["max_completion_tokens"] == 300
    assert plain["temperature"] == 0.0 and plain["max_completion_tokens"] == 300


def test_openai_out_of_quota_stops_the_run(monkeypatch):
    fake = OpenAIAPI()
    fake.script(Reply(429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                      "code": "insufficient_quota"}}))
    with serve(fake) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        exc = _run("openai:gpt-4o-mini")
    assert isinstance(exc, ProviderError) and exc.fatal and not exc.retryable
    assert len(server.requests) == 1


def test_openai_compatible_needs_a_base_url_but_no_key(monkeypatch):
    provider = get_provider("openai-compatible:llama3")
    with pytest.raises(UsageError) as caught:
        provider.check_ready()
    assert "OPENAI_BASE_URL" in caught.value.one_line()
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1/")
        get_provider("openai-compatible:llama3").check_ready()
        completion = _run("openai-compatible:llama3")
    assert completion.text.startswith("openai llama3")
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json()["max_tokens"] == 300 and sent.json()["temperature"] == 0.0
    assert get_provider("openai-compatible:llama3").endpoint == f"{server.url}/v1"


def test_ollama_uses_ollama_host_and_sends_no_openai_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # must not leak to a local server
    with serve(OpenAIAPI()) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url.removeprefix("http://"))
        provider = get_provider("ollama:llama3.2")
        provider.check_ready()
        assert provider.endpoint == f"{server.url}/v1"
        completion = _run("ollama:llama3.2")
    assert completion.text.startswith("openai llama3.2")
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert KEY not in sent.headers.get("authorization", "")


def test_ollama_host_forms():
    from agent.providers.openai import ollama_base_url

    assert ollama_base_url("http://localhost:11434") == "http://localhost:11434/v1"
    assert ollama_base_url("localhost") == "http://localhost:11434/v1"
    assert ollama_base_url("0.0.0.0:9999") == "http://0.0.0.0:9999/v1"
    assert ollama_base_url("https://ollama.example.com/") == "https://ollama.example.com/v1"
    assert ollama_base_url("http://box:11434/v1/") == "http://box:11434/v1"


def test_gemini_reads_google_api_key_and_names_gemini_api_key(monkeypatch):
    provider = get_provider("gemini:gemini-2.5-flash")
    with pytest.raises(MissingKeyError) as caught:
        provider.check_ready()
    assert caught.value.variable == "GEMINI_API_KEY"
    with serve(GeminiAPI(key="google-key-1234")) as server:
        monkeypatch.setenv("GOOGLE_API_KEY", "google-key-1234")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        get_provider("gemini:gemini-2.5-flash").check_ready()
        assert _run("gemini:gemini-2.5-flash").text
    assert server.requests[0].headers["x-goog-api-key"] == "google-key-1234"


def test_gemini_bad_key_names_the_variable_used(monkeypatch):
    with serve(GeminiAPI(key="right-key-1234")) as server:
        monkeypatch.setenv("GOOGLE_API_KEY", "wrong-key-1234")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        exc = _run("gemini:gemini-2.5-flash")
    assert isinstance(exc, AuthError) and exc.variable == "GOOGLE_API_KEY"
    assert len(server.requests) == 1


def test_gemini_retry_info_in_the_body_is_a_retry_after(monkeypatch):
    fake = GeminiAPI()
    fake.script(fake.error(429, "quota", details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                                   "retryDelay": "0.3s"}]))
    with serve(fake) as server:
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        completion, elapsed = timed(lambda: _run("gemini:gemini-2.5-flash", limits=Limits(retry_cap_s=5.0)))
    assert completion.text
    assert len(server.requests) == 2 and 0.28 <= elapsed < 2.0


def test_anthropic_counts_cache_reads_and_writes_as_input(monkeypatch):
    with serve(AnthropicAPI(cached=100, cache_write=50)) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        completion = _run("anthropic:claude-haiku-4-5")
    sent_words = len(f"{REQUEST.system} {REQUEST.prompt}".split())
    assert completion.usage.input_tokens == sent_words + 150
    assert completion.usage.cached_tokens == 100
    assert "temperature" not in server.requests[0].json()


def test_research_help_imports_no_sdk():
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom agent.cli import app\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "assert CliRunner().invoke(app, ['run', '--help']).exit_code == 0\n"
            "print(sorted(m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
