"""``@durable``: user functions as steps, sync and async."""

import asyncio

import pytest

from agent import UsageError, durable

calls: list[tuple] = []


@durable
def add(a: int, b: int = 2) -> dict:
    calls.append(("add", a, b))
    return {"sum": a + b}


@durable(version=2)
async def shout(text: str) -> str:
    calls.append(("shout", text))
    await asyncio.sleep(0)
    return text.upper()


@durable
def explode(n: int) -> int:
    calls.append(("explode", n))
    raise ValueError("no")


@pytest.fixture(autouse=True)
def reset():
    calls.clear()


def test_sync_function_runs_once_per_arguments():
    assert add(1) == {"sum": 3}
    assert add(1, 2) == {"sum": 3}  # the default is bound: same call
    assert add(a=1) == {"sum": 3}
    assert add(2) == {"sum": 4}
    assert calls == [("add", 1, 2), ("add", 2, 2)]


def test_async_function_runs_once():
    async def main():
        return [await shout("hi"), await shout("hi")]

    assert asyncio.run(main()) == ["HI", "HI"]
    assert calls == [("shout", "hi")]


def test_results_survive_the_process(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from agent import durable\n"
            "import sys\n"
            "@durable(name='demo.square')\n"
            "def square(x):\n"
            "    print('ran', file=sys.stderr)\n"
            "    return x * x\n"
            "print(square(7))\n")
    env = {**os.environ, "RESEARCH_CACHE_DIR": str(tmp_path / "shared")}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == second.stdout.strip() == "49"
    assert "ran" in first.stderr and "ran" not in second.stderr


def test_exceptions_are_not_cached():
    for _ in range(2):
        with pytest.raises(ValueError):
            explode(1)
    assert calls == [("explode", 1), ("explode", 1)]


def test_non_json_arguments_are_a_usage_error():
    with pytest.raises(UsageError) as info:
        add(object())
    assert "JSON" in info.value.one_line()


def test_step_key_changes_with_version_and_arguments():
    assert add.step_key(1) == add.step_key(1, 2)
    assert add.step_key(1) != add.step_key(3)
