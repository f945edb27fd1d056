"""One table says which HTTP statuses are worth another try, and every adapter goes by it."""

from __future__ import annotations

import asyncio

import pytest

from agent.config import Limits
from agent.errors import ProviderError
from agent.llm import CompletionRequest
from agent.providers import get_provider
from agent.providers.base import http_error
from agent.providers.policy import RETRYABLE_STATUSES, is_retryable_status
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI


def test_the_table():
    assert {408, 409, 425, 429, 500, 502, 503, 504, 529, 599} <= RETRYABLE_STATUSES
    for status in (408, 409, 425, 429, 500, 503, 529):
        assert is_retryable_status(status)
    for status in (None, 200, 301, 400, 401, 403, 404, 410, 413, 422, 600):
        assert not is_retryable_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 410, 422, 425, 429, 500, 503])
def test_http_error_goes_by_the_table(status, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    error = http_error(get_provider("openai:gpt-4o-mini"), status, "said the server")
    assert error.retryable == is_retryable_status(status)
    assert error.fatal == (status in (401, 403))


def test_a_425_from_a_vendor_is_retried(monkeypatch):
    fake = OpenAIAPI()
    fake.script(fake.error(425, "too early"))
    with serve(fake) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        provider = get_provider("openai:gpt-4o-mini", limits=Limits(max_retries=1, retry_cap_s=0.01))

        async def go():
            try:
                return await provider.call(CompletionRequest(prompt="p"))
            finally:
                await provider.aclose()

        completion = asyncio.run(go())
    assert completion.text and len(server.requests) == 2
    assert not isinstance(completion, ProviderError)
