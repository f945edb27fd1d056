"""A cold run whose paying is certain makes its SDK client in the background, while sources are read.

Importing a vendor SDK and loading its TLS roots take most of a second; done on the event loop by the
first paid call, they hold up every source behind it. A fresh process with an import hook shows which
thread imported ``openai``: the background one for a question this cache never saw, none at all for a
replay (covered in ``test_provider_replay``), and the main thread never.
"""

from __future__ import annotations

import asyncio
import threading

from agent.providers.base import LoopClient
from tests.conftest import subprocess_env
from tests.helpers import CORPUS, ROOT, run_script
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI

RUN = """
import json, sys, threading
seen = {}
class Watch:
    def find_spec(self, name, path=None, target=None):
        # a submodule: looking the package up (is it installed?) is no import of it
        if name == "openai._client" and name not in seen:
            seen[name] = threading.current_thread().name
        return None
sys.meta_path.insert(0, Watch())
from typer.testing import CliRunner
from agent.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr, "imported_in": seen.get("openai._client")}))
"""


def run_cli(env: dict[str, str], *args: str) -> dict:
    return run_script(RUN, env, *args)


def test_a_new_question_imports_the_sdk_off_the_event_loop(tmp_path):
    with serve(OpenAIAPI()) as server:
        env = subprocess_env(OPENAI_API_KEY="k", OPENAI_BASE_URL=f"{server.url}/v1", PYTHONPATH=str(ROOT),
                             RESEARCH_CACHE_DIR=str(tmp_path / "cache"))
        base = ["--file", CORPUS, "--model", "openai:gpt-4o-mini", "--out", tmp_path / "out", "--quiet"]
        cold = run_cli(env, "run", "What do the sources say about heat pumps?", *base)
        assert cold["exit_code"] == 0, cold["stderr"]
        assert cold["imported_in"] == "sdk-client"
        assert server.requests  # and the client it made was the one used
        # A question asked before, over sources read afresh (new files): paying is likely, not certain,
        # so the client is made when the first new source has been read, still in the background.
        (tmp_path / "more").mkdir()
        (tmp_path / "more" / "new.md").write_text("# New note\n\nHeat pumps were installed in 40 homes.\n")
        again = run_cli(env, "run", "What do the sources say about heat pumps?", *base, "--file", tmp_path / "more")
        assert again["exit_code"] == 0, again["stderr"]
        assert again["imported_in"] == "sdk-client"


def test_the_loop_adopts_the_client_made_in_the_background_once():
    made: list[str] = []
    closed: list[object] = []

    def make() -> object:
        made.append(threading.current_thread().name)
        return object()

    async def close(client: object) -> None:
        closed.append(client)

    async def main() -> tuple[object, object]:
        client = LoopClient(make, close)
        client.warm()
        client.warm()  # already under way: not a second client
        await asyncio.gather(client.ready(), client.ready(), client.ready())
        first = client.get()
        await client.ready()
        second = client.get()
        await client.aclose()
        return first, second

    first, second = asyncio.run(main())
    assert made == ["sdk-client"]
    assert first is second and closed == [first]


def test_a_warm_up_never_used_is_closed_with_the_provider():
    closed: list[object] = []

    async def close(client: object) -> None:
        closed.append(client)

    async def main() -> None:
        client = LoopClient(object, close)
        client.warm()
        await client.aclose()  # the run replayed everything, say: the client made for it is closed

    asyncio.run(main())
    assert len(closed) == 1
