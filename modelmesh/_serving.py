"""Serving OpenAI API requests through a mesh client: the work every OpenAI-shaped front door shares.

Theory of operation: a front door (the httpx transports under the openai SDK, sync and async;
the WSGI proxy) hands `serve` (or `aserve`, for an AsyncMeshClient) the request's method, path
and body bytes. `serving` is that work, written once as a generator: it routes the path
(`_wire_openai.route`), parses the JSON body, and yields what it needs from the mesh's shell,
one step at a time:

    ListModels()                             -> the models page    (mesh.models.list, as a dict)
    Start(op, body, model, stream, options)  -> the Call           (transport.start)
    Execute(call)                            -> its Succeeded      (transport.execute)
    OpenStream(call)                         -> (handle, first)    (transport.stream, then its
                                                first Deliver, or None for a stream with none)
    Infra(resource, method, kwargs)          -> its result         (mesh.files.create(...),
                                                mesh.fine_tuning.jobs.list(...), ...)

A ModelMeshError a step raises is thrown back into the generator, which answers it. `serve`
performs the steps blocking, `aserve` awaits them: the request-to-call mapping and the answer
are built here only. What comes back is an `Answer`: a status, headers and either the body
bytes or an SSE body (`SSEBody`, or `AsyncSSEBody` to read with `async for`). The front door
only writes it out in its own terms (an `httpx.Response`, a WSGI response) and decides what a
mesh error in which no upstream answered means to its caller (`Answer.error`, see
`_wire_openai.no_answer`).

Audio and images take the same path. Speech is always opened as a mesh stream and its
audio answered as it arrives (`BytesBody`), so failover before the first byte is invisible
and a long file is never held whole; transcriptions, translations and image edits arrive as
multipart/form-data (`_form.parse_form`, loaded only for them), the others as JSON.

Files and fine-tuning (`/files...`, `/fine_tuning/jobs...`) are no pool requests: each is
one call of the mesh's `files` or `fine_tuning.jobs` resource (`_files.py`), which picks
the provider: from the id, else from the `x-modelmesh-provider` header (or a `provider`
field in the JSON body or form), else the one provider that offers it. A key limited to
some pools may not use them.

A stream is pulled until its first chunk (or its failure) before `serve` returns, so a
routing failure is the answer's status; the rest is pulled lazily as the front door reads
the body, and the events of one network read come out as one piece (`Call.buffered` says
how many are ready). Closing the body closes the mesh stream and its upstream connection:
a caller that goes away mid-stream costs nothing further.
"""
from __future__ import annotations

import abc
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _wire_openai as wire
from ._core import _errors as E
from ._core._protocol import RoutingOptions

__all__ = ["Answer", "SSEBody", "AsyncSSEBody", "BytesBody", "AsyncBytesBody", "serve", "aserve", "serving",
           "models_page", "ListModels", "Start", "Execute", "OpenStream", "Infra", "expected_content_type"]


@dataclass(slots=True, kw_only=True)
class Answer:
    """What to write back. `stream` is set for a stream (then `body` is empty); `error` is the
    mesh error answered, if any; `served` the mesh's Succeeded for an answer it routed
    (for a stream, `stream.result` once it has ended)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: SSEBody | AsyncSSEBody | BytesBody | AsyncBytesBody | None = None
    error: BaseException | None = None
    served: Any = None
    op: str | None = None  # "chat", "embeddings", "speech", ..., "models", "model"; None for an unknown route
    model: str | None = None  # what the request asked for (a pool, capability or model id)


def error_answer(err: wire.WireError, **kw: Any) -> Answer:
    return Answer(status=err.status, headers=list(err.headers), body=err.body, **kw)


def json_answer(status: int, value: Any, **kw: Any) -> Answer:
    return Answer(status=status, headers=[("content-type", wire.JSON)], body=wire.encode_json(value), **kw)


def models_page(listing: Any) -> dict[str, Any]:
    """`mesh.models.list()`'s page as a dict."""
    return listing.model_dump() if hasattr(listing, "model_dump") else dict(listing)


# -- the steps a front door performs with its mesh's shell -----------------------------------------
@dataclass(frozen=True, slots=True)
class ListModels:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    op: str
    body: dict[str, Any]
    model: str
    stream: bool
    options: RoutingOptions


@dataclass(frozen=True, slots=True)
class Execute:
    call: Any


@dataclass(frozen=True, slots=True)
class OpenStream:
    call: Any


@dataclass(frozen=True, slots=True)
class Infra:
    """Call `mesh.<resource>.<method>(**kwargs)` (`resource` a dotted path: "fine_tuning.jobs")."""

    resource: str
    method: str
    kwargs: dict[str, Any]

    def bound(self, mesh: Any) -> Any:
        target = mesh
        for name in self.resource.split("."):
            target = getattr(target, name)
        return getattr(target, self.method)


Step = ListModels | Start | Execute | OpenStream | Infra
Serving = Generator[Step, Any, Answer]


def serve(mesh: Any, method: str, path: str, body: bytes, *, base_path: str = "/v1",
          timeout: float | None = None, aliases: Mapping[str, str] | None = None,
          permit: Callable[[str], wire.WireError | None] | None = None, content_type: str | None = None,
          query: str = "", provider: str | None = None) -> Answer:
    """Answer `method path` (a full path: `base_path` is taken off it) with `body` (JSON, or
    the multipart/form-data of an upload, as `content_type` says) through `mesh` (a
    MeshClient). `timeout` caps the whole mesh request, failovers included;
    `aliases` maps a model name a caller sends to the pool, capability or model it means;
    `permit` is asked about the pool the request was routed to before anything is sent, and
    may answer with an error instead (the proxy's per-key allowed pools). `query` is the
    URL's query string and `provider` the `x-modelmesh-provider` header (files, fine-tuning)."""
    steps = serving(mesh, method, path, body, base_path=base_path, timeout=timeout, aliases=aliases, permit=permit,
                    content_type=content_type, query=query, provider=provider)
    transport = mesh.transport
    result: Any = None
    error: E.ModelMeshError | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as end:
            answer: Answer = end.value
            return answer
        result, error = None, None
        try:
            if isinstance(step, ListModels):
                result = models_page(mesh.models.list())
            elif isinstance(step, Start):
                result = transport.start(step.op, step.body, model=step.model, stream=step.stream,
                                         options=step.options)
            elif isinstance(step, Execute):
                result = transport.execute(step.call)
            elif isinstance(step, Infra):
                result = step.bound(mesh)(**step.kwargs)
            else:
                handle = transport.stream(step.call)
                try:
                    result = handle, next(handle)
                except StopIteration:
                    result = handle, None
        except E.ModelMeshError as exc:
            error = exc


async def aserve(mesh: Any, method: str, path: str, body: bytes, *, base_path: str = "/v1",
                 timeout: float | None = None, aliases: Mapping[str, str] | None = None,
                 permit: Callable[[str], wire.WireError | None] | None = None, content_type: str | None = None,
                 query: str = "", provider: str | None = None) -> Answer:
    """`serve` for an AsyncMeshClient: the same steps, awaited; a stream's body is an
    AsyncSSEBody (an AsyncBytesBody for speech)."""
    steps = serving(mesh, method, path, body, base_path=base_path, timeout=timeout, aliases=aliases, permit=permit,
                    content_type=content_type, query=query, provider=provider)
    transport = mesh.transport
    result: Any = None
    error: E.ModelMeshError | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as end:
            answer: Answer = end.value
            return answer
        result, error = None, None
        try:
            if isinstance(step, ListModels):
                result = models_page(await mesh.models.list())
            elif isinstance(step, Start):
                result = await transport.start(step.op, step.body, model=step.model, stream=step.stream,
                                               options=step.options)
            elif isinstance(step, Execute):
                result = await transport.execute(step.call)
            elif isinstance(step, Infra):
                result = await step.bound(mesh)(**step.kwargs)
            else:
                handle = transport.stream(step.call)
                try:
                    result = handle, await handle.__anext__()
                except StopAsyncIteration:
                    result = handle, None
        except E.ModelMeshError as exc:
            error = exc


def serving(mesh: Any, method: str, path: str, body: bytes, *, base_path: str = "/v1",
            timeout: float | None = None, aliases: Mapping[str, str] | None = None,
            permit: Callable[[str], wire.WireError | None] | None = None, content_type: str | None = None,
            query: str = "", provider: str | None = None) -> Serving:
    """The work of `serve`, as the steps it needs performed (see the module's docstring)."""
    relative = path[len(base_path):] if path.startswith(base_path + "/") else None
    found = wire.route(method, relative) if relative is not None else None
    if found is None:
        return error_answer(wire.unknown_route(method, path))
    if found.op in wire.INFRA_OPS:
        return (yield from _infra(found, body, content_type, query, provider, permit))
    if found.op == "models":
        return json_answer(200, (yield ListModels()), op=found.op)
    if found.op == "model":
        model = wire.find_model((yield ListModels()), found.model_id or "")
        if model is None:
            return error_answer(wire.model_not_found(found.model_id or ""), op=found.op, model=found.model_id)
        return json_answer(200, model, op=found.op, model=found.model_id)
    parsed = parse_form(found.op, body, content_type) if found.op in wire.MULTIPART_OPS else parse_body(body)
    if isinstance(parsed, wire.WireError):
        return error_answer(parsed, op=found.op)
    name = parsed["model"]
    if aliases and name in aliases:
        parsed = dict(parsed, model=aliases[name])
    return (yield from _send(found.op, parsed, name, timeout, permit))


def expected_content_type(op: str) -> str | None:
    """The content type a request for `op` is sent in (None: it has no body)."""
    if op == "jobs_cancel":
        return None
    return "multipart/form-data" if op in wire.MULTIPART_OPS else wire.JSON


# -- files and fine-tuning ---------------------------------------------------------------------------
_INFRA_CALLS = {"files_create": ("files", "create"), "files_list": ("files", "list"),
                "files_retrieve": ("files", "retrieve"), "files_delete": ("files", "delete"),
                "files_content": ("files", "content"), "jobs_create": ("fine_tuning.jobs", "create"),
                "jobs_list": ("fine_tuning.jobs", "list"), "jobs_retrieve": ("fine_tuning.jobs", "retrieve"),
                "jobs_cancel": ("fine_tuning.jobs", "cancel")}
_JOB_CREATE = ("model", "training_file", "validation_file", "hyperparameters", "suffix", "seed", "method",
               "metadata", "integrations")


def _infra(found: wire.Route, body: bytes, content_type: str | None, query: str, provider: str | None,
           permit: Callable[[str], wire.WireError | None] | None) -> Serving:
    """A files or fine-tuning request: one call of the mesh's resource for it."""
    op = found.op
    if permit is not None:
        return error_answer(wire.forbidden("This key may use some pools only; files and fine-tuning belong to no "
                                           "pool, so it may not use them"), op=op)
    args = _infra_args(op, found.ident, body, content_type, query)
    if isinstance(args, wire.WireError):
        return error_answer(args, op=op)
    named = args.pop("provider", None)
    if named is not None and provider is not None and named != provider:
        return error_answer(wire.error(400, f"The {wire.PROVIDER_HEADER} header says {provider!r} and the body "
                                            f"{named!r}", "invalid_value", "provider"), op=op)
    resource, method = _INFRA_CALLS[op]
    try:
        result = yield Infra(resource, method, dict(args, provider=named or provider))
    except E.ModelMeshError as exc:
        return _failure(exc, op=op)
    if op == "files_content":
        return Answer(status=200, headers=[("content-type", "application/octet-stream")], body=result.content, op=op)
    return json_answer(200, result.model_dump(), op=op)


def _infra_args(op: str, ident: str | None, body: bytes, content_type: str | None,
                query: str) -> dict[str, Any] | wire.WireError:
    """The call's keyword arguments from the path's id, the query string and the body."""
    from urllib.parse import parse_qsl

    if ident is not None:
        return {"fine_tuning_job_id" if op.startswith("jobs") else "file_id": ident}
    asked = dict(parse_qsl(query, keep_blank_values=False))
    if op in ("files_list", "jobs_list"):  # the SDK's auto-pagination asks for the next page with `after`
        limit = asked.get("limit")
        if limit is not None and not limit.isdigit():
            return wire.error(400, f"'limit' must be a whole number, got {limit[:20]!r}", "invalid_value", "limit")
        page = {"after": asked.get("after"), "limit": int(limit) if limit is not None else None}
        return page | {"purpose": asked.get("purpose"), "order": asked.get("order")} if op == "files_list" else page
    if op == "files_create":
        form = _form_fields(op, body, content_type)
        if isinstance(form, wire.WireError):
            return form
        for name in ("file", "purpose"):
            if not form.get(name):
                return wire.invalid_body(f"Missing required parameter: '{name}'.", name)
        return {k: form[k] for k in ("file", "purpose", "provider") if k in form}
    parsed = _json_object(body)  # jobs_create
    if isinstance(parsed, wire.WireError):
        return parsed
    unknown = sorted(set(parsed) - {*_JOB_CREATE, "provider"})
    if unknown:
        return wire.error(400, f"Unrecognized request argument supplied: {', '.join(unknown)}", "unknown_parameter",
                          unknown[0])
    return parsed


def parse_body(body: bytes) -> dict[str, Any] | wire.WireError:
    """The request's JSON object with a non-empty `model`, or the 400 that says what is wrong."""
    parsed = _json_object(body)
    return parsed if isinstance(parsed, wire.WireError) else _with_model(parsed)


def _json_object(body: bytes) -> dict[str, Any] | wire.WireError:
    """The request's JSON object, or the 400 that says it is not one."""
    try:
        parsed = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return wire.invalid_body("We could not parse the JSON body of your request.")
    if not isinstance(parsed, dict):
        return wire.invalid_body("The request body must be a JSON object.")
    return parsed


def parse_form(op: str, body: bytes, content_type: str | None) -> dict[str, Any] | wire.WireError:
    """The multipart/form-data request of an upload as a request dict (its files `Upload`s),
    or the error that says what is wrong."""
    parsed = _form_fields(op, body, content_type)
    return parsed if isinstance(parsed, wire.WireError) else _with_model(parsed)


def _form_fields(op: str, body: bytes, content_type: str | None) -> dict[str, Any] | wire.WireError:
    """A multipart/form-data body's fields (files as `Upload`s), or the error that says why not."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    if kind != "multipart/form-data":
        return wire.unsupported_media_type(content_type or "", "multipart/form-data")
    from . import _form  # only uploads load the email package

    try:
        return _form.parse_form(op, body, content_type or "")
    except _form.FormError as exc:
        return wire.error(400, str(exc), None, exc.param)


def _with_model(parsed: dict[str, Any]) -> dict[str, Any] | wire.WireError:
    model = parsed.get("model")
    if not isinstance(model, str) or not model:
        return wire.invalid_body("you must provide a model parameter (a pool, a capability or a model id)", "model")
    return parsed


def _send(op: str, body: dict[str, Any], asked: str, timeout: float | None,
          permit: Callable[[str], wire.WireError | None] | None = None) -> Serving:
    refused = _media_args(op, body)
    if refused is not None:
        return error_answer(refused, op=op, model=asked)
    # speech is always a mesh stream: its audio goes out as it arrives, whatever the caller reads it with
    stream = op == "speech" or (op == "chat" and body.get("stream") is True)
    encoding = None
    if op == "embeddings":
        body, encoding = wire.embeddings_request(body)
    sse_transcript = op in ("transcriptions", "translations") and body.pop("stream", None) is True
    if op == "speech":
        body = dict(body, stream=True)  # as MeshClient's with_streaming_response sends it
    options = RoutingOptions(timeout=timeout)
    try:
        call = yield Start(op, body, body["model"], stream, options)
        denied = permit(call.pool.name) if permit is not None else None
        if denied is not None:  # nothing sent yet: a started call holds nothing
            return error_answer(denied, op=op, model=asked)
        if stream:
            handle, first = yield OpenStream(call)
            return _stream(call, handle, first, asked, op, body)
        result = yield Execute(call)
    except E.ModelMeshError as exc:
        return _failure(exc, op=op, model=asked)
    out: Any = result.response or {}
    content_type = wire.JSON
    if op == "embeddings":
        out = wire.embeddings_body(out, encoding)
    elif op in ("transcriptions", "translations"):
        out = wire.transcript_body(out, str(body.get("response_format") or "json"),
                                   "transcribe" if op == "transcriptions" else "translate")
        if sse_transcript:
            out, content_type = _transcript_events(out), wire.EVENT_STREAM
        elif isinstance(out, str):
            out, content_type = out.encode(), "text/plain; charset=utf-8"
    headers = wire.served_headers(provider=result.provider, model=result.model, attempts=len(result.attempts),
                                  request_id=result.request_id, pool=result.pool, content_type=content_type)
    data = out if isinstance(out, bytes) else wire.encode_json(out)
    return Answer(status=200, headers=headers, body=data, served=result, op=op, model=asked)


def _media_args(op: str, body: dict[str, Any]) -> wire.WireError | None:
    """What the mesh cannot serve as asked, refused before anything is sent."""
    if op in ("transcriptions", "translations"):
        fmt = body.get("response_format")
        if fmt is not None and fmt not in wire.TRANSCRIPTION_FORMATS:
            return wire.error(400, f"'response_format' must be one of {', '.join(wire.TRANSCRIPTION_FORMATS)}, "
                                   f"got {str(fmt)[:40]!r}", "invalid_value", "response_format")
    if op in ("images", "image_edits") and body.get("stream") is True:
        return wire.error(400, "Streamed image generation (partial images) is not served by the mesh: send the "
                               "request without 'stream', and the whole image comes back at once", "unsupported_value",
                          "stream")
    return None


def _transcript_events(out: dict[str, Any] | str) -> bytes:
    """A transcript asked for with `stream=true`, in OpenAI's transcript events: the text in one
    `transcript.text.delta` (the mesh has the whole answer when it is sent), then
    `transcript.text.done` with the text and its usage."""
    text = out if isinstance(out, str) else str(out.get("text", ""))
    done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
    if isinstance(out, dict) and out.get("usage") is not None:
        done["usage"] = out["usage"]
    return wire.sse_event({"type": "transcript.text.delta", "delta": text}) + wire.sse_event(done)


def _failure(exc: E.ModelMeshError, **kw: Any) -> Answer:
    err = wire.wire_error(exc)
    return Answer(status=err.status, headers=err.headers, body=err.body, error=exc, **kw)


def _stream(call: Any, handle: Any, first: Any, asked: str, op: str = "chat",
            body: Mapping[str, Any] | None = None) -> Answer:
    if first is None:  # a stream that ended without a chunk: nothing to say but [DONE]
        result = handle.result
        provider, model = (result.provider, result.model) if result else ("", "")
    else:
        provider, model = first.provider, first.model
    is_async = hasattr(handle, "__anext__")
    content_type = wire.EVENT_STREAM
    stream: SSEBody | AsyncSSEBody | BytesBody | AsyncBytesBody
    if op == "speech":
        content_type = _audio_type(call, (body or {}).get("response_format"))
        stream = AsyncBytesBody(handle, first) if is_async else BytesBody(handle, first)
    else:
        stream = AsyncSSEBody(handle, first) if is_async else SSEBody(handle, first)
    # the serving attempt is not in call.attempts until the stream ends: the failed ones are
    headers = wire.served_headers(provider=provider, model=model, attempts=len(call.attempts) + (first is not None),
                                  request_id=call.request_id, pool=call.pool.name, content_type=content_type)
    return Answer(status=200, headers=headers, stream=stream, op=op, model=asked)


# what OpenAI answers each speech response_format with, for an upstream that does not say
_AUDIO_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
                "wav": "audio/wav", "pcm": "audio/pcm"}


def _audio_type(call: Any, fmt: Any) -> str:
    answered = call.answered_by
    said = next((v for k, v in answered[2].items() if k.lower() == "content-type"), "") if answered else ""
    if said and not said.startswith("application/json"):
        return str(said)
    return _AUDIO_TYPES.get(str(fmt or "mp3"), "application/octet-stream")


# -- stream bodies -----------------------------------------------------------------------------------
class _Pieces:
    """A stream's SSE text: each chunk a `data: ...` event; the events of one network read
    come out as one piece (`call.buffered` counts the chunks still ready to deliver); the end
    is `[DONE]`, or OpenAI's mid-stream error event and nothing after it."""

    __slots__ = ("call", "parts")

    def __init__(self, call: Any) -> None:
        self.call = call
        self.parts: list[bytes] = []

    def chunk(self, chunk: Mapping[str, Any]) -> bytes | None:
        self.parts.append(wire.sse_event(chunk))
        return None if self.call.buffered else self._flush()

    def end(self) -> bytes:
        self.parts.append(wire.DONE)
        return self._flush()

    def fail(self, exc: BaseException) -> bytes:
        self.parts.append(wire.sse_event(wire.error_body(exc)))
        return self._flush()

    def _flush(self) -> bytes:
        piece = b"".join(self.parts)
        self.parts.clear()
        return piece


@dataclass(eq=False)
class _Body(abc.ABC):
    """A mesh stream's body for a WSGI server, produced as it is read (`_run`, each kind its
    own). `close()` ends the mesh stream; `result` is its Succeeded once it has ended."""

    handle: Any
    first: Any
    error: BaseException | None = None
    _pieces: Generator[bytes, None, None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pieces = self._run()

    @property
    def result(self) -> Any:
        return self.handle.result

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def __next__(self) -> bytes:
        return next(self._pieces)

    def close(self) -> None:
        self._pieces.close()
        self.handle.close()

    @abc.abstractmethod
    def _run(self) -> Generator[bytes, None, None]:
        """The body's pieces: each kind writes its own."""


@dataclass(eq=False)
class _AsyncBody(abc.ABC):
    """_Body for an AsyncMeshClient's stream: read with `async for`; `aclose()` ends it."""

    handle: Any
    first: Any
    error: BaseException | None = None
    _pieces: AsyncGenerator[bytes, None] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pieces = self._run()

    @property
    def result(self) -> Any:
        return self.handle.result

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces

    async def __anext__(self) -> bytes:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        try:
            await self._pieces.aclose()
        finally:
            await self.handle.aclose()

    @abc.abstractmethod
    def _run(self) -> AsyncGenerator[bytes, None]:
        """The body's pieces: each kind writes its own."""


@dataclass(eq=False)
class SSEBody(_Body):
    """A stream's SSE body, produced as it is read: pieces of `data: ...\\n\\n` events, the
    events of one network read in one piece, then `[DONE]` (or OpenAI's mid-stream error
    event, kept in `error`). `close()` ends the mesh stream; `result` is its Succeeded
    once it has ended."""

    def _run(self) -> Generator[bytes, None, None]:
        pieces = _Pieces(self.handle.call)
        try:
            if self.first is not None:
                piece = pieces.chunk(self.first.chunk)
                if piece is not None:
                    yield piece
            for delivered in self.handle:
                piece = pieces.chunk(delivered.chunk)
                if piece is not None:
                    yield piece
        except E.ModelMeshError as exc:
            self.error = exc
            yield pieces.fail(exc)
            return
        yield pieces.end()


@dataclass(eq=False)
class AsyncSSEBody(_AsyncBody):
    """SSEBody for an AsyncMeshClient's stream: read with `async for`; `aclose()` ends the
    mesh stream."""

    async def _run(self) -> AsyncGenerator[bytes, None]:
        pieces = _Pieces(self.handle.call)
        try:
            if self.first is not None:
                piece = pieces.chunk(self.first.chunk)
                if piece is not None:
                    yield piece
            async for delivered in self.handle:
                piece = pieces.chunk(delivered.chunk)
                if piece is not None:
                    yield piece
        except E.ModelMeshError as exc:
            self.error = exc
            yield pieces.fail(exc)
            return
        yield pieces.end()


@dataclass(eq=False)
class BytesBody(_Body):
    """Speech audio, produced as it is read: each piece as the upstream sent it. A stream cut
    after audio went out cannot be answered with a status any more: the error is kept in
    `error` and raised, and the front door breaks the response off (a client sees a body cut
    short, as from the upstream itself). `close()` ends the mesh stream."""

    def _run(self) -> Generator[bytes, None, None]:
        try:
            if self.first is not None:
                yield bytes(self.first.chunk)
            for delivered in self.handle:
                yield bytes(delivered.chunk)
        except E.ModelMeshError as exc:
            self.error = exc
            raise


@dataclass(eq=False)
class AsyncBytesBody(_AsyncBody):
    """BytesBody for an AsyncMeshClient's speech: read with `async for`; `aclose()` ends the
    mesh stream."""

    async def _run(self) -> AsyncGenerator[bytes, None]:
        try:
            if self.first is not None:
                yield bytes(self.first.chunk)
            async for delivered in self.handle:
                yield bytes(delivered.chunk)
        except E.ModelMeshError as exc:
            self.error = exc
            raise
