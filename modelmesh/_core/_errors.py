"""The one error hierarchy of ModelMesh Lite.

Every error the library raises derives from `ModelMeshError` and carries structured
attributes (`status`, `provider`, `model`, `retry_after`, `attempts`) rather than
information hidden in the message. Messages never contain credentials: codecs and
shells pass vendor messages through `redact()` before they reach an error.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AttemptRecord",
    "ModelMeshError",
    "ConfigurationError",
    "RoutingError",
    "NoModelAvailableError",
    "ProviderError",
    "AuthenticationError",
    "RateLimitError",
    "RequestTimeoutError",
    "BudgetExceededError",
    "BadRequestError",
    "InvalidArgumentError",
    "InternalError",
    "ContextLengthError",
    "ContentFilteredError",
    "StreamInterruptedError",
    "redact",
]

# API-key shapes of the vendors we speak to, plus bearer tokens; used to scrub text that
# came from outside (vendor error bodies) before it is put into an exception or a log.
_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{8,}"
    r"|xai-[A-Za-z0-9]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)


# A piece of a secret this long at either end of a text is taken for a secret cut there
# (a body cut at 4 KB, a message cut at 300 characters): 28 of 32 characters are a leak.
MIN_CUT_FRAGMENT = 6


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """Remove known secret values and anything shaped like an API key from `text`.

    Longer secrets go first, so one that contains another is not left half shown. A
    text that begins with the end of a secret, or ends with its beginning (at least
    MIN_CUT_FRAGMENT characters), was cut through it: that fragment goes too.
    """
    known = sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len, reverse=True)
    for value in known:
        text = text.replace(value, "***")
    for value in known:
        text = _cut_fragments(text, value)
    return _SECRET_PATTERNS.sub("***", text)


def _cut_fragments(text: str, secret: str) -> str:
    for size in range(min(len(secret) - 1, len(text)), MIN_CUT_FRAGMENT - 1, -1):
        if text.endswith(secret[:size]):
            text = text[:-size] + "***"
            break
    for size in range(min(len(secret) - 1, len(text)), MIN_CUT_FRAGMENT - 1, -1):
        if text.startswith(secret[-size:]):
            text = "***" + text[size:]
            break
    return text


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One attempt of a logical request: where it went and how it ended."""

    provider: str
    model: str
    pool: str | None = None
    outcome: str = "ok"            # "ok" or an ErrorKind value
    status: int | None = None
    message: str = ""
    latency: float | None = None   # seconds

    def __str__(self) -> str:
        where = f"{self.provider}/{self.model}"
        detail = f" {self.status}" if self.status else ""
        msg = f": {self.message}" if self.message else ""
        return f"{where} -> {self.outcome}{detail}{msg}"


class ModelMeshError(Exception):
    """Base of every error raised by ModelMesh Lite."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider: str | None = None,
        model: str | None = None,
        retry_after: float | None = None,
        attempts: Sequence[AttemptRecord] = (),
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.attempts = tuple(attempts)
        self.code = code

    def __str__(self) -> str:
        if not self.attempts:
            return self.message
        lines = [self.message, "attempts:"]
        lines += [f"  {i}. {a}" for i, a in enumerate(self.attempts, 1)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # keep pickling (multiprocessing, proxies) working despite keyword-only fields
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[ModelMeshError], message: str, state: dict[str, Any]) -> ModelMeshError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigurationError(ModelMeshError, ValueError):
    """The configuration is invalid. `problems` lists every problem with its path."""

    def __init__(self, problems: Sequence[str], *, source: str | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        head = f"invalid configuration{f' in {source}' if source else ''}"
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head} ({count} {noun}):\n{body}")


class RoutingError(ModelMeshError):
    """No model could serve the request (unknown capability/pool, or every attempt failed)."""


class NoModelAvailableError(RoutingError):
    """Every model of the pool is on standby. `recovery_at` is the earliest recovery time
    (in the mesh clock's seconds), `retry_after` the seconds from now until then."""

    def __init__(self, message: str, *, recovery_at: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.recovery_at = recovery_at


class ProviderError(ModelMeshError):
    """A provider answered with an error that failover could not get around."""


class AuthenticationError(ProviderError):
    """The provider rejected the credentials (401/403)."""


class RateLimitError(ProviderError):
    """The provider rate-limited the request (429) and no other model could take it."""


class RequestTimeoutError(ProviderError):
    """An attempt or the whole request ran out of time."""


class BudgetExceededError(ModelMeshError):
    """A spend limit (provider daily/monthly budget or pool budget_limit) leaves no model."""


class BadRequestError(ProviderError):
    """The request itself is invalid; it fails fast and no model is penalised."""


class InvalidArgumentError(BadRequestError, TypeError):
    """A client method was called without a required argument or with one of the wrong type;
    nothing was sent. Also a TypeError, as Python's own for a bad call would be."""


class InternalError(ModelMeshError):
    """An unexpected exception inside ModelMesh or in code it calls for you (a custom
    strategy or policy) ended the request. The original is `__cause__`; no model was
    blamed for it. A bug: please report it (with the traceback)."""


class ContextLengthError(BadRequestError):
    """The prompt exceeds the context window of every model that could be tried."""


class ContentFilteredError(ProviderError):
    """Every model that was tried refused the content."""


class StreamInterruptedError(ProviderError):
    """A stream failed after content had reached the caller. `partial_text` holds what was
    delivered; `reason` says why it stopped. Nothing delivered is repeated or dropped."""

    def __init__(self, message: str, *, partial_text: str = "", reason: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial_text = partial_text
        self.reason = reason
