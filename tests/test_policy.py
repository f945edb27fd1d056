"""The shared retry, timeout and concurrency policy, seen from a loopback server.

In-flight limits and call spacing are measured where they matter, at the server; the policy is
driven through a real provider and SDK, as a run drives it. Where what happens inside a call decides
the outcome (slow setup before its request goes out, a call that outlives its timeout), scripted
attempts drive the policy directly.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from agent.config import Limits
from agent.errors import ProviderError
from agent.llm import CompletionRequest
from agent.providers import get_provider
from agent.providers.policy import parse_retry_after
from agent.providers.policy import Policy
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI


class Gauge:
    """Wraps a fake: records arrival times and the most requests it ever held at once."""

    def __init__(self, fake: OpenAIAPI, hold: float) -> None:
        self.fake, self.hold = fake, hold
        self.arrivals: list[float] = []
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def __call__(self, request):
        with self.lock:
            self.arrivals.append(time.monotonic())
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.hold)  # in the handler thread, so the count covers the whole answer
        with self.lock:
            self.now -= 1
        return self.fake(request)


def _calls(model_id: str, n: int, limits: Limits) -> float:
    provider = get_provider(model_id, limits=limits)

    async def go():
        try:
            await asyncio.gather(*(provider.call(CompletionRequest(prompt=f"question {i}")) for i in range(n)))
        finally:
            await provider.aclose()

    started = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - started


@pytest.fixture
def gauge(monkeypatch):
    gauge = Gauge(OpenAIAPI(), hold=0.15)
    with serve(gauge) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key-123456")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        yield gauge


def test_concurrency_limits_calls_in_flight(gauge):
    elapsed = _calls("openai:gpt-4o-mini", 6, Limits(concurrency=2))
    assert gauge.peak == 2
    assert len(gauge.arrivals) == 6
    assert elapsed >= 3 * 0.15 * 0.95


def test_concurrency_from_the_environment(gauge, monkeypatch):
    monkeypatch.setenv("RESEARCH_CONCURRENCY", "3")
    limits = Limits.from_env()
    assert limits.concurrency == 3
    assert Limits.from_env(concurrency=5).concurrency == 5  # --concurrency wins over the variable
    _calls("openai:gpt-4o-mini", 6, limits)
    assert gauge.peak == 3


def test_rpm_spaces_call_starts(gauge, monkeypatch):
    monkeypatch.setenv("RESEARCH_RPM", "600")  # one start every 0.1 s
    gauge.hold = 0.0
    elapsed = _calls("openai:gpt-4o-mini", 4, Limits.from_env(concurrency=8))
    # Four starts 0.1 s apart take at least 0.3 s. Arrivals at the server lag their starts by a varying
    # few milliseconds (the first also opens the connection), so the spacing is checked end to end.
    assert len(gauge.arrivals) == 4
    assert gauge.arrivals[3] - gauge.arrivals[0] >= 0.18
    assert elapsed >= 0.3


def test_rpm_counts_a_start_from_when_the_request_goes_out():
    # An SDK's first call builds its client and imports modules, blocking the event loop, after its
    # slot was granted and then again after handing over to a thread. Counted from the grants, every
    # waiter's slot would come due behind it and all would go out together.
    policy = Policy("slow-first-call", Limits(concurrency=8, rpm=600))  # one start every 0.1 s
    began: list[int] = []
    sent: list[float] = []

    async def attempt():
        first = not began
        began.append(1)
        if first:
            time.sleep(0.3)
        await asyncio.sleep(0)
        if first:
            time.sleep(0.1)
        sent.append(time.monotonic())  # the request goes out here
        await asyncio.sleep(0.01)  # and its answer comes back

    async def go():
        await asyncio.gather(*(policy.run(attempt, provider="slow") for _ in range(4)))

    asyncio.run(go())
    gaps = [later - earlier for earlier, later in zip(sent, sent[1:])]
    assert len(sent) == 4 and min(gaps) >= 0.1 - 1e-6


def test_a_rate_limited_attempt_is_still_cancelled_at_its_timeout():
    policy = Policy("slow-answer", Limits(rpm=6000, timeout_s=0.05, max_retries=0))
    seen: list[str] = []

    async def attempt():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with pytest.raises(ProviderError, match="did not answer within 0.05s"):
        asyncio.run(policy.run(attempt, provider="slow"))
    assert seen == ["cancelled"]


def test_providers_of_one_vendor_share_the_limit(gauge):
    limits = Limits(concurrency=2)
    first = get_provider("openai:gpt-4o-mini", limits=limits)
    second = get_provider("openai:gpt-4.1-mini", limits=limits)

    async def go():
        try:
            await asyncio.gather(*(p.call(CompletionRequest(prompt=f"q{i}")) for i in range(3) for p in (first, second)))
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(go())
    assert gauge.peak == 2 and len(gauge.arrivals) == 6


def test_one_provider_object_across_event_loops(gauge):
    # A notebook or a benchmark reuses a provider from several asyncio.run calls; its semaphore and
    # HTTP client must follow the running loop rather than stick to the first one.
    provider = get_provider("openai:gpt-4o-mini", limits=Limits(concurrency=1))

    async def burst():
        await asyncio.gather(*(provider.call(CompletionRequest(prompt=f"again {i}")) for i in range(3)))

    asyncio.run(burst())
    asyncio.run(burst())
    assert len(gauge.arrivals) == 6 and gauge.peak == 1


def test_retry_wait_prefers_the_servers_word_and_caps_it():
    policy = Policy("x", Limits(retry_cap_s=2.0))

    class State:
        def __init__(self, exc):
            self.outcome = type("Outcome", (), {"exception": lambda _self: exc})()
            self.attempt_number = 1

    assert policy.wait_for(State(ProviderError("busy", provider="x", retryable=True, retry_after=0.5))) == 0.5
    assert policy.wait_for(State(ProviderError("busy", provider="x", retryable=True, retry_after=90))) == 2.0
    backoff = policy.wait_for(State(ProviderError("busy", provider="x", retryable=True)))
    assert 0.0 <= backoff <= 2.0


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after-ms": "50"}) == pytest.approx(0.05)
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.1"}) == pytest.approx(0.1)
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == pytest.approx(0.25)
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"},
                             now=1445412480.0) == pytest.approx(10.0)
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412490.0) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None and parse_retry_after(None) is None


def test_a_policy_kept_past_its_event_loop_still_works():
    # Callers may hold on to a policy (the web sources keep theirs); its semaphore is bound to the
    # loop it first waited in, so a later loop must get a policy of its own rather than an error.
    policy = Policy("kept", Limits(concurrency=1))
    order: list[int] = []

    async def burst(tag: int):
        async def attempt():
            await asyncio.sleep(0.01)
            order.append(tag)
            return tag

        return await asyncio.gather(*(policy.run(attempt, provider="kept") for _ in range(3)))

    assert asyncio.run(burst(1)) == [1, 1, 1]
    assert asyncio.run(burst(2)) == [2, 2, 2]
    assert order == [1, 1, 1, 2, 2, 2]


def test_a_timeout_on_a_server_of_ones_own_says_it_may_be_queueing():
    from agent.config import Limits
    from agent.providers import get_provider

    compatible = get_provider("openai-compatible:m", limits=Limits(concurrency=4))
    assert "may be queueing the 4 sent at once" in compatible.timeout_hint()
    assert "concurrency = 1" in compatible.timeout_hint()
    assert "queueing" not in get_provider("ollama:m").timeout_hint()  # one at a time already
    assert "queueing" not in get_provider("local:extractive", limits=Limits(concurrency=4)).timeout_hint()
