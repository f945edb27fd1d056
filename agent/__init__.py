"""durable-research: AI research pipelines whose costly steps are never paid for twice.

The public surface is re-exported here; everything else is internal and may change.
"""

from agent.durable import durable
from agent.errors import (
    AuthError,
    BudgetExceeded,
    MissingKeyError,
    ProviderError,
    ResearchError,
    RunStopped,
    SourceAuthError,
    SourceError,
    StoreError,
    UsageError,
)
from agent.journal import Journal
from agent.keys import canonical_json, step_key
from agent.llm import Completion, CompletionRequest, Usage
from agent.providers import Provider, get_provider, parse_model_id
from agent.research import Research, ResearchReport
from agent.steps import Paid, Runtime, StepResult, StepSpec
from agent.store import Store

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "BudgetExceeded",
    "Completion",
    "CompletionRequest",
    "Journal",
    "MissingKeyError",
    "Paid",
    "Provider",
    "ProviderError",
    "Research",
    "ResearchError",
    "ResearchReport",
    "RunStopped",
    "Runtime",
    "SourceAuthError",
    "SourceError",
    "StepResult",
    "StepSpec",
    "Store",
    "StoreError",
    "Usage",
    "UsageError",
    "__version__",
    "canonical_json",
    "durable",
    "get_provider",
    "parse_model_id",
    "step_key",
]
