"""StreamingCheckpointMixin: what a stream delivered, so a resumed stream can continue.

Theory of operation: a checkpoint per request id records each piece of text the caller
was given (`checkpoint_chunk`), with the count of chunks and tokens, the last SSE event id
and the time of the last piece. When the stream breaks the checkpoint says how far it got:
`offset` characters, the `text` itself. Two ways to continue from it:

* a provider that continues a conversation ending in an assistant message (prefill):
  `resume_messages(request_id, messages)` appends the partial answer for it to continue;
* a provider that starts over: `continue_stream(request_id, texts)` passes the new stream
  through but drops the first `offset` characters, which the caller already has.

A checkpoint keeps at most `max_buffer_chars` of text; past that it stops buffering and
says `resumable=False` (the offset still counts). At most `max_checkpoints` are kept: the
oldest finished one goes first, and when all are live the oldest live one.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._base import Clocked

__all__ = ["StreamingCheckpointMixin", "StreamCheckpoint"]


@dataclass(slots=True, kw_only=True)
class StreamCheckpoint:
    """Progress of one stream. Mutated only by the mixin, under its lock."""

    request_id: str
    model_id: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    chunks: int = 0
    tokens_received: int = 0
    offset: int = 0                 # characters delivered
    last_event_id: str | None = None
    is_complete: bool = False
    resumable: bool = True
    _pieces: list[str] = field(default_factory=list, repr=False)

    @property
    def content_buffer(self) -> str:
        return "".join(self._pieces)

    @property
    def duration(self) -> float:
        """Seconds from the start to the last piece."""
        return self.updated_at - self.started_at


class StreamingCheckpointMixin(Clocked):
    _checkpoints: OrderedDict[str, StreamCheckpoint]
    _checkpoint_lock: threading.Lock
    _checkpoint_max_chars: int = 1_000_000
    _checkpoint_max: int = 1000

    def __init__(self, *, max_buffer_chars: int = 1_000_000, max_checkpoints: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._checkpoints = OrderedDict()
        self._checkpoint_lock = threading.Lock()
        self.configure_checkpoints(max_buffer_chars=max_buffer_chars, max_checkpoints=max_checkpoints)

    def configure_checkpoints(self, max_buffer_chars: int | None = None, max_checkpoints: int | None = None) -> None:
        for name, value in (("max_buffer_chars", max_buffer_chars), ("max_checkpoints", max_checkpoints)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if max_buffer_chars is not None:
            self._checkpoint_max_chars = max_buffer_chars
        if max_checkpoints is not None:
            self._checkpoint_max = max_checkpoints

    def create_checkpoint(self, request_id: str, model_id: str = "") -> StreamCheckpoint:
        """Start tracking `request_id` (a fresh checkpoint replaces an old one of that id)."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be a non-empty str, got {request_id!r}")
        now = self._now()
        with self._checkpoint_lock:
            self._checkpoints.pop(request_id, None)
            while len(self._checkpoints) >= self._checkpoint_max:
                done = next((k for k, c in self._checkpoints.items() if c.is_complete), None)
                self._checkpoints.pop(done if done is not None else next(iter(self._checkpoints)))
            checkpoint = StreamCheckpoint(request_id=request_id, model_id=model_id, started_at=now, updated_at=now)
            self._checkpoints[request_id] = checkpoint
            return checkpoint

    def _checkpoint(self, request_id: str) -> StreamCheckpoint:
        try:
            return self._checkpoints[request_id]
        except KeyError:
            raise KeyError(f"no stream checkpoint for request {request_id!r}; create_checkpoint first") from None

    def checkpoint_chunk(self, request_id: str, text: str, *, tokens: int = 1, event_id: str | None = None) -> None:
        """Record one piece of text the caller was given."""
        if not isinstance(text, str):
            raise TypeError(f"checkpoint_chunk takes the delivered text as str, got {type(text).__name__}")
        now = self._now()
        with self._checkpoint_lock:
            cp = self._checkpoint(request_id)
            if cp.is_complete:
                raise ValueError(f"stream {request_id!r} is complete; it takes no more chunks")
            cp.chunks += 1
            cp.tokens_received += tokens
            cp.offset += len(text)
            cp.updated_at = now
            if event_id is not None:
                cp.last_event_id = event_id
            if cp.resumable and cp.offset <= self._checkpoint_max_chars:
                cp._pieces.append(text)
            elif cp.resumable:
                cp.resumable = False
                cp._pieces.clear()

    def complete_checkpoint(self, request_id: str) -> StreamCheckpoint:
        with self._checkpoint_lock:
            cp = self._checkpoint(request_id)
            cp.is_complete = True
            return cp

    def get_checkpoint(self, request_id: str) -> StreamCheckpoint | None:
        with self._checkpoint_lock:
            return self._checkpoints.get(request_id)

    def remove_checkpoint(self, request_id: str) -> None:
        with self._checkpoint_lock:
            self._checkpoints.pop(request_id, None)

    def active_checkpoints(self) -> list[StreamCheckpoint]:
        with self._checkpoint_lock:
            return [c for c in self._checkpoints.values() if not c.is_complete]

    def checkpoint_stats(self) -> dict[str, int]:
        with self._checkpoint_lock:
            values = list(self._checkpoints.values())
        return {"total": len(values), "active": sum(not c.is_complete for c in values),
                "complete": sum(c.is_complete for c in values),
                "tokens_received": sum(c.tokens_received for c in values)}

    def _checkpointed(self, request_id: str, texts: Iterable[str], *, model_id: str = "") -> Iterator[str]:
        """Pass `texts` through, recording each; completes the checkpoint when they end."""
        self.create_checkpoint(request_id, model_id)
        for text in texts:
            self.checkpoint_chunk(request_id, text)
            yield text
        self.complete_checkpoint(request_id)

    def resume_messages(self, request_id: str, messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """`messages` plus the partial answer as an assistant message, for a provider to continue."""
        with self._checkpoint_lock:
            cp = self._checkpoint(request_id)
            if not cp.resumable:
                raise ValueError(f"stream {request_id!r} delivered more than max_buffer_chars "
                                 f"({self._checkpoint_max_chars}); its text was not kept")
            partial = cp.content_buffer
        out = [dict(m) for m in messages]
        if partial:
            out.append({"role": "assistant", "content": partial})
        return out

    def continue_stream(self, request_id: str, texts: Iterable[str]) -> Iterator[str]:
        """A restarted stream, minus the characters the caller already has; recorded as it goes."""
        with self._checkpoint_lock:
            skip = self._checkpoint(request_id).offset
        for text in texts:
            if skip:
                cut = min(skip, len(text))
                text, skip = text[cut:], skip - cut
                if not text:
                    continue
            self.checkpoint_chunk(request_id, text)
            yield text
        self.complete_checkpoint(request_id)
