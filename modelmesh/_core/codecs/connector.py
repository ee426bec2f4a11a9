"""The codec of a connector that does its own I/O (the CDK's `BaseProvider`).

Such a connector sends nothing through the shell: `build_request` hands the shell a
`ConnectorCall`, the shell calls the connector with it and feeds back what came of it
(ResultReceived, ChunkReceived, ErrorReceived; see `_protocol.py`). What stays here, pure,
is making sense of what the connector returned: a result is brought to the OpenAI shape
(the seed's short form, `choices=[{"message": {"content": ...}}]`, gets its index, role and
finish reason) and then checked like any OpenAI answer; streamed items (chunk dicts or bare
text) become `chat.completion.chunk`s, and a stream that ends without a finish reason gets
one (`stop`). The decision on a failure is the same table's as for every other connector.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._types import ConnectorCall, ErrorInfo, ErrorKind
from ._base import (
    Codec,
    CodecError,
    StreamDecoder,
    StreamDone,
    StreamError,
    StreamItem,
    Target,
    chunk,
    kind_for_status,
    malformed,
    require_mapping,
)
from ._shape import ShapeError, check_completion, check_embeddings

__all__ = ["ConnectorCodec", "ChunkDecoder", "error_message"]

_CHECKS = {"chat": check_completion, "embeddings": check_embeddings}


def error_message(payload: Any) -> str:
    """The message of a JSON error body in the common shapes: {"error": "..."},
    {"error": {"message": "..."}}, {"message": "..."}, {"detail": "..."}."""
    if isinstance(payload, Mapping):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
    return ""


class ConnectorCodec(Codec):
    """The pure half of a connector with its own I/O. `ops` are what it answers."""

    name = "connector"
    ops = frozenset({"chat"})

    def base_url(self, target: Target) -> str:
        return target.base_url or self.default_base_url or ""  # the connector's own business

    # a ConnectorCall stands where a WireRequest does: the core hands it on, the drive loop tells them apart
    def build_request(self, target: Target, op: str, body: Mapping[str, Any], *,  # type: ignore[override]
                      stream: bool) -> ConnectorCall:
        if op != "models":
            self._check_op(op, stream)
        payload = dict(require_mapping(body)) if op != "models" else {}
        if op != "models":
            payload["model"] = target.model
            if op == "chat" and (not isinstance(payload.get("messages"), list) or not payload["messages"]):
                raise CodecError.of(ErrorKind.BAD_REQUEST, "chat request needs a non-empty 'messages' list")
            payload.pop("stream", None)
        return ConnectorCall(connector=self, target=target, op=op, body=payload, stream=stream)

    def parse_response(self, target: Target, op: str, status: int, headers: Mapping[str, str],
                       body: bytes) -> dict[str, Any]:
        raise CodecError.of(ErrorKind.MALFORMED, f"{target.provider}: a connector with its own I/O answers "
                                                 "through complete(), not an HTTP body")

    def parse_result(self, target: Target, op: str, result: Any) -> dict[str, Any]:
        """What `complete` returned, in the OpenAI shape, or CodecError(MALFORMED) naming
        what is wrong with it."""
        if not isinstance(result, Mapping):
            raise CodecError.of(ErrorKind.MALFORMED, f"{target.provider}: complete() returned a "
                                                     f"{type(result).__name__}, not a dict")
        data = dict(result)
        if op == "chat":
            data = _completion(data, target)
        try:
            return _CHECKS[op](data) if op in _CHECKS else data
        except ShapeError as err:
            raise malformed(f"{target.provider}: complete() returned a {op} result out of shape: {err}") from None

    def stream_decoder(self, target: Target, op: str, *, created: int = 0) -> ChunkDecoder:
        self._check_op(op, stream=True)
        return ChunkDecoder(target, created)

    def _classify_payload(self, status: int | None, payload: Any) -> ErrorInfo:
        return ErrorInfo(kind=kind_for_status(status), message=error_message(payload))


class ChunkDecoder(StreamDecoder):
    """The items a connector's `stream` yields, as `chat.completion.chunk`s: a dict is a
    chunk (its missing id, model or created filled in), a str is a text delta. The end of
    the iterator is the end of the answer."""

    def __init__(self, target: Target, created: int) -> None:
        self._model = target.model
        self._created = created
        self._id = "chatcmpl-connector"
        self._finish: str | None = None
        self._started = False

    def feed(self, data: bytes) -> list[StreamItem]:
        return [StreamError(info=ErrorInfo(kind=ErrorKind.MALFORMED,
                                           message="this connector streams items, not bytes"))]

    def take(self, item: Any) -> list[StreamItem]:
        if isinstance(item, str):
            if not item:
                return []
            delta: dict[str, Any] = {"content": item}
            if not self._started:
                delta = {"role": "assistant", "content": item}
            self._started = True
            return [chunk(id=self._id, model=self._model, created=self._created, delta=delta)]
        if not isinstance(item, Mapping):
            return [StreamError(info=ErrorInfo(
                kind=ErrorKind.MALFORMED, message=f"stream() yielded a {type(item).__name__}; "
                                                  "yield text or chat.completion.chunk dicts"))]
        out = dict(item)
        choices = out.get("choices")
        if not isinstance(choices, list):
            return [StreamError(info=ErrorInfo(kind=ErrorKind.MALFORMED,
                                               message="a chunk stream() yielded has no 'choices' list"))]
        out.setdefault("object", "chat.completion.chunk")
        out.setdefault("model", self._model)
        out.setdefault("created", self._created)
        self._id = out.setdefault("id", self._id)
        for c in choices:
            if isinstance(c, Mapping) and c.get("finish_reason"):
                self._finish = str(c["finish_reason"])
        self._started = True
        return [out]

    def close(self) -> list[StreamItem]:
        out: list[StreamItem] = []
        if self._finish is None:
            out.append(chunk(id=self._id, model=self._model, created=self._created, delta={}, finish_reason="stop"))
        out.append(StreamDone())
        return out


def _completion(data: dict[str, Any], target: Target) -> dict[str, Any]:
    """The seed's short form filled in: id, object, created, model, each choice's index,
    role and finish reason, and the usage's total."""
    choices = data.get("choices")
    if isinstance(choices, Sequence) and not isinstance(choices, (str, bytes)):
        filled = []
        for i, c in enumerate(choices):
            if isinstance(c, Mapping):
                c = dict(c)
                c.setdefault("index", i)
                c.setdefault("finish_reason", "stop")
                message = c.get("message")
                if isinstance(message, Mapping):
                    c["message"] = {"role": "assistant", **message}
            filled.append(c)
        data["choices"] = filled
    data.setdefault("id", "chatcmpl-connector")
    data.setdefault("object", "chat.completion")
    data.setdefault("created", 0)
    data.setdefault("model", target.model)
    usage = data.get("usage")
    if isinstance(usage, Mapping) and "total_tokens" not in usage:
        usage = dict(usage)
        usage["total_tokens"] = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
        data["usage"] = usage
    return data
