"""durable-research: AI research pipelines whose costly steps are never paid for twice.

The public surface, for notebooks and scripts, is re-exported here: :class:`Research` (and the
:class:`ResearchReport` it returns), :func:`durable` for your own costly functions, and the errors
they raise. Everything else is internal and may change; authors of pipelines and providers use the
modules they extend (:mod:`pipelines.base`, :mod:`agent.providers.base`, :mod:`agent.llm`).

:func:`durable`, :class:`Research` and :class:`ResearchReport` are imported when first used: the
command line (``research --help``, ``research runs``) needs none of them.
"""

from agent.errors import (
    AuthError,
    BudgetExceeded,
    MissingKeyError,
    ProviderError,
    ResearchError,
    RunRejected,
    RunStopped,
    RunWaiting,
    SourceAuthError,
    SourceError,
    StoreError,
    UsageError,
)

_LAZY = {"durable": "agent.durable_steps", "Research": "agent.research", "ResearchReport": "agent.research"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__version__ = "0.2.0"

__all__ = [
    "AuthError",
    "BudgetExceeded",
    "MissingKeyError",
    "ProviderError",
    "Research",
    "ResearchError",
    "ResearchReport",
    "RunRejected",
    "RunStopped",
    "RunWaiting",
    "SourceAuthError",
    "SourceError",
    "StoreError",
    "UsageError",
    "__version__",
    "durable",
]
