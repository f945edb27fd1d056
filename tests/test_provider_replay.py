"""A fully replayed run with hosted models imports no vendor SDK, in a fresh process as a user runs it.

The first run pays OpenAI, Anthropic and Gemini fakes (and so imports their SDKs, which shows the check
below can see an import); the second, with the same cache, replays every step and must import none.
"""

from __future__ import annotations

import contextlib
import json

import pytest

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, ROOT, run_script
from tests.servers import serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI

pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

SDKS = ("anthropic", "google.genai", "openai")
MODELS = ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash")

# Runs the CLI in this fresh interpreter, then says what it printed and which SDKs it imported.
RUN = """
import json, sys
from typer.testing import CliRunner
from agent.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr,
                  "sdks": sorted(m for m in %r if m in sys.modules)}))
""" % (SDKS,)


def run_cli(env: dict[str, str], *args: str) -> dict:
    return run_script(RUN, env, *args)


def test_a_full_replay_imports_no_sdk(tmp_path):
    with contextlib.ExitStack() as stack:
        openai_api = stack.enter_context(serve(OpenAIAPI()))
        anthropic_api = stack.enter_context(serve(AnthropicAPI()))
        gemini_api = stack.enter_context(serve(GeminiAPI()))
        servers = (openai_api, anthropic_api, gemini_api)
        env = subprocess_env(
            OPENAI_API_KEY="k-openai", OPENAI_BASE_URL=f"{openai_api.url}/v1",
            ANTHROPIC_API_KEY="k-anthropic", ANTHROPIC_BASE_URL=anthropic_api.url,
            GEMINI_API_KEY="k-gemini", GOOGLE_GEMINI_BASE_URL=gemini_api.url,
            RESEARCH_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT),
        )
        args = ["run", QUESTION, "--file", CORPUS, "--out", tmp_path / "out", "--json", "--quiet"]
        for model in MODELS:
            args += ["--model", model]

        paid = run_cli(env, *args)
        assert paid["exit_code"] == 0, paid["stderr"]
        assert paid["sdks"] == sorted(SDKS)  # paying imports them: the check sees imports
        sent = [len(server.requests) for server in servers]
        assert all(sent)

        replayed = run_cli(env, *args)
        assert replayed["exit_code"] == 0, replayed["stderr"]
        totals = json.loads(replayed["stdout"])["totals"]
        assert [len(server.requests) for server in servers] == sent  # nothing was sent
        assert totals["this_attempt"]["paid"] == 0 and totals["this_attempt"]["replayed"] > 0
    assert replayed["sdks"] == []
