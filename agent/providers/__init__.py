"""Model providers, named by ``"provider:model"`` strings and imported only when used.

``parse_model_id`` is the one place model ids are read. Vendor SDKs load when a provider of theirs is
first made, so ``research --help`` and runs on the offline model never import them.
"""

from __future__ import annotations

import importlib

from agent.config import Limits
from agent.errors import UsageError
from agent.providers.base import Provider

DEFAULT_MODEL = "local:extractive"

_REGISTRY = {
    "local": ("agent.providers.local", "LocalProvider", None),
    "openai": ("agent.providers.openai", "OpenAIProvider", "openai"),
    "openai-compatible": ("agent.providers.openai", "OpenAICompatibleProvider", "openai"),
    "ollama": ("agent.providers.openai", "OllamaProvider", "openai"),
    "anthropic": ("agent.providers.anthropic", "AnthropicProvider", "anthropic"),
    "gemini": ("agent.providers.gemini", "GeminiProvider", "google-genai"),
}

PROVIDER_NAMES = tuple(sorted(_REGISTRY))


def parse_model_id(model_id: str) -> tuple[str, str]:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; raises :class:`UsageError` if malformed."""
    provider, sep, model = model_id.strip().partition(":")
    if not sep or not provider or not model:
        raise UsageError(f"model {model_id!r} is not of the form PROVIDER:MODEL",
                         hint=f"for example --model {DEFAULT_MODEL} or --model openai:gpt-4o-mini")
    provider = provider.lower()
    if provider not in _REGISTRY:
        raise UsageError(f"unknown provider {provider!r} in --model {model_id}",
                         hint=f"use one of: {', '.join(PROVIDER_NAMES)}")
    return provider, model


def get_provider(model_id: str, *, limits: Limits | None = None) -> Provider:
    """A provider instance for ``model_id``; the vendor SDK is imported here, not before."""
    provider, model = parse_model_id(model_id)
    module_name, class_name, package = _REGISTRY[provider]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"the {provider} provider needs the {package} package ({exc})",
                         hint=f"pip install {package}") from exc
    return getattr(module, class_name)(model, limits=limits)


__all__ = ["DEFAULT_MODEL", "PROVIDER_NAMES", "Provider", "get_provider", "parse_model_id"]
