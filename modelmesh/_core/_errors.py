"""The one error hierarchy of ModelMesh Lite.

Every error the library raises derives from `ModelMeshError` and carries structured
attributes (`status`, `provider`, `model`, `retry_after`, `attempts`) rather than
information hidden in the message. Errors of a request follow the OpenAI SDK's
hierarchy, names and attributes (`APIError` > `APIStatusError` > `RateLimitError`, ...,
with `status_code`, `body`, `code`, `type`, `param`, `request_id`, `response`), so code
written against the SDK catches them unchanged. Messages never contain credentials: codecs
and shells pass vendor messages through `redact()` before they reach an error.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "AttemptRecord",
    "ModelMeshError",
    "ConfigurationError",
    "InternalError",
    "LengthFinishReasonError",
    "ContentFilterFinishReasonError",
    "APIError",
    "APIStatusError",
    "BadRequestError",
    "InvalidArgumentError",
    "ContextLengthError",
    "ContentFilteredError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "UnprocessableEntityError",
    "RateLimitError",
    "BudgetExceededError",
    "InternalServerError",
    "NoModelAvailableError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamInterruptedError",
    "ErrorResponse",
    "status_class",
    "for_status",
    "mesh_headers",
    "standby_error",
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


class AttemptRecord(NamedTuple):
    """One attempt of a logical request: where it went and how it ended. A named tuple
    (read-only fields, cheap to make: one is made per attempt)."""

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
    """Base of every error raised by ModelMesh Lite.

    `status` is the HTTP status the provider answered (None when none did); `code`, `type`
    and `param` are the vendor's error fields where it gave them; `request_id` is the
    mesh's id of the request."""

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
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.attempts = tuple(attempts)
        self.code = code if code is not None else _CODES.get(getattr(self, "cause", None) or self.__class__)
        self.type = type if type is not None else _type_of(self.__class__, self.code)
        self.param = param
        self.request_id = request_id

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


class InternalError(ModelMeshError):
    """An unexpected exception inside ModelMesh or in code it calls for you (a custom
    strategy or policy) ended the request. The original is `__cause__`; no model was
    blamed for it. A bug: please report it (with the traceback)."""


class LengthFinishReasonError(ModelMeshError):
    """`chat.completions.parse`: the answer was cut at its token limit before its JSON was
    whole (the SDK's class of that name). `completion` is the response."""

    def __init__(self, message: str, *, completion: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.completion = completion


class ContentFilterFinishReasonError(ModelMeshError):
    """`chat.completions.parse`: the provider's content filter stopped the answer (the SDK's
    class of that name)."""


# -- the OpenAI SDK's hierarchy, with its names and attributes -----------------------------------

class APIError(ModelMeshError):
    """A request did not get its answer; the OpenAI SDK's `APIError`. `body` is the
    OpenAI-shaped error object (`message`, `type`, `param`, `code`)."""

    @property
    def body(self) -> dict[str, Any]:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


class APIStatusError(APIError):
    """The request ended with an error status: the provider's, when one answered, or the one
    the mesh gives its own refusals (404 for an unknown model, 503 when nothing can serve).
    `status_code` says which; `response` is the answer as the OpenAI proxy would send it."""

    default_status = 500

    def __init__(self, message: str, *, status_code: int | None = None, **kw: Any) -> None:
        """`status_code` defaults to the provider's `status` when it is one this class stands
        for, else to the class's own (a ContextLengthError under a 413 still says 400)."""
        super().__init__(message, **kw)
        if status_code is None:
            status = self.status
            fits = status is not None and status >= 400 and issubclass(type(self), status_class(status))
            status_code = status if fits and status is not None else type(self).default_status
        self.status_code: int = status_code

    @property
    def response(self) -> ErrorResponse:
        headers = {"content-type": "application/json",
                   **mesh_headers(request_id=self.request_id, provider=self.provider, model=self.model,
                                  attempts=len(self.attempts))}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(0, math.ceil(self.retry_after)))
        return ErrorResponse(self.status_code, headers, {"error": self.body})


class BadRequestError(APIStatusError):
    """The request itself is invalid (400); it fails fast and no model is penalised."""

    default_status = 400


class InvalidArgumentError(BadRequestError, TypeError):
    """A client method was called without a required argument or with one of the wrong type;
    nothing was sent. Also a TypeError, as Python's own for a bad call would be."""


class ContextLengthError(BadRequestError):
    """The prompt exceeds the context window of every model that could be tried."""


class ContentFilteredError(BadRequestError):
    """Every model that was tried refused the content."""


class AuthenticationError(APIStatusError):
    """The provider rejected the credentials (401)."""

    default_status = 401


class PermissionDeniedError(APIStatusError):
    """The provider refused the key access to this model or resource (403)."""

    default_status = 403


class NotFoundError(APIStatusError):
    """No such model (404): not a pool, capability or configured model of the mesh, or one
    its provider does not know."""

    default_status = 404


class ConflictError(APIStatusError):
    default_status = 409


class UnprocessableEntityError(APIStatusError):
    default_status = 422


class RateLimitError(APIStatusError):
    """Rate limited (429) and no other model could take the request. `code` is
    `insufficient_quota` when the provider's quota, not its rate, is spent."""

    default_status = 429


class BudgetExceededError(RateLimitError):
    """A spend limit of the mesh (provider daily/monthly budget or pool budget_limit) leaves
    no model. A 429 with code `budget_exceeded`."""


class InternalServerError(APIStatusError):
    """The provider failed (5xx), or the mesh could not serve the request: every model it
    tried failed for transient reasons (503)."""

    default_status = 502


class NoModelAvailableError(APIStatusError):
    """Every model of the pool is on standby. `recovery_at` is the earliest recovery time
    (in the mesh clock's seconds), `retry_after` the seconds from now until then.

    Each one raised is also the SDK's class for the standbys' shared cause, so code written
    against the SDK handles it: all rate limited or their quota spent -> a RateLimitError,
    all refused the key -> an AuthenticationError, all unknown to their provider -> a
    NotFoundError; otherwise (errors, outages, by hand, mixed causes) an InternalServerError
    (503). `standby_error(cause)` gives the class for a cause."""

    default_status = 503
    cause: type[APIStatusError] = APIStatusError

    def __init__(self, message: str, *, recovery_at: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.recovery_at = recovery_at

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_standby, (self.cause, self.message, self.__dict__))


_STANDBY: dict[type[APIStatusError], type[NoModelAvailableError]] = {}


def standby_error(cause: type[APIStatusError]) -> type[NoModelAvailableError]:
    """The NoModelAvailableError that is also `cause` (RateLimitError, InternalServerError, ...)."""
    cls = _STANDBY.get(cause)
    if cls is None:
        attrs = {"__module__": __name__, "__qualname__": "NoModelAvailableError", "__doc__": NoModelAvailableError.__doc__,
                 "cause": cause, "default_status": 503 if cause is InternalServerError else cause.default_status}
        cls = _STANDBY[cause] = type("NoModelAvailableError", (NoModelAvailableError, cause), attrs)
    return cls


def _rebuild_standby(cause: type[APIStatusError], message: str, state: dict[str, Any]) -> ModelMeshError:
    return _rebuild(standby_error(cause), message, state)


class APIConnectionError(APIError):
    """No answer came: the connection was refused, reset or could not be made."""


class APITimeoutError(APIConnectionError):
    """An attempt or the whole request ran out of time before an answer came."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 422: UnprocessableEntityError, 429: RateLimitError,
}


def status_class(status: int) -> type[APIStatusError]:
    """The class the OpenAI SDK raises for an error `status`."""
    return _BY_STATUS.get(status) or (InternalServerError if status >= 500 else APIStatusError)


def for_status(cls: type[ModelMeshError], status: int | None) -> type[ModelMeshError]:
    """The class an error of kind `cls` takes when the provider answered `status`: the one the
    OpenAI SDK raises for that status, unless `cls` is already a narrower kind of it (a
    ContextLengthError stays one under a 400); `cls` itself when no error status came."""
    if status is None or status < 400:
        return cls
    by_status = status_class(status)
    return cls if issubclass(cls, by_status) else by_status


def mesh_headers(*, request_id: str | None, provider: str | None, model: str | None, attempts: int,
                 pool: str | None = None, upstream: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers an answer of the mesh carries: who served it (`x-modelmesh-provider`,
    `-model`, `-attempts`, `-pool`), the mesh's request id (`x-modelmesh-request-id`), and
    `x-request-id`: the provider's own when it sent one (the id its support asks for), else
    the mesh's. `upstream` are the serving response's headers, kept under these (for a
    response object to show; an HTTP answer of our own must not repeat their framing)."""
    out = {k.lower(): v for k, v in upstream.items()} if upstream else {}
    if request_id:
        out["x-modelmesh-request-id"] = request_id
        out.setdefault("x-request-id", request_id)
    if provider:
        out["x-modelmesh-provider"] = provider
    if model:
        out["x-modelmesh-model"] = model
    out["x-modelmesh-attempts"] = str(attempts)
    if pool:
        out["x-modelmesh-pool"] = pool
    return out


class ErrorResponse:
    """The HTTP answer an error stands for: `status_code`, `headers`, `text` and `json()`,
    read like the `response` of the OpenAI SDK's errors."""

    __slots__ = ("status_code", "headers", "_payload")

    def __init__(self, status_code: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
        self.status_code = status_code
        self.headers = headers
        self._payload = payload

    def json(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.text)  # a copy: the caller may change it
        return payload

    @property
    def text(self) -> str:
        return json.dumps(self._payload)

    def __repr__(self) -> str:
        return f"<ErrorResponse [{self.status_code}]>"


class StreamInterruptedError(APIError):
    """A stream failed after content had reached the caller (the SDK raises APIError then). `partial_text` holds what was
    delivered; `reason` says why it stopped. Nothing delivered is repeated or dropped."""

    def __init__(self, message: str, *, partial_text: str = "", reason: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial_text = partial_text
        self.reason = reason


_CODES: dict[type[ModelMeshError], str] = {
    NotFoundError: "model_not_found", ContextLengthError: "context_length_exceeded",
    ContentFilteredError: "content_filter", BudgetExceededError: "budget_exceeded",
    RateLimitError: "rate_limit_exceeded",
}


def _type_of(cls: type[ModelMeshError], code: str | None) -> str | None:
    """The OpenAI error `type` of a class (as OpenAI's API names them)."""
    if issubclass(cls, RateLimitError):
        return "insufficient_quota" if code in ("insufficient_quota", "budget_exceeded") else "requests"
    if issubclass(cls, InternalServerError):
        return "server_error"
    if issubclass(cls, APIStatusError):
        return "invalid_request_error"
    return None
