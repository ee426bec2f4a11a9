"""Stream assembly: which decoded chunks reach the caller, and when.

Streams fail over only while that is invisible. Chunks without content (the opening role
chunk, empty deltas) are held back until the first chunk with content; before that any
failure moves to the next model and the caller never sees the attempt. Once content was
delivered the text is kept (`partial_text`), so an interruption can carry it and a
resumed stream can continue from it without repeating the resumed model's opening role
chunk. A usage-only chunk goes out only when the caller asked for usage.

One `StreamAssembly` serves one call across its attempts: `begin()` starts an attempt,
`take(chunk)` returns the chunks to deliver now, `flush()` the held ones at a clean end.
"""
from __future__ import annotations

from typing import Any

__all__ = ["StreamAssembly"]


class StreamAssembly:
    __slots__ = ("want_usage", "delivered", "parts", "usage", "_held")

    def __init__(self, want_usage: bool) -> None:
        self.want_usage = want_usage
        self.delivered = False         # content reached the caller (in any attempt)
        self.parts: list[str] = []     # delivered text, for resume and interruption
        self.usage: dict[str, int] = {}
        self._held: list[dict[str, Any]] = []

    @property
    def partial_text(self) -> str:
        return "".join(self.parts)

    def begin(self) -> None:
        """A new attempt: what the previous one held back is dropped with it."""
        self._held = []

    def take(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        usage = chunk.get("usage")
        if usage:
            self.usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        choices = chunk.get("choices") or []
        if not choices:
            return [chunk] if usage and self.want_usage else []
        delta = choices[0].get("delta") or {}
        text = delta.get("content")
        has_content = bool(text) or bool(delta.get("tool_calls")) or choices[0].get("finish_reason") is not None
        if self.parts and delta.get("role") and not text:
            return []  # a resumed stream's opening role chunk: the caller already has one
        if not self.delivered and not has_content:
            self._held.append(chunk)
            return []
        out, self._held = [*self._held, chunk], []
        self.delivered = True
        if text:
            self.parts.append(text)
        return out

    def flush(self) -> list[dict[str, Any]]:
        """A stream that never carried content still ends properly."""
        out, self._held = self._held, []
        return out
