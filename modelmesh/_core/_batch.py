"""Batches, the pure part: input lines, the job's states, per-item outcomes, output lines.

Theory of operation: a batch is a list of items, each one request the mesh could send on
its own (a chat completion or an embeddings request) with the caller's `custom_id`.
`parse_input` checks OpenAI's batch input lines (`{"custom_id", "method": "POST", "url",
"body"}`) and reports every bad line at once, by its number. A job moves through OpenAI's
batch vocabulary, one table (`TRANSITIONS`) naming each end state: validating ->
in_progress -> completed, or cancelling -> cancelled, failed, expired; an input the table
lacks is a `BatchStateError`. Each item ends as an `ItemOutcome`: the answer's body with
its HTTP status, or an error whose class, status, code and message say why; never the
whole job. `output_line` writes an outcome as a line of OpenAI's batch output file
(`{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`).
Nothing here reads a clock or does I/O: the shell (`modelmesh/_batch.py`) runs the items.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import InvalidArgumentError

__all__ = ["ENDPOINTS", "BATCH_CODECS", "Status", "TERMINAL", "BatchStateError", "TRANSITIONS", "next_status",
           "BatchItem", "ItemError", "ItemOutcome", "Counts", "parse_input", "output_line", "error_body"]

# the endpoints a batch line may name, and the mesh operation each one is
ENDPOINTS: Mapping[str, str] = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings"}
# the wire formats whose vendors have a batch API the mesh drives (codecs/batches.py)
BATCH_CODECS = frozenset({"openai", "anthropic"})
_MAX_PROBLEMS = 20  # a file of 50,000 bad lines is reported by its first few


class Status(str, enum.Enum):
    """OpenAI's batch statuses, the vocabulary of every job, local or a provider's."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    EXPIRED = "expired"


TERMINAL = frozenset({Status.COMPLETED, Status.CANCELLED, Status.FAILED, Status.EXPIRED})


class BatchStateError(RuntimeError):
    """A job was fed an input its state cannot take (a bug in the shell, not the caller's)."""


# (state, what happened) -> the state it leads to. Cancelling an ended job changes nothing,
# as cancelling a finished OpenAI batch leaves it as it was.
TRANSITIONS: Mapping[tuple[Status, str], Status] = {
    (Status.VALIDATING, "validated"): Status.IN_PROGRESS,
    (Status.VALIDATING, "invalid"): Status.FAILED,
    (Status.VALIDATING, "cancel"): Status.CANCELLED,
    (Status.IN_PROGRESS, "finalizing"): Status.FINALIZING,
    (Status.IN_PROGRESS, "finished"): Status.COMPLETED,
    (Status.IN_PROGRESS, "cancel"): Status.CANCELLING,
    (Status.IN_PROGRESS, "failed"): Status.FAILED,
    (Status.IN_PROGRESS, "expired"): Status.EXPIRED,
    (Status.FINALIZING, "finished"): Status.COMPLETED,
    (Status.FINALIZING, "cancel"): Status.CANCELLING,
    (Status.FINALIZING, "failed"): Status.FAILED,
    (Status.FINALIZING, "expired"): Status.EXPIRED,
    (Status.CANCELLING, "cancel"): Status.CANCELLING,
    (Status.CANCELLING, "finished"): Status.CANCELLED,
    (Status.CANCELLING, "failed"): Status.FAILED,
    (Status.CANCELLING, "expired"): Status.EXPIRED,
    **{(end, "cancel"): end for end in TERMINAL},
}


def next_status(state: Status, event: str) -> Status:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise BatchStateError(f"a batch {state.value} cannot take {event!r}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchItem:
    """One request of a batch: `op` is "chat" or "embeddings", `body` its OpenAI body."""

    index: int
    custom_id: str
    op: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemError:
    """Why one item failed: the error's class (`RateLimitError`, `APIConnectionError`, ...),
    the HTTP status that ended it (None when no answer came), the vendor's code and the message."""

    error_class: str
    message: str
    status: int | None = None
    code: str | None = None
    type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"error_class": self.error_class, "status": self.status, "code": self.code,
                "type": self.type, "message": self.message}


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemOutcome:
    """How one item ended: `body` is the OpenAI-shaped answer (status 200) or None with `error`."""

    custom_id: str
    body: Mapping[str, Any] | None = None
    error: ItemError | None = None
    request_id: str | None = None
    provider: str | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """OpenAI's `request_counts`: answered (`completed`), failed, and all of them."""

    total: int
    completed: int = 0
    failed: int = 0
    extra: Mapping[str, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.completed + self.failed

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "completed": self.completed, "failed": self.failed}


def parse_input(lines: Sequence[Any], *, endpoint: str | None = None, where: str = "batch input") -> tuple[BatchItem, ...]:
    """OpenAI batch input lines -> items; every bad line is reported at once, by its number
    (1-based, as in the file). Each line's `url` must be the batch's `endpoint` when one is
    given, as OpenAI requires; `custom_id`s must be distinct."""
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise InvalidArgumentError(f"{where}: endpoint must be one of {', '.join(ENDPOINTS)}, got {endpoint!r}",
                                   param="endpoint")
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Sequence):
        raise InvalidArgumentError(f"{where}: expected a list of request lines, got {type(lines).__name__}",
                                   param="input")
    if not lines:
        raise InvalidArgumentError(f"{where}: a batch needs at least one request line", param="input")
    problems: list[str] = []
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for i, line in enumerate(lines):
        found = _line_problem(line, endpoint)
        if found is None:
            custom_id = line["custom_id"]
            if custom_id in seen:
                found = f"custom_id {custom_id!r} repeats line {seen[custom_id]}"
            else:
                seen[custom_id] = i + 1
                items.append(BatchItem(index=i, custom_id=custom_id, op=ENDPOINTS[line["url"]], body=line["body"]))
                continue
        problems.append(f"line {i + 1}: {found}")
        if len(problems) >= _MAX_PROBLEMS:
            problems.append("(further lines not checked)")
            break
    if problems:
        raise InvalidArgumentError(f"{where}: " + "; ".join(problems), param="input")
    return tuple(items)


def _line_problem(line: Any, endpoint: str | None) -> str | None:
    if not isinstance(line, Mapping):
        return f"expected a JSON object, got {type(line).__name__}"
    unknown = sorted(str(k) for k in line if k not in ("custom_id", "method", "url", "body"))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)} (a line has custom_id, method, url, body)"
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "'custom_id' must be a non-empty string"
    if line.get("method", "POST") != "POST":
        return f"'method' must be \"POST\", got {line.get('method')!r}"
    url = line.get("url")
    if not isinstance(url, str) or url not in ENDPOINTS:
        return f"'url' must be one of {', '.join(ENDPOINTS)}, got {url!r}"
    if endpoint is not None and url != endpoint:
        return f"'url' is {url!r} but the batch's endpoint is {endpoint!r}"
    body = line.get("body")
    if not isinstance(body, Mapping):
        return "'body' must be a JSON object (the request's body)"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'body.model' must name a pool, capability or model"
    if ENDPOINTS[url] == "chat" and (not isinstance(body.get("messages"), list) or not body["messages"]):
        return "'body.messages' must be a non-empty list"
    if ENDPOINTS[url] == "chat" and body.get("stream"):
        return "'body.stream' cannot be true in a batch"
    if ENDPOINTS[url] == "embeddings" and body.get("input") in (None, "", []):
        return "'body.input' is required"
    return None


def error_body(error: ItemError) -> dict[str, Any]:
    """OpenAI's error body for a failed item."""
    return {"error": {"message": error.message, "type": error.type or _type_for(error.status),
                      "param": None, "code": error.code}}


def _type_for(status: int | None) -> str:
    return "invalid_request_error" if status is not None and status < 500 else "server_error"


def output_line(outcome: ItemOutcome, line_id: str) -> dict[str, Any]:
    """One line of OpenAI's batch output format. An item that got an HTTP answer (or a
    status of the mesh's own) has `response`; one that got none (a connection that failed,
    a time-out, a cancelled batch) has `error` instead, as OpenAI's error file does."""
    error = outcome.error
    if error is None:
        response: dict[str, Any] | None = {"status_code": 200, "request_id": outcome.request_id,
                                           "body": dict(outcome.body or {})}
        return {"id": line_id, "custom_id": outcome.custom_id, "response": response, "error": None}
    if error.status is None:
        return {"id": line_id, "custom_id": outcome.custom_id, "response": None,
                "error": {"code": error.code or error.error_class, "message": error.message}}
    response = {"status_code": error.status, "request_id": outcome.request_id, "body": error_body(error)}
    return {"id": line_id, "custom_id": outcome.custom_id, "response": response, "error": None}
