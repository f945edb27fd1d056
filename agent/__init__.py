"""durable-research: AI research pipelines whose costly steps are never paid for twice.

The public surface, for notebooks and scripts, is re-exported here: :class:`Research` (and the
:class:`ResearchReport` it returns), :func:`durable` for your own costly functions, and the errors
they raise. Everything else is internal and may change; authors of pipelines and providers use the
modules they extend (:mod:`pipelines.base`, :mod:`agent.providers.base`, :mod:`agent.llm`).
"""

from agent.durable import durable
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
from agent.research import Research, ResearchReport

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
