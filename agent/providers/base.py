"""The provider interface: one abstract method per vendor.

A provider turns a :class:`~agent.llm.CompletionRequest` into a :class:`~agent.llm.Completion` with one
attempt at its vendor's API, raising :class:`~agent.errors.ProviderError` (mapped once, in the adapter)
when that fails. Retries, timeouts and concurrency are not its business: :meth:`Provider.call` wraps
every provider in the same policy (see :mod:`agent.providers.policy`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from agent.config import Limits, env
from agent.errors import MissingKeyError
from agent.llm import Completion, CompletionRequest


class Provider(ABC):
    #: The prefix of model ids for this provider (``openai`` in ``openai:gpt-4o-mini``).
    name: ClassVar[str]
    #: Environment variables that may hold the key, in order of preference; the first is named in errors.
    key_variables: ClassVar[tuple[str, ...]] = ()
    #: Whether the key may be absent (local servers need none).
    key_optional: ClassVar[bool] = False

    def __init__(self, model: str, *, limits: Limits | None = None) -> None:
        self.model = model
        self.limits = limits or Limits()
        self._policy = None

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def endpoint(self) -> str:
        """The base URL calls go to; part of every step key (same model name, other server, other model)."""
        return ""

    def api_key(self) -> str | None:
        for variable in self.key_variables:
            value = env(variable)
            if value:
                return value
        return None

    def check_ready(self) -> None:
        """Raise :class:`MissingKeyError` before any paid call if this provider cannot be called."""
        if self.key_variables and not self.key_optional and not self.api_key():
            raise MissingKeyError(self.name, self.key_variables[0])

    @abstractmethod
    async def complete(self, request: CompletionRequest) -> Completion:
        """One attempt at the vendor's API."""

    async def call(self, request: CompletionRequest) -> Completion:
        """:meth:`complete` under the shared retry, timeout and concurrency policy."""
        if self._policy is None:
            from agent.providers.policy import Policy

            self._policy = Policy.for_provider(self.name, self.limits)
        return await self._policy.run(lambda: self.complete(request), provider=self.name)

    async def aclose(self) -> None:
        """Release clients; providers with none need not override it."""
