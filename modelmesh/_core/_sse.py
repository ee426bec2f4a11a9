"""An incremental Server-Sent-Events parser that never does I/O.

Theory of operation: the shell hands us the response body in whatever pieces the
network produced (`feed(data)`); we hand back the events those bytes completed.
Lines are cut on the *byte* level: CR and LF are ASCII and can never occur inside a
UTF-8 multibyte sequence, so a character split across two reads simply waits in the
buffer with the rest of its line and is decoded once the line is whole. A CR at the very
end of a read may be the first half of a CRLF, so we remember it and swallow a LF that
opens the next read.

Field handling follows the WHATWG `text/event-stream` rules: `data:` lines accumulate
(joined with "\\n"), `event:` names the event, `id:` sets the last event id (which
persists across events, as the spec says), lines starting with `:` are comments, a
blank line dispatches, a leading BOM is dropped, and one space after the colon is
stripped. One deliberate leniency: `close()` dispatches a final event that lacks its
terminating blank line, because proxies sometimes cut it and the vendor's terminal
event (`[DONE]`, `message_stop`) must not be lost for want of a newline.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "SSELineTooLong", "MAX_LINE"]

MAX_LINE = 8 * 1024 * 1024  # one SSE line (one event's data) longer than this is not a stream we take


class SSELineTooLong(ValueError):
    """A line grew past MAX_LINE without ending: an endless or hostile stream."""

_BOM = "\ufeff"
_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEEvent:
    """One dispatched event. `event` is None when the stream gave no `event:` field."""

    event: str | None
    data: str
    id: str | None = None


class SSEParser:
    """Feed bytes in, get completed `SSEEvent`s out. One parser per response body."""

    __slots__ = ("_buffer", "_skip_lf", "_started", "_data", "_event", "_last_id", "_closed")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._skip_lf = False      # the previous read ended in CR: a leading LF belongs to it
        self._started = False      # BOM handling applies to the first line only
        self._data: list[str] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._closed = False

    def feed(self, data: bytes) -> list[SSEEvent]:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"SSEParser.feed() takes bytes, got {type(data).__name__}")
        if self._closed:
            raise ValueError("SSEParser.feed() called after close()")
        chunk = bytes(data)
        if self._skip_lf and chunk:
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._skip_lf = False
        self._buffer += chunk
        events: list[SSEEvent] = []
        if b"\n" not in chunk and b"\r" not in chunk:
            if len(self._buffer) > MAX_LINE:
                raise SSELineTooLong(f"a stream line longer than {MAX_LINE} bytes")
            return events  # no line ended: the buffer is not scanned again (a long line costs O(n), not O(n^2))
        for line in self._take_lines():
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """End of body: process a final unterminated line and dispatch what is pending."""
        if self._closed:
            return []
        self._closed = True
        events: list[SSEEvent] = []
        if self._buffer:
            event = self._process_line(self._decode(bytes(self._buffer)))
            self._buffer.clear()
            if event is not None:
                events.append(event)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        return events

    # -- internals -------------------------------------------------------------------

    def _take_lines(self) -> list[str]:
        buf = bytes(self._buffer)
        if b"\r" not in buf:  # the usual case, LF only: one split and one decode for every line
            end = buf.rfind(b"\n") + 1
            del self._buffer[:end]
            return self._decode(buf[:end - 1]).split("\n")
        lines: list[str] = []
        start = 0
        for match in _EOL.finditer(buf):
            lines.append(self._decode(buf[start:match.start()]))
            start = match.end()
            if match.group() == b"\r" and start == len(buf):
                self._skip_lf = True
        del self._buffer[:start]
        return lines

    def _decode(self, raw: bytes) -> str:
        # Invalid UTF-8 from a vendor must not kill the stream; U+FFFD marks the damage.
        text = raw.decode("utf-8", errors="replace")
        if not self._started:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        return text

    def _process_line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\x00" not in value:
            self._last_id = value
        # "retry" and unknown fields are ignored, as the spec requires.
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = None
            return None
        event = SSEEvent(event=self._event or None, data="\n".join(self._data), id=self._last_id)
        self._data = []
        self._event = None
        return event
