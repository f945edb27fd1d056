"""Optional smoke tests against the real vendors: one tiny call per provider, a few tokens each.

They run only with ``RESEARCH_LIVE=1`` and the vendor's key set (in the environment or in ``.env`` at
the project root), and are skipped otherwise, so the normal suite never leaves the machine:

    RESEARCH_LIVE=1 OPENAI_API_KEY=... python -m pytest tests/test_live.py -q

The test isolation fixture clears keys and blocks the network for every test; these tests capture
both before it runs (at import) and put them back for themselves only. Models can be chosen with
``RESEARCH_LIVE_OPENAI``, ``RESEARCH_LIVE_ANTHROPIC`` and ``RESEARCH_LIVE_GEMINI``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from agent.config import Limits
from agent.llm import CompletionRequest
from agent.providers import get_provider

_ROOT = Path(__file__).resolve().parent.parent


def _settings() -> dict[str, str]:
    values: dict[str, str] = {}
    dotenv = _ROOT / ".env"
    if dotenv.is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(dotenv).items() if v})
    values.update({k: v for k, v in os.environ.items() if v})
    return values


# Read at import, before the isolation fixture clears them.
_SETTINGS = _settings()
_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex
_LIVE = _SETTINGS.get("RESEARCH_LIVE") == "1"

CASES = [
    ("openai", _SETTINGS.get("RESEARCH_LIVE_OPENAI", "openai:gpt-4.1-nano"), ("OPENAI_API_KEY",),
     ("OPENAI_BASE_URL",)),
    ("anthropic", _SETTINGS.get("RESEARCH_LIVE_ANTHROPIC", "anthropic:claude-haiku-4-5"), ("ANTHROPIC_API_KEY",),
     ("ANTHROPIC_BASE_URL",)),
    ("gemini", _SETTINGS.get("RESEARCH_LIVE_GEMINI", "gemini:gemini-2.5-flash-lite"),
     ("GEMINI_API_KEY", "GOOGLE_API_KEY"), ("GOOGLE_GEMINI_BASE_URL",)),
]


@pytest.mark.parametrize("vendor,model_id,key_variables,url_variables", CASES, ids=[c[0] for c in CASES])
def test_one_tiny_call(vendor, model_id, key_variables, url_variables, monkeypatch):
    if not _LIVE:
        pytest.skip("live provider tests run only with RESEARCH_LIVE=1")
    present = [name for name in key_variables if _SETTINGS.get(name)]
    if not present:
        pytest.skip(f"{key_variables[0]} is not set")
    for name in (*present, *url_variables):
        if _SETTINGS.get(name):
            monkeypatch.setenv(name, _SETTINGS[name])
    monkeypatch.setattr(socket.socket, "connect", _REAL_CONNECT)
    monkeypatch.setattr(socket.socket, "connect_ex", _REAL_CONNECT_EX)

    provider = get_provider(model_id, limits=Limits(timeout_s=60, max_retries=2))
    provider.check_ready()

    async def go():
        try:
            return await provider.call(CompletionRequest(prompt="Reply with the single word: ok", max_tokens=64))
        finally:
            await provider.aclose()

    completion = asyncio.run(go())
    assert completion.text.strip()
    assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0
