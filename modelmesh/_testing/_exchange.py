"""Carrying out one step on one HTTP exchange of the fake upstream.

Theory of operation: the server has read and recorded the request and resolved the step;
`Exchange.run` turns the step into bytes on the socket. Scripted faults (Drop, Refuse,
Error, HtmlError, MalformedJSON) go out exactly as scripted. Everything else is an answer
the fake makes itself, so it first passes the checks a real vendor makes (API key,
required headers and fields, known route) and the vendor's error wins if one fails. A
streamed answer is chunked (Transfer-Encoding: chunked) and every event is written with
its own sendall, so the client sees each one as soon as it is sent; a cut stream simply
shuts the socket down without the terminating zero-length chunk. Real-time waits use the
upstream's closing Event, so closing the server never waits for a sleeping step.
"""
from __future__ import annotations

import json
import socket
import struct
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from ._media import MEDIA_KINDS
from ._openai import balance_body, key_body, priced
from ._steps import (
    CutStream,
    Drop,
    Error,
    HtmlError,
    MalformedJSON,
    RecordedRequest,
    Refuse,
    Reply,
    SlowFirstByte,
    SlowStream,
    Step,
    StreamErrorEvent,
)
from ._wire import Completion, Route, count_prompt_words, json_bytes, split_words

if TYPE_CHECKING:
    from ._server import FakeUpstream

__all__ = ["Exchange"]

_PHRASES = {529: "Overloaded"}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _PHRASES.get(status, "")


def _merge(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win, whatever the case of the header names."""
    merged: dict[str, tuple[str, str]] = {}
    for layer in layers:
        for name, value in layer.items():
            merged[name.lower()] = (name, value)
    return dict(merged.values())


class Exchange:
    """One request, one response (or one deliberate failure to respond)."""

    def __init__(self, handler: BaseHTTPRequestHandler, upstream: FakeUpstream,
                 request: RecordedRequest, route: Route, salt: str) -> None:
        self.h = handler
        self.up = upstream
        self.dialect = upstream._dialect
        self.req = request
        self.route = route
        self.salt = salt
        self.model = route.model or (upstream.models[0] if upstream.models else "unknown")

    def run(self, step: Step) -> None:
        if isinstance(step, (Drop, Refuse)):
            return self._abort(reset=isinstance(step, Refuse))
        if isinstance(step, SlowFirstByte):
            return self.run(step.then) if self._sleep(step.seconds) else None
        if isinstance(step, Error):
            return self._send_error(step)
        if isinstance(step, HtmlError):
            page = f"<html><body><h1>{step.status} {_phrase(step.status)}</h1></body></html>"
            return self._send(step.status, "text/html", page.encode(), {})
        if isinstance(step, MalformedJSON):
            return self._malformed(step)
        if isinstance(step, Reply) and step.delay and not self._sleep(step.delay):
            return None
        problem = self._problem()
        if problem is not None:
            return self._send_error(problem)
        if self.route.kind == "chat":
            return self._chat(step)
        if self.route.kind in MEDIA_KINDS:
            return self._media(step)
        if isinstance(step, StreamErrorEvent):
            return self._send_error(self._as_error(step))
        return self._send(self._status(step), "application/json", json_bytes(self._other_body()),
                          self._headers(step), step)

    # -- deciding -------------------------------------------------------------------------

    def _problem(self) -> Error | None:
        """What the real vendor would refuse before answering."""
        up, route = self.up, self.route
        if up._api_key is not None:
            refused = self.dialect.check_key(self.req, route, up._api_key)
            if refused is not None:
                return refused
        if up.strict:
            invalid = self.dialect.validate(self.req, route)
            if invalid is not None:
                return invalid
        if route.kind == "unknown":
            return Error(404, code="", message=f"Invalid URL ({self.req.method} {self.req.path})")
        if route.kind == "model" and route.model not in up.models:
            return Error(404, code="model_not_found")
        if (route.kind == "key" and up.quota is None) or (route.kind == "balance" and up.balance is None):
            return Error(404, code="", message=f"Invalid URL ({self.req.method} {self.req.path})")
        if route.kind == "chat" and (route.model or "").startswith("ft:") and not up._serves_fine_tuned(route.model):
            return Error(404, code="model_not_found")  # a fine-tuned model exists once its job has succeeded
        return None

    def _other_body(self) -> dict:
        kind, up = self.route.kind, self.up
        created = int(up._clock())
        if kind == "models":
            listing = self.dialect.models_body(up.models, created, up.name)
            return priced(listing, up.prices) if up.prices else listing
        if kind == "key":
            assert up.quota is not None
            return key_body(up.quota)
        if kind == "balance":
            assert up.balance is not None
            return balance_body(up.balance)
        if kind == "model":
            return self.dialect.model_body(self.route.model or "", created, up.name)
        if kind == "count_tokens":
            return self.dialect.count_tokens_body(self.req)
        return self.dialect.embeddings_body(self.req, self.route)

    def _as_error(self, step: StreamErrorEvent) -> Error:
        status = step.status or self.dialect.status_for(step.code)
        return Error(status, code=step.code, message=step.message)

    def _status(self, step: Step) -> int:
        return step.status if isinstance(step, Reply) else 200

    def _headers(self, step: Step) -> dict[str, str]:
        extra = step.headers if isinstance(step, Reply) else {}
        return _merge(self.dialect.request_id_headers(self.salt), extra)

    def _completion(self, step: Step) -> Completion:
        body = self.req.json if isinstance(self.req.json, dict) else {}
        text = getattr(step, "text", None)
        text = self.up.text if text is None else text
        if self.up.prefill:
            text = _continuation(body, text)
        pieces = split_words(text)
        reply = step if isinstance(step, Reply) else Reply()
        finish, tools = reply.finish_reason, tuple(reply.tool_calls or ())
        limit = self.dialect.max_tokens(body)
        if limit is not None and 0 <= limit < len(pieces) and finish == "stop" and not tools:
            pieces, finish = pieces[:limit], "length"
            text = "".join(pieces)
        if tools and finish == "stop":
            finish = "tool_calls"
        out = len(pieces) + sum(len(json.dumps(dict(t.arguments)).split()) + 1 for t in tools)
        usage = reply.usage or (count_prompt_words(body), out)
        return Completion(id=self.dialect.new_id(self.salt), model=self.model, created=int(self.up._clock()),
                          text=text, pieces=pieces, input_tokens=usage[0], output_tokens=usage[1],
                          finish_reason=finish, tool_calls=tools, salt=self.salt)

    # -- answering ------------------------------------------------------------------------

    def _chat(self, step: Step) -> None:
        c = self._completion(step)
        if not self.route.stream:
            if isinstance(step, StreamErrorEvent):
                return self._send_error(self._as_error(step))
            body = json_bytes(self.dialect.completion_body(c))
            return self._send(self._status(step), "application/json", body, self._headers(step), step)
        plan = self.dialect.stream_plan(c, self.req, self.route)
        stop = step.after_chunks if isinstance(step, (CutStream, StreamErrorEvent)) else None
        delay = step.chunk_delay if isinstance(step, SlowStream) else 0.0
        self._start_stream(self._status(step), self._headers(step))
        for event in plan.head:
            self._chunk(event)
        sent = 0
        for piece in plan.pieces:
            if sent == stop:
                break
            if sent and delay and not self._sleep(delay):
                return None
            self._chunk(piece)
            sent += 1
        if isinstance(step, CutStream):
            return self._abort(reset=False)
        if isinstance(step, StreamErrorEvent):
            self._chunk(self.dialect.stream_error(self._as_error(step), self.model, self.route, sent))
            return self._chunk(b"", last=True)
        if delay and plan.pieces and not self._sleep(delay):
            return None
        for event in plan.tail:
            self._chunk(event)
        return self._chunk(b"", last=True)

    def _media(self, step: Step) -> None:
        """Audio and images: a JSON or text body, or (speech) audio sent as a chunked stream,
        which CutStream cuts after `after_chunks` pieces and SlowStream paces."""
        if isinstance(step, StreamErrorEvent):
            return self._send_error(self._as_error(step))
        text = getattr(step, "text", None)
        answer = self.dialect.media_answer(self.req, self.route, self.up.text if text is None else text,
                                           self.salt, self.up.root_url)
        if isinstance(answer, Error):
            return self._send_error(answer)
        status, headers = self._status(step), self._headers(step)
        if not answer.pieces:
            return self._send(status, answer.content_type, answer.body, headers, step)
        self._head(status, _merge({"Content-Type": answer.content_type}, headers, {"Transfer-Encoding": "chunked"}))
        stop = step.after_chunks if isinstance(step, CutStream) else None
        delay = step.chunk_delay if isinstance(step, SlowStream) else 0.0
        for sent, piece in enumerate(answer.pieces):
            if sent == stop:
                return self._abort(reset=False)
            if sent and delay and not self._sleep(delay):
                return None
            self._chunk(piece)
        if isinstance(step, CutStream):
            return self._abort(reset=False)
        return self._chunk(b"", last=True)

    def _malformed(self, step: MalformedJSON) -> None:
        if self.route.kind == "chat" and self.route.stream:
            self._start_stream(step.status, self._headers(step))
            self._chunk(self.dialect.malformed_event(self.route))
            return self._chunk(b"", last=True)
        body = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"message": '
        return self._send(step.status, "application/json", body, self._headers(step))

    def _send_error(self, err: Error) -> None:
        body = json_bytes(self.dialect.error_body(err, self.model, self.salt))
        headers = dict(self.dialect.request_id_headers(self.salt))
        if err.retry_after is not None:
            headers["retry-after"] = f"{err.retry_after:g}"
        self._send(err.status, "application/json", body, _merge(headers, err.headers))

    # -- the socket -----------------------------------------------------------------------

    def _head(self, status: int, headers: Mapping[str, str]) -> None:
        self.h.send_response(status, _phrase(status))
        for name, value in headers.items():
            self.h.send_header(name, value)
        self.h.end_headers()

    def _send(self, status: int, ctype: str, body: bytes, headers: Mapping[str, str],
              step: Step | None = None) -> None:
        self._head(status, _merge({"Content-Type": ctype}, headers, {"Content-Length": str(len(body))}))
        if isinstance(step, CutStream):
            self.h.wfile.write(body[: len(body) // 2])
            return self._abort(reset=False)
        if isinstance(step, SlowStream) and step.chunk_delay:
            third = max(1, len(body) // 3)
            for start in range(0, len(body), third):
                if start and not self._sleep(step.chunk_delay):
                    return None
                self.h.wfile.write(body[start:start + third])
            return None
        self.h.wfile.write(body)
        return None

    def _start_stream(self, status: int, headers: Mapping[str, str]) -> None:
        json_array = self.route.kind == "chat" and not self.route.sse
        ctype = "application/json; charset=UTF-8" if json_array else self.dialect.stream_content_type
        self._head(status, _merge({"Content-Type": ctype, "Cache-Control": "no-cache"}, headers,
                                  {"Transfer-Encoding": "chunked"}))

    def _chunk(self, data: bytes, *, last: bool = False) -> None:
        if data:
            self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if last:
            self.h.wfile.write(b"0\r\n\r\n")

    def _sleep(self, seconds: float) -> bool:
        """Wait in real time; False (and the connection dropped) if the server is closing."""
        if not self.up._closing.wait(seconds):
            return True
        self._abort(reset=False)
        return False

    def _abort(self, *, reset: bool) -> None:
        """Close without (finishing) a response: FIN, or RST when `reset`."""
        self.h.close_connection = True
        sock = self.h.connection
        try:
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # The read buffer holds a reference to the socket; the fd (and the RST) goes
        # only when both are closed.
        self.h.rfile.close()
        sock.close()



def _continuation(body: Mapping[str, Any], text: str) -> str:
    """What a model that continues a trailing assistant message adds to it: the rest of
    `text` after that message (a model whose answer does not start so adds all of it)."""
    turns = body.get("messages") or body.get("contents") or []
    last = turns[-1] if isinstance(turns, list) and turns else None
    if not isinstance(last, Mapping) or last.get("role") not in ("assistant", "model"):
        return text
    content = last.get("content", last.get("parts"))
    if isinstance(content, list):
        content = "".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    prefix = content if isinstance(content, str) else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text
