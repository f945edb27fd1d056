"""The public surface of ``agent`` is exactly what ``__all__`` names, sorted."""

import agent


def test_all_is_sorted_and_complete():
    assert agent.__all__ == sorted(agent.__all__)
    for name in agent.__all__:
        assert hasattr(agent, name), name
    public = {n for n in dir(agent) if not n.startswith("_") and not isinstance(getattr(agent, n), type(agent))}
    assert public <= set(agent.__all__), public - set(agent.__all__)


def test_error_tree():
    assert issubclass(agent.MissingKeyError, agent.UsageError)
    assert issubclass(agent.UsageError, agent.ResearchError)
    assert issubclass(agent.AuthError, agent.ProviderError)
    err = agent.MissingKeyError("openai", "OPENAI_API_KEY")
    assert err.exit_code == 2 and "OPENAI_API_KEY" in err.one_line() and "\n" not in err.one_line()


def test_the_surface_is_what_a_notebook_user_needs():
    """Pinned, as httpx pins its own: adding or removing a public name is a decision, not an accident."""
    assert agent.__all__ == [
        "AuthError", "BudgetExceeded", "MissingKeyError", "ProviderError", "Research", "ResearchError",
        "ResearchReport", "RunRejected", "RunStopped", "RunWaiting", "SourceAuthError", "SourceError", "StoreError",
        "UsageError", "__version__", "durable",
    ]
