"""``@durable``: make any function of JSON-serializable arguments a durable step.

    from agent import durable

    @durable
    def classify(title: str, labels: list[str]) -> dict: ...

The first call with given arguments runs the function and stores its (JSON) result; every later call
with equal arguments, in this process or any other sharing the store, replays it. Exceptions are never
stored. Inside a research run the calls are journaled with the run's other steps; elsewhere they use
``RESEARCH_STORE`` (a ``postgresql://`` URL or a directory), else the cache directory from
``RESEARCH_CACHE_DIR`` (default ``./cache``).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from agent.config import load_dotenv_once
from agent.errors import UsageError
from agent.keys import KeyMaker, canonical_json
from agent.steps import Paid, Runtime, StepSpec, current_runtime

F = TypeVar("F", bound=Callable[..., Any])
#: Runtimes by the store they use (its resolved directory, or its URL).
_default: dict[str, Runtime] = {}
#: The same runtimes by the two variables that select the store, each with the working directory it
#: was resolved in when that matters (a relative directory), else ``None``. A call reads these instead
#: of resolving the directory again; a change to any of them resolves it again.
_selected: dict[tuple[str | None, str | None], tuple[Runtime, str | None]] = {}


def default_runtime() -> Runtime:
    """A journal-less runtime on the configured store (``RESEARCH_STORE``, else the cache directory),
    shared by the process."""
    load_dotenv_once()  # a .env file may set the variables read next
    variables = (os.environ.get("RESEARCH_STORE"), os.environ.get("RESEARCH_CACHE_DIR"))
    selected = _selected.get(variables)
    if selected is not None and (selected[1] is None or selected[1] == os.getcwd()):
        return selected[0]
    runtime, relative = _open_default()
    _selected[variables] = (runtime, os.getcwd() if relative else None)
    return runtime


def _open_default() -> tuple[Runtime, bool]:
    """The runtime of the configured store, and whether the working directory chose it."""
    from agent.storage import locate, open_storage

    where = locate()
    relative = where.backend == "local" and not Path(where.target).is_absolute()
    name = str(Path(where.target).resolve()) if where.backend == "local" else where.target
    runtime = _default.get(name)
    if runtime is None:
        store, _ = open_storage(where, journal=False)
        runtime = _default[name] = Runtime(store)
    return runtime, relative


#: How many argument keys each durable function remembers, and for arguments of how many characters at
#: most (longer ones cost more to write than to hash): a megabyte or two at worst.
_RECENT_KEYS = 1024
_RECENT_CHARS = 1024
_HINT = "durable steps take and return JSON values: str, numbers, bools, None, lists, dicts"


def _as_json(value: Any, what: str) -> Any:
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} is not JSON-serializable ({exc})", hint=_HINT) from exc


def _arguments_json(arguments: dict[str, Any], what: str) -> tuple[Any, str]:
    """The arguments as a JSON value and its canonical text, the text the step key is made of.

    A step's arguments are keyed as their JSON reading gives them back (a tuple is a list, a dict's
    number keys are strings). Read back, the canonical text of arguments with no dict inside them
    (the top-level one has the parameters' names as keys) is the same text, so only arguments holding
    a dict (or a brace in a string) are read back and written again.
    """
    try:
        text = canonical_json(arguments)
        if text.find("{", 1) < 0:
            return arguments, text
        value = json.loads(text)
        return value, canonical_json(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} is not JSON-serializable ({exc})", hint=_HINT) from exc


def _binder(signature: inspect.Signature) -> Callable[[tuple, dict], dict[str, Any]]:
    """``(args, kwargs) -> {parameter: value}`` with defaults applied, as ``signature.bind`` gives it;
    a call of positional arguments to a function of plain parameters is bound without it."""
    params = list(signature.parameters.values())
    names = tuple(p.name for p in params)
    plain = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    # The defaults that fill the parameters after the first n, for each n; None where one has none.
    rest: list[dict[str, Any] | None] = []
    for n in range(len(params) + 1):
        tail = params[n:]
        rest.append(None if any(p.default is p.empty for p in tail) else {p.name: p.default for p in tail})

    def bind(args: tuple, kwargs: dict) -> dict[str, Any]:
        if plain and not kwargs and len(args) <= len(names):
            defaults = rest[len(args)]
            if defaults is not None:  # else an argument is missing: signature.bind names it
                arguments = dict(zip(names, args))
                if defaults:
                    arguments.update(defaults)
                return arguments
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    return bind


def durable(fn: F | None = None, *, name: str | None = None, version: str | int | None = None,
            max_age: float | None = None) -> Any:
    """Decorate a sync or async function so equal calls are paid for once.

    ``name`` defaults to the function's module and qualified name; change ``version`` when the body
    changes in a way that should invalidate old results. ``max_age`` (seconds) re-runs older results.
    """

    def wrap(func: F) -> F:
        label = name or f"{func.__module__}.{func.__qualname__}"
        bind = _binder(inspect.signature(func))
        keys = KeyMaker("fn", provider="python", model=label)
        version_json = canonical_json(version)
        what = f"an argument of {label}"

        #: Keys of the arguments seen lately, by their canonical JSON: a repeated call is not hashed again.
        recent: dict[str, str] = {}

        def spec_for(args: tuple, kwargs: dict) -> StepSpec:
            arguments, text = _arguments_json(bind(args, kwargs), what)
            spec = StepSpec(kind="fn", name=label, provider="python", model=label,
                            request={"args": arguments, "version": version}, max_age=max_age)
            key = recent.get(text)
            if key is None:
                # The key step_key would make of these fields, from the text already written.
                key = keys.key(f'{{"args":{text},"version":{version_json}}}')
                if len(text) <= _RECENT_CHARS:
                    if len(recent) >= _RECENT_KEYS:
                        recent.clear()
                    recent[text] = key
            spec.key = key
            return spec

        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                spec = spec_for(args, kwargs)

                async def work() -> Paid:
                    return Paid(_as_json(await func(*args, **kwargs), f"the result of {label}"))

                result = await (current_runtime() or default_runtime()).step(spec, work)
                return result.value

            wrapper: Any = async_wrapper
        else:
            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                spec = spec_for(args, kwargs)

                def work() -> Paid:
                    return Paid(_as_json(func(*args, **kwargs), f"the result of {label}"))

                return (current_runtime() or default_runtime()).step_sync(spec, work).value

            wrapper = sync_wrapper
        wrapper.step_key = lambda *a, **kw: spec_for(a, kw).key
        return wrapper  # type: ignore[return-value]

    return wrap(fn) if fn is not None else wrap
