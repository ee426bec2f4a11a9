"""Vendor batch APIs, pure: OpenAI Batch and Anthropic Message Batches.

Theory of operation: a provider batch is a short conversation the shell
(`modelmesh/_batch.py`) carries out; this module says what each request of it is and what
each answer means, and does no I/O. Every request is a `BatchWire` (JSON, or raw bytes
for OpenAI's multipart file upload). The items' bodies are made by the provider's own
chat/embeddings codec (`build_request`), so a batch line is exactly the request the mesh
would send on its own, and each answer line goes back through that codec's
`parse_response` / `classify_error`, so a batch answer reads as a direct one.

OpenAI: `POST /files` (multipart, `purpose=batch`, the JSONL of `{"custom_id", "method",
"url", "body"}` lines) -> `POST /batches {"input_file_id", "endpoint", "completion_window":
"24h"}` -> `GET /batches/{id}` until it ends -> `GET /files/{output_file_id}/content` and
`/files/{error_file_id}/content` (JSONL of `{"id", "custom_id", "response": {"status_code",
"request_id", "body"}, "error"}`); `POST /batches/{id}/cancel`.
Anthropic: `POST /messages/batches {"requests": [{"custom_id", "params"}]}` -> `GET
/messages/batches/{id}` until `processing_status` is `ended` -> `GET results_url` (JSONL of
`{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired", ...}}`);
`POST /messages/batches/{id}/cancel`.
"""
from __future__ import annotations

import abc
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import _errors as E
from .._batch import BatchItem, Counts, ItemError, ItemOutcome, Status
from .._types import ErrorInfo, ErrorKind
from ._base import Codec, CodecError, Target, as_dict, as_int, load_json
from .files import ApiWire, FilesCodec

__all__ = ["BatchWire", "RemoteBatch", "BatchCodec", "OpenAIBatchCodec", "AnthropicBatchCodec", "batch_codec",
           "item_error", "not_run"]

_PATHS = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}


# One HTTP request of a provider batch: the files API's request type (`files.ApiWire`).
BatchWire = ApiWire


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteBatch:
    """A provider's batch as its last answer described it, in OpenAI's vocabulary."""

    id: str
    status: Status
    counts: Counts
    results: tuple[str, ...] = ()          # URLs of the result files, once it has ended
    created_at: int | None = None
    ended_at: int | None = None


def item_error(info: ErrorInfo) -> ItemError:
    """An item's error from a codec's classification: its class is the one the OpenAI SDK
    would raise for that status (`RateLimitError`, `InternalServerError`, ...)."""
    status = info.status
    cls = E.status_class(status).__name__ if status is not None else "APIConnectionError"
    return ItemError(error_class=cls, message=info.message, status=status, code=info.code, type=info.type)


def not_run(custom_id: str, why: str, provider: str | None = None) -> ItemOutcome:
    """An item a batch ended without running: cancelled or expired."""
    message = f"the batch was {why} before this request ran"
    return ItemOutcome(custom_id=custom_id, provider=provider,
                       error=ItemError(error_class="APIError", message=message, code=f"batch_{why}"))


class BatchCodec(abc.ABC):
    """One vendor's batch API over its chat/embeddings codec `codec`."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def _headers(self, target: Target) -> dict[str, str]:
        # the codec's own auth and version headers, as its model listing sends them
        wire = self.codec.build_request(target, "models", {}, stream=False)
        return {k: v for k, v in wire.headers.items() if k.lower() != "accept"} | {"Accept": "application/json"}

    def _base(self, target: Target) -> str:
        return self.codec.base_url(target)

    def _body(self, target: Target, item: BatchItem) -> Any:
        try:
            return self.codec.build_request(target, item.op, item.body, stream=False).json
        except CodecError as exc:
            raise E.InvalidArgumentError(f"batch line {item.index + 1} ({item.custom_id}): {exc.info.message}",
                                         param="input") from None
        except (TypeError, ValueError) as exc:
            raise E.InvalidArgumentError(f"batch line {item.index + 1} ({item.custom_id}): {exc}",
                                         param="input") from None

    @abc.abstractmethod
    def submit(self, target: Target, op: str, items: Sequence[BatchItem]) -> BatchWire:
        """The first request of a batch."""

    @abc.abstractmethod
    def after_submit(self, target: Target, op: str, body: bytes) -> BatchWire | RemoteBatch:
        """What the first answer leads to: another request, or the batch it made."""

    @abc.abstractmethod
    def retrieve(self, target: Target, batch_id: str) -> BatchWire: ...

    @abc.abstractmethod
    def cancel(self, target: Target, batch_id: str) -> BatchWire: ...

    @abc.abstractmethod
    def parse_batch(self, target: Target, body: bytes) -> RemoteBatch: ...

    def results(self, target: Target, remote: RemoteBatch) -> list[BatchWire]:
        """The requests that fetch an ended batch's results."""
        return [BatchWire(method="GET", url=url, headers=self._headers(target)) for url in remote.results]

    @abc.abstractmethod
    def parse_results(self, target: Target, op: str, bodies: Sequence[bytes]) -> dict[str, ItemOutcome]:
        """Each answered item by its custom_id."""

    def _object(self, target: Target, body: bytes, what: str) -> dict[str, Any]:
        data = load_json(body)
        if not isinstance(data, dict):
            raise _malformed(target, f"answered {what} with something that is not a JSON object")
        return data


class OpenAIBatchCodec(BatchCodec):
    def submit(self, target: Target, op: str, items: Sequence[BatchItem]) -> BatchWire:
        lines = [{"custom_id": it.custom_id, "method": "POST", "url": _PATHS[op], "body": self._body(target, it)}
                 for it in items]
        jsonl = "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines).encode()
        return FilesCodec(self.codec).upload(target, filename="batch.jsonl", content=jsonl, purpose="batch",
                                             content_type="application/jsonl")

    def after_submit(self, target: Target, op: str, body: bytes) -> BatchWire | RemoteBatch:
        data = self._object(target, body, "the file upload")
        file_id = data.get("id")
        if not isinstance(file_id, str) or not file_id:
            raise _malformed(target, "the file upload's answer has no file id")
        if data.get("object") == "batch":  # not a file: the batch itself
            return self.parse_batch(target, body)
        payload = {"input_file_id": file_id, "endpoint": _PATHS[op], "completion_window": "24h"}
        return BatchWire(method="POST", url=f"{self._base(target)}/batches",
                         headers=self._headers(target) | {"Content-Type": "application/json"}, json=payload)

    def retrieve(self, target: Target, batch_id: str) -> BatchWire:
        return BatchWire(method="GET", url=f"{self._base(target)}/batches/{_id(batch_id)}", headers=self._headers(target))

    def cancel(self, target: Target, batch_id: str) -> BatchWire:
        return BatchWire(method="POST", url=f"{self._base(target)}/batches/{_id(batch_id)}/cancel",
                         headers=self._headers(target))

    def parse_batch(self, target: Target, body: bytes) -> RemoteBatch:
        data = self._object(target, body, "a batch request")
        batch_id, status = data.get("id"), data.get("status")
        if not isinstance(batch_id, str) or status not in {s.value for s in Status}:
            raise _malformed(target, f"the batch answer has no id or an unknown status ({status!r})")
        counts = as_dict(data.get("request_counts"))
        files = [data.get(k) for k in ("output_file_id", "error_file_id")]
        content = FilesCodec(self.codec).content
        return RemoteBatch(id=batch_id, status=Status(status),
                           counts=Counts(total=as_int(counts.get("total")), completed=as_int(counts.get("completed")),
                                         failed=as_int(counts.get("failed"))),
                           results=tuple(content(target, f).url for f in files if isinstance(f, str) and f),
                           created_at=_time(data.get("created_at")),
                           ended_at=_time(data.get("completed_at") or data.get("cancelled_at")
                                          or data.get("failed_at") or data.get("expired_at")))

    def parse_results(self, target: Target, op: str, bodies: Sequence[bytes]) -> dict[str, ItemOutcome]:
        out: dict[str, ItemOutcome] = {}
        for number, line in _jsonl(target, bodies):
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str):
                raise _malformed(target, f"result line {number} has no custom_id")
            out[custom_id] = self._outcome(target, op, custom_id, line)
        return out

    def _outcome(self, target: Target, op: str, custom_id: str, line: Mapping[str, Any]) -> ItemOutcome:
        response = as_dict(line.get("response"))
        error = line.get("error")
        request_id = response.get("request_id") if isinstance(response.get("request_id"), str) else None
        status = response.get("status_code")
        raw = json.dumps(response.get("body")).encode() if "body" in response else b""
        if isinstance(error, Mapping) or not isinstance(status, int):
            err = as_dict(error)
            message = str(err.get("message") or "the request got no answer")
            code = err.get("code") if isinstance(err.get("code"), str) else None
            return ItemOutcome(custom_id=custom_id, provider=target.provider, request_id=request_id,
                               error=ItemError(error_class="APIError", message=message, code=code))
        if status >= 400:
            info = self.codec.classify_error(status, {}, raw, secrets=target.secrets)
            return ItemOutcome(custom_id=custom_id, provider=target.provider, request_id=request_id,
                               error=item_error(info))
        return _parsed(self.codec, target, op, custom_id, status, raw, request_id)


class AnthropicBatchCodec(BatchCodec):
    _CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
    _STATUS_OF = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                  "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                  "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}

    def submit(self, target: Target, op: str, items: Sequence[BatchItem]) -> BatchWire:
        if op != "chat":
            raise E.InvalidArgumentError(f"provider {target.provider!r}: Anthropic batches take chat completions "
                                         f"only, not {op}", param="endpoint")
        bad = [f"line {it.index + 1} ({it.custom_id!r})" for it in items if not self._CUSTOM_ID.match(it.custom_id)]
        if bad:
            raise E.InvalidArgumentError("Anthropic batches need each custom_id to be 1-64 letters, digits, '_' or "
                                         f"'-': {', '.join(bad[:10])}", param="input")
        requests = [{"custom_id": it.custom_id, "params": self._body(target, it)} for it in items]
        return BatchWire(method="POST", url=f"{self._base(target)}/messages/batches",
                         headers=self._headers(target) | {"Content-Type": "application/json"},
                         json={"requests": requests})

    def after_submit(self, target: Target, op: str, body: bytes) -> BatchWire | RemoteBatch:
        return self.parse_batch(target, body)

    def retrieve(self, target: Target, batch_id: str) -> BatchWire:
        return BatchWire(method="GET", url=f"{self._base(target)}/messages/batches/{_id(batch_id)}",
                         headers=self._headers(target))

    def cancel(self, target: Target, batch_id: str) -> BatchWire:
        return BatchWire(method="POST", url=f"{self._base(target)}/messages/batches/{_id(batch_id)}/cancel",
                         headers=self._headers(target))

    def parse_batch(self, target: Target, body: bytes) -> RemoteBatch:
        data = self._object(target, body, "a message batch request")
        batch_id, processing = data.get("id"), data.get("processing_status")
        if not isinstance(batch_id, str) or processing not in ("in_progress", "canceling", "ended"):
            raise _malformed(target, f"the message batch answer has no id or an unknown status ({processing!r})")
        n = {k: as_int(v) for k, v in as_dict(data.get("request_counts")).items()}
        total = sum(n.get(k, 0) for k in ("processing", "succeeded", "errored", "canceled", "expired"))
        failed = n.get("errored", 0) + n.get("canceled", 0) + n.get("expired", 0)
        cancelled = data.get("cancel_initiated_at") is not None
        if processing == "in_progress":
            status = Status.IN_PROGRESS
        elif processing == "canceling":
            status = Status.CANCELLING
        elif cancelled:
            status = Status.CANCELLED
        elif total and n.get("expired", 0) == total:
            status = Status.EXPIRED
        else:
            status = Status.COMPLETED
        url = data.get("results_url")
        return RemoteBatch(id=batch_id, status=status,
                           counts=Counts(total=total, completed=n.get("succeeded", 0), failed=failed,
                                         extra={k: v for k, v in n.items() if k in ("errored", "canceled", "expired")}),
                           results=(url,) if processing == "ended" and isinstance(url, str) and url else ())

    def parse_results(self, target: Target, op: str, bodies: Sequence[bytes]) -> dict[str, ItemOutcome]:
        out: dict[str, ItemOutcome] = {}
        for number, line in _jsonl(target, bodies):
            custom_id, result = line.get("custom_id"), as_dict(line.get("result"))
            if not isinstance(custom_id, str):
                raise _malformed(target, f"result line {number} has no custom_id")
            kind = result.get("type")
            if kind == "succeeded":
                raw = json.dumps(result.get("message")).encode()
                out[custom_id] = _parsed(self.codec, target, op, custom_id, 200, raw, None)
            elif kind == "errored":
                payload = as_dict(result.get("error"))
                inner = as_dict(payload.get("error"))
                status = self._STATUS_OF.get(str(inner.get("type")), 500)
                info = self.codec.classify_error(status, {}, json.dumps(payload).encode(), secrets=target.secrets)
                request_id = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
                out[custom_id] = ItemOutcome(custom_id=custom_id, provider=target.provider, request_id=request_id,
                                             error=item_error(info))
            elif kind in ("canceled", "expired"):
                out[custom_id] = not_run(custom_id, "cancelled" if kind == "canceled" else "expired", target.provider)
            else:
                raise _malformed(target, f"result line {number} has an unknown result type {kind!r}")
        return out


def batch_codec(codec: Codec) -> BatchCodec | None:
    """The batch API of a provider's codec, or None when its vendor has none the mesh drives."""
    if codec.name == "openai":
        return OpenAIBatchCodec(codec)
    if codec.name == "anthropic":
        return AnthropicBatchCodec(codec)
    return None


# -- helpers --------------------------------------------------------------------------------

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


def _id(value: str) -> str:
    """A vendor id put in a URL path: refused when it could change the path."""
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise E.InvalidArgumentError(f"not a batch or file id: {value!r}", param="batch_id")
    return value


def _malformed(target: Target, message: str) -> CodecError:
    return CodecError.of(ErrorKind.MALFORMED, f"{target.provider}: {message}")


def _time(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _jsonl(target: Target, bodies: Sequence[bytes]) -> list[tuple[int, dict[str, Any]]]:
    lines: list[tuple[int, dict[str, Any]]] = []
    for body in bodies:
        for number, text in enumerate(body.splitlines(), 1):
            if not text.strip():
                continue
            line = load_json(text)
            if not isinstance(line, dict):
                raise _malformed(target, f"result line {number} is not a JSON object")
            lines.append((number, line))
    return lines


def _parsed(codec: Codec, target: Target, op: str, custom_id: str, status: int, raw: bytes,
            request_id: str | None) -> ItemOutcome:
    try:
        body = codec.parse_response(target, op, status, {}, raw)
    except CodecError as exc:
        return ItemOutcome(custom_id=custom_id, provider=target.provider, request_id=request_id,
                           error=item_error(exc.info))
    model = body.get("model") if isinstance(body.get("model"), str) else target.model
    return ItemOutcome(custom_id=custom_id, body=body, request_id=request_id, provider=target.provider, model=model)
