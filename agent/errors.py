"""The project's error tree.

Library code raises these; only the surfaces (the CLI, the notebook object) turn them into exit codes
and one-line messages. Two families matter to a user: a :class:`UsageError` is something they can fix
themselves (a bad flag, a missing file, a missing key); a :class:`ProviderError` or
:class:`SourceError` is a remote failure, with the fields a retry policy needs.
"""

from __future__ import annotations


class ResearchError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and, when there is one, what to do about it, on one line."""
        text = self.message if not self.hint else f"{self.message}; {self.hint}"
        return " ".join(text.split())


class UsageError(ResearchError):
    """A mistake the user can fix: bad flag, missing file, unknown run id, unknown provider."""

    exit_code = 2


class MissingKeyError(UsageError):
    """A provider needs an API key that is not set."""

    def __init__(self, provider: str, variable: str) -> None:
        super().__init__(
            f"{provider} needs an API key and {variable} is not set",
            hint=f"export {variable}=... or put it in a .env file in this directory",
        )
        self.provider = provider
        self.variable = variable


class StoreError(ResearchError):
    """The cache directory cannot be opened, read or written.

    Always fatal to a run: once a result or a journal event cannot be written, every further paid
    call could be paid for again on resume, so the run stops before the next one.
    """

    exit_code = 1
    fatal = True


class ProviderError(ResearchError):
    """A model provider failed a call.

    ``retryable`` says whether the same request may succeed later (rate limits, 5xx, timeouts,
    dropped connections); ``fatal`` says that every other call to this provider would fail the same
    way (a rejected key), so the run should stop rather than go on.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        fatal: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.fatal = fatal


class AuthError(ProviderError):
    """The provider rejected the API key (401/403): no retry, and the run stops."""

    def __init__(self, provider: str, variable: str, status: int | None = None) -> None:
        # The variable is in the message itself: a stopped run's one line keeps the message, not this hint.
        super().__init__(
            f"{provider} rejected the API key in {variable}" + (f" (HTTP {status})" if status else ""),
            provider=provider,
            status=status,
            fatal=True,
            hint=f"check {variable}, then resume the run",
        )
        self.variable = variable


class SourceError(ResearchError):
    """A source (file, page, search) could not be read."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        retryable: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.source = source
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class SourceAuthError(SourceError):
    """The web backend refused the account itself (a rejected key, no credits): every other call would
    fail the same way, so the run stops (resumably) instead of failing each source in turn."""

    fatal = True


class BudgetExceeded(ResearchError):
    """The next paid call would take the run past its ``--max-cost``."""

    exit_code = 4


class RunStopped(ResearchError):
    """The run stopped early (a rejected key, a budget); it can be resumed."""

    def __init__(self, message: str, *, run_id: str, cause: ResearchError, exit_code: int = 1,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"fix it, then run: research resume {run_id}")
        self.run_id = run_id
        self.cause = cause
        self.exit_code = exit_code


class RunWaiting(ResearchError):
    """The run stopped, durably, to wait for a person's approval before a stage. Not a failure."""

    exit_code = 0
    #: Not a step's failure: a step that meets it is journaled as neither paid nor failed.
    deferred = True

    def __init__(self, run_id: str, stage: str, since: float, until: float | None) -> None:
        import datetime as _dt

        def when(ts: float) -> str:
            return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

        expiry = f", until {when(until)}" if until else ""
        super().__init__(f"run {run_id} waits for approval before its {stage} stage (since {when(since)}{expiry})",
                         hint=f"continue it with: research approve {run_id} [--note TEXT]; or end it with: "
                              f"research reject {run_id}")
        self.run_id, self.stage, self.since, self.until = run_id, stage, since, until


    @property
    def continue_with(self) -> str:
        """The command that carries the run on."""
        return f"research approve {self.run_id}"


class BatchWaiting(RunWaiting):
    """The run handed requests to a vendor's batch API and, asked not to wait (``--no-wait``), stopped
    until they are answered; any later process collects the answers (``research resume``). Not a failure."""

    def __init__(self, run_id: str, progress: list[str]) -> None:
        ResearchError.__init__(self, f"run {run_id} waits for its batches ({'; '.join(progress)})",
                               hint=f"collect them with: research resume {run_id} [--no-wait]")
        self.run_id, self.stage, self.progress = run_id, "batch", list(progress)
        self.since = self.until = None

    @property
    def continue_with(self) -> str:
        return f"research resume {self.run_id}"


class RunRejected(ResearchError):
    """A person rejected the run at one of its approval stages (or its wait expired): it is over."""

    exit_code = 1

    def __init__(self, run_id: str, status: str, stage: str) -> None:
        super().__init__(f"run {run_id} was {status} at its {stage} stage", hint="start a new run to try again")
        self.run_id, self.status, self.stage = run_id, status, stage
