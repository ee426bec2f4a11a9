"""Stream assembly: which decoded chunks reach the caller, and when.

Streams fail over only while that is invisible. Chunks without content (the opening role
chunk, empty deltas) are held back until the first chunk with content; before that any
failure moves to the next model and the caller never sees the attempt. Once content was
delivered the text is kept (`partial_text`), so an interruption can carry it, and a
recovery can continue from it without the caller seeing a repeated or dropped character:

- `expect(text, strict=True)`: the next attempt restarts the answer, which must begin with
  exactly `text` (what the caller already has); that much is swallowed and only the rest is
  delivered. A different beginning sets `mismatch`, and the call stops honestly.
- `expect(text, strict=False)`: the next attempt continues a prefilled answer; if it begins
  with `text` (the whitespace a prefill may not end with), that much is dropped.

A resumed stream's opening role chunk is dropped: the caller already has one. A usage-only
chunk goes out only when the caller asked for usage.

One `StreamAssembly` serves one call across its attempts: `begin()` starts an attempt,
`take(chunk)` returns the chunks to deliver now, `flush()` the held ones at a clean end.
"""
from __future__ import annotations

from typing import Any

__all__ = ["StreamAssembly"]


class StreamAssembly:
    __slots__ = ("want_usage", "delivered", "parts", "usage", "mismatch", "_held", "_expect", "_strict", "_seen")

    def __init__(self, want_usage: bool) -> None:
        self.want_usage = want_usage
        self.delivered = False         # content reached the caller (in any attempt)
        self.parts: list[str] = []     # delivered text, for recovery and interruption
        self.usage: dict[str, int] = {}
        self.mismatch = False          # a restarted answer did not begin with what was delivered
        self._held: list[dict[str, Any]] = []
        self._expect: str | None = None
        self._strict = True
        self._seen = ""

    @property
    def partial_text(self) -> str:
        return "".join(self.parts)

    def begin(self) -> None:
        """A new attempt: what the previous one held back is dropped with it."""
        self._held = []
        self._expect = None
        self.mismatch = False

    def expect(self, text: str, *, strict: bool) -> None:
        self._expect, self._strict, self._seen = (text or None), strict, ""

    def take(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        usage = chunk.get("usage")
        if usage:
            self.usage = {k: v for k, v in usage.items() if isinstance(v, int)}
        choices = chunk.get("choices") or []
        if not choices:
            return [chunk] if usage and self.want_usage else []
        if self._expect is not None:
            chunk = self._match(chunk)
            if not chunk:
                return []
            choices = chunk["choices"]
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

    def _match(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The part of `chunk` past the expected beginning; {} while it is still being matched."""
        expect = self._expect
        assert expect is not None
        choice = chunk["choices"][0]
        delta = choice.get("delta") or {}
        self._seen += delta.get("content") or ""
        n = min(len(self._seen), len(expect))
        other = bool(delta.get("tool_calls")) or choice.get("finish_reason") is not None
        if self._seen[:n] != expect[:n] or (other and len(self._seen) < len(expect)):
            if self._strict:
                self.mismatch = True
                return {}
            rest = self._seen  # a continuation that does not repeat the whitespace: all of it is new
        elif len(self._seen) < len(expect):
            return {}
        else:
            rest = self._seen[len(expect):]
        self._expect = None
        if not rest and not other:
            return {}
        return {**chunk, "choices": [{**choice, "delta": {**delta, "content": rest}}, *chunk["choices"][1:]]}

    def flush(self) -> list[dict[str, Any]]:
        """A stream that never carried content still ends properly."""
        out, self._held = self._held, []
        return out
