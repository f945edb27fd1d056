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
from pathlib import Path
from typing import Any, Callable, TypeVar

from agent.errors import UsageError
from agent.keys import canonical_json
from agent.steps import Paid, Runtime, StepSpec, current_runtime

F = TypeVar("F", bound=Callable[..., Any])
_default: dict[str, Runtime] = {}


def default_runtime() -> Runtime:
    """A journal-less runtime on the configured store (``RESEARCH_STORE``, else the cache directory),
    shared by the process."""
    from agent.storage import locate, open_storage

    where = locate()
    name = str(Path(where.target).resolve()) if where.backend == "local" else where.target
    runtime = _default.get(name)
    if runtime is None:
        store, _ = open_storage(where, journal=False)
        runtime = _default[name] = Runtime(store)
    return runtime


def _as_json(value: Any, what: str) -> Any:
    try:
        return json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{what} is not JSON-serializable ({exc})",
                         hint="durable steps take and return JSON values: str, numbers, bools, None, lists, dicts") from exc


def durable(fn: F | None = None, *, name: str | None = None, version: str | int | None = None,
            max_age: float | None = None) -> Any:
    """Decorate a sync or async function so equal calls are paid for once.

    ``name`` defaults to the function's module and qualified name; change ``version`` when the body
    changes in a way that should invalidate old results. ``max_age`` (seconds) re-runs older results.
    """

    def wrap(func: F) -> F:
        label = name or f"{func.__module__}.{func.__qualname__}"
        signature = inspect.signature(func)

        def spec_for(args: tuple, kwargs: dict) -> StepSpec:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            request = {"args": _as_json(dict(bound.arguments), f"an argument of {label}"), "version": version}
            return StepSpec(kind="fn", name=label, provider="python", model=label, request=request,
                            max_age=max_age)

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
