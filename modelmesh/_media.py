"""Audio and images on MeshClient and AsyncMeshClient, read like the OpenAI SDK's.

    client.audio.speech.create(model="tts", input="Hello", voice="alloy")        -> BinaryContent
    with client.audio.speech.with_streaming_response.create(...) as r:              # bytes as they come
        r.stream_to_file("hello.mp3")
    client.audio.transcriptions.create(model="stt", file=open("a.wav", "rb"))    -> Transcription (.text)
    client.audio.translations.create(model="whisper-1", file="a.wav")            -> Translation
    client.images.generate(model="images", prompt="a cat")                       -> ImagesResponse
    client.images.edit(model="image-editing", image=open("cat.png", "rb"), prompt="add a hat")

How it works: each method is the SDK's arguments turned into a request body and handed to
the client's `_request`, which routes it through the core like a chat completion: the same
pool resolution, capability check (a pool whose models cannot take the operation is refused
before anything is sent), failover and rotation. A file argument (a path, an open binary
file, bytes, or a `(filename, content[, content_type])` tuple, as the SDK takes them) is read
here, in the caller's thread, into an `Upload`: the core never touches a file, and each
vendor's codec puts the bytes on the wire its own way (multipart for OpenAI, the raw body
for Deepgram). Transcriptions in `text`, `srt` and `vtt` come back as `str`, as the SDK
gives them; `json` and `verbose_json` as objects with `.text`.

A streamed speech response waits for its first bytes before `with` hands it over, so a
failure before any audio (a 429, a 5xx, every model refusing) fails over invisibly or raises
there; once bytes reached the caller, a broken stream raises StreamInterruptedError (audio
cannot be resumed mid-file).
"""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._core import _errors as E
from ._core._types import Upload
from ._response import ServedBy, _Served
from ._views import _Opened, _Resource, _served
from ._wire_openai import TRANSCRIPTION_FORMATS, transcript_body

__all__ = ["BinaryContent", "SpeechStream", "AsyncSpeechStream", "Transcription", "TranscriptionVerbose",
           "Translation", "ImagesResponse", "read_upload", "Audio", "Images", "AsyncAudio", "AsyncImages"]

_SPEECH_PARAMS = ("input", "voice")
# the first bytes of the formats a caller most often hands over as bare bytes -> (extension, type)
_MAGIC = ((b"RIFF", ("wav", "audio/wav")), (b"ID3", ("mp3", "audio/mpeg")), (b"\xff\xfb", ("mp3", "audio/mpeg")),
          (b"\xff\xf3", ("mp3", "audio/mpeg")), (b"OggS", ("ogg", "audio/ogg")), (b"fLaC", ("flac", "audio/flac")),
          (b"\x1aE\xdf\xa3", ("webm", "audio/webm")), (b"\x89PNG", ("png", "image/png")),
          (b"\xff\xd8\xff", ("jpg", "image/jpeg")), (b"GIF8", ("gif", "image/gif")))
_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "mpga": "audio/mpeg", "mpeg": "audio/mpeg", "m4a": "audio/mp4",
          "mp4": "audio/mp4", "ogg": "audio/ogg", "oga": "audio/ogg", "flac": "audio/flac", "webm": "audio/webm",
          "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


# -- files ------------------------------------------------------------------------------------------
def read_upload(where: str, value: Any) -> Upload:
    """The bytes of a file argument, as the SDK takes it: a path, an open binary file, bytes, or
    a `(filename, content[, content_type])` tuple whose content is bytes or an open file."""
    if isinstance(value, Upload):
        return value
    if isinstance(value, tuple):
        if len(value) not in (2, 3) or not isinstance(value[0], str) or not value[0]:
            raise E.InvalidArgumentError(f"{where}: a file tuple is (filename, content) or "
                                         f"(filename, content, content_type), got {_show(value)}")
        data = _bytes_of(where, value[1])
        ctype = value[2] if len(value) == 3 else None
        if ctype is not None and not isinstance(ctype, str):
            raise E.InvalidArgumentError(f"{where}: the content type in a file tuple must be a str")
        return _upload(where, os.path.basename(value[0]) or value[0], data, ctype)
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise E.InvalidArgumentError(f"{where}: cannot read {path!r} ({exc.strerror or type(exc).__name__})") from None
        return _upload(where, os.path.basename(path), data, None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _upload(where, None, bytes(value), None)
    if callable(getattr(value, "read", None)):
        name = getattr(value, "name", None)
        return _upload(where, os.path.basename(name) if isinstance(name, str) else None, _bytes_of(where, value), None)
    raise E.InvalidArgumentError(f"{where}: expected a path, an open binary file, bytes or a (filename, content) "
                                 f"tuple, got {type(value).__name__}")


def _bytes_of(where: str, content: Any) -> bytes:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    read = getattr(content, "read", None)
    if callable(read):
        data = read()
        if isinstance(data, str):
            raise E.InvalidArgumentError(f"{where}: the file was opened in text mode; open it with 'rb'")
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data)
    raise E.InvalidArgumentError(f"{where}: file content must be bytes or an open binary file, "
                                 f"got {type(content).__name__}")


def _upload(where: str, filename: str | None, data: bytes, ctype: str | None) -> Upload:
    if not data:
        raise E.InvalidArgumentError(f"{where}: the file is empty")
    sniffed = next((kind for magic, kind in _MAGIC if data.startswith(magic)), None)
    if not filename:
        filename = f"upload.{sniffed[0]}" if sniffed else "upload"
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    ctype = ctype or _TYPES.get(ext) or (sniffed[1] if sniffed else "application/octet-stream")
    try:
        return Upload(filename=filename, data=data, content_type=ctype)
    except ValueError as exc:
        raise E.InvalidArgumentError(f"{where}: {exc}") from None


def _show(value: Any) -> str:
    return f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__


def _need(where: str, kwargs: dict[str, Any], *names: str) -> None:
    for name in names:
        if kwargs.get(name) in (None, ""):
            raise E.InvalidArgumentError(f"{where}: '{name}' is required")


# -- responses --------------------------------------------------------------------------------------
class BinaryContent:
    """Speech audio, whole: the OpenAI SDK's HttpxBinaryResponseContent (`content`, `read()`,
    `write_to_file(path)`, `iter_bytes()`), plus `mesh` (ServedBy: who made it)."""

    def __init__(self, content: bytes, content_type: str, mesh: ServedBy | None = None) -> None:
        self.content = content
        self.content_type = content_type
        self.mesh = mesh

    def read(self) -> bytes:
        return self.content

    @property
    def text(self) -> str:
        """The bytes as UTF-8 text (a file's content, say)."""
        return self.content.decode("utf-8", "replace")

    async def aread(self) -> bytes:
        return self.content

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        size = chunk_size or len(self.content) or 1
        for start in range(0, len(self.content), size):
            yield self.content[start:start + size]

    def write_to_file(self, file: str | os.PathLike[str]) -> None:
        with open(file, "wb") as f:
            f.write(self.content)

    stream_to_file = write_to_file

    async def awrite_to_file(self, file: str | os.PathLike[str]) -> None:
        await asyncio.to_thread(self.write_to_file, file)

    def __repr__(self) -> str:
        return f"<BinaryContent {self.content_type} {len(self.content)} bytes>"


class _SpeechView(_Opened):
    @property
    def headers(self) -> dict[str, str]:
        answered = self._handle.call.answered_by
        return {k.lower(): v for k, v in answered[2].items()} if answered else {}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream")


def _rechunk(pieces: Iterator[bytes], size: int | None) -> Iterator[bytes]:
    if not size:
        yield from pieces
        return
    buf = b""
    for piece in pieces:
        buf += piece
        while len(buf) >= size:
            yield buf[:size]
            buf = buf[size:]
    if buf:
        yield buf


class SpeechStream(_SpeechView):
    """A speech response read as it arrives (`with_streaming_response`): `iter_bytes()`,
    `stream_to_file(path)`, `read()`; `mesh` is set once the body has ended."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.mesh = None
        self._items = iter(handle)
        self._first = next(self._items, None)  # an error before any audio is raised here
        if self._first is None:
            self._ended()

    def _pieces(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first.chunk
        for item in self._items:
            yield item.chunk
        self._ended()

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return _rechunk(self._pieces(), chunk_size)

    def read(self) -> bytes:
        return b"".join(self._pieces())

    def stream_to_file(self, file: str | os.PathLike[str], *, chunk_size: int | None = None) -> None:
        with open(file, "wb") as f:
            for piece in self.iter_bytes(chunk_size):
                f.write(piece)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SpeechStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncSpeechStream(_SpeechView):
    """SpeechStream for AsyncMeshClient: `async for b in r.iter_bytes()`, `await r.stream_to_file(p)`."""

    async def _pieces(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first.chunk
        async for item in self._handle:
            yield item.chunk
        self._ended()

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        buf = b""
        async for piece in self._pieces():
            if not chunk_size:
                yield piece
                continue
            buf += piece
            while len(buf) >= chunk_size:
                yield buf[:chunk_size]
                buf = buf[chunk_size:]
        if buf:
            yield buf

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self._pieces()])

    async def stream_to_file(self, file: str | os.PathLike[str], *, chunk_size: int | None = None) -> None:
        f = await asyncio.to_thread(open, file, "wb")  # no disk I/O on the event loop
        try:
            async for piece in self.iter_bytes(chunk_size):
                await asyncio.to_thread(f.write, piece)
        finally:
            await asyncio.to_thread(f.close)

    async def close(self) -> None:
        await self._handle.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncSpeechStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class Transcription(_Served):
    """`client.audio.transcriptions.create(response_format="json")`: `.text` (and `.usage`)."""

    __slots__ = ()


class TranscriptionVerbose(_Served):
    """`response_format="verbose_json"`: `.text`, `.language`, `.duration`, `.segments`, `.words`."""

    __slots__ = ()


class Translation(_Served):
    __slots__ = ()


class ImagesResponse(_Served):
    """`client.images.generate(...)`: `.created`, `.data[i].url` / `.data[i].b64_json` / `.revised_prompt`."""

    __slots__ = ()


def _transcript(result: Any, fmt: str, task: str) -> Any:
    data = transcript_body(result.response, fmt, task)  # the proxy answers the same body
    if isinstance(data, str):
        return data
    mesh = _served(result)
    if fmt == "verbose_json":
        return TranscriptionVerbose(data, mesh)
    return (Transcription if task == "transcribe" else Translation)(data, mesh)


def _transcription_args(where: str, kwargs: dict[str, Any]) -> str:
    _need(where, kwargs, "file")
    fmt = kwargs.get("response_format") or "json"
    if fmt not in TRANSCRIPTION_FORMATS:
        raise E.InvalidArgumentError(f"{where}: 'response_format' must be one of "
                                     f"{', '.join(TRANSCRIPTION_FORMATS)}, got {fmt!r}")
    return str(fmt)


def _images(result: Any) -> ImagesResponse:
    return ImagesResponse(result.response, _served(result))


def _speech(result: Any) -> BinaryContent:
    r = result.response
    return BinaryContent(r["content"], r.get("content_type") or "application/octet-stream", _served(result))


# -- MeshClient's resources -------------------------------------------------------------------------
class _Speech(_Resource):
    def create(self, **kwargs: Any) -> BinaryContent:
        """Speech from text: the audio bytes (`.content`, `.write_to_file(path)`)."""
        _need("audio.speech.create", kwargs, *_SPEECH_PARAMS)
        return _speech(self._client._request("speech", kwargs, False))

    @property
    def with_streaming_response(self) -> _StreamingSpeech:
        return _StreamingSpeech(self._client)


class _StreamingSpeech:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create(self, **kwargs: Any) -> _SpeechContext:
        """A context manager: the request is sent on `with`, and the response streams its audio."""
        _need("audio.speech.with_streaming_response.create", kwargs, *_SPEECH_PARAMS)
        return _SpeechContext(self._client, kwargs)


class _SpeechContext:
    def __init__(self, client: Any, kwargs: dict[str, Any]) -> None:
        self._client, self._kwargs = client, kwargs
        self._stream: Any = None

    def __enter__(self) -> SpeechStream:
        self._stream = self._client._request("speech", self._kwargs, True, view=SpeechStream)
        return self._stream

    def __exit__(self, *exc: Any) -> None:
        if self._stream is not None:
            self._stream.close()

    async def __aenter__(self) -> AsyncSpeechStream:
        self._stream = await self._client._request("speech", self._kwargs, True, view=AsyncSpeechStream)
        return self._stream

    async def __aexit__(self, *exc: Any) -> None:
        if self._stream is not None:
            await self._stream.close()


class _Transcriptions(_Resource):
    _op, _task, _where = "transcriptions", "transcribe", "audio.transcriptions.create"

    def create(self, **kwargs: Any) -> Any:
        """The text of an audio file: a str for `text`/`srt`/`vtt`, else an object with `.text`."""
        fmt = _transcription_args(self._where, kwargs)
        kwargs["file"] = read_upload(f"{self._where}: 'file'", kwargs["file"])
        return _transcript(self._client._request(self._op, kwargs, False), fmt, self._task)


class _Translations(_Transcriptions):
    _op, _task, _where = "translations", "translate", "audio.translations.create"


class Audio:
    def __init__(self, client: Any) -> None:
        self.speech = _Speech(client)
        self.transcriptions = _Transcriptions(client)
        self.translations = _Translations(client)


class Images(_Resource):
    def generate(self, **kwargs: Any) -> ImagesResponse:
        """Images from a prompt (`response_format` "url" or "b64_json", as the model offers)."""
        _need("images.generate", kwargs, "prompt")
        return _images(self._client._request("images", kwargs, False))

    def edit(self, **kwargs: Any) -> ImagesResponse:
        """An image (or several) edited by a prompt, with an optional `mask`."""
        _edit_args(kwargs)
        return _images(self._client._request("image_edits", kwargs, False))


def _edit_args(kwargs: dict[str, Any]) -> None:
    _need("images.edit", kwargs, "image", "prompt")
    image = kwargs["image"]
    if isinstance(image, list) and not image:
        raise E.InvalidArgumentError("images.edit: 'image' is an empty list; give one image or several")
    if isinstance(image, list):
        kwargs["image"] = [read_upload(f"images.edit: 'image[{i}]'", v) for i, v in enumerate(image)]
    else:
        kwargs["image"] = read_upload("images.edit: 'image'", image)
    if kwargs.get("mask") is not None:
        kwargs["mask"] = read_upload("images.edit: 'mask'", kwargs["mask"])


# -- AsyncMeshClient's resources: the same, awaited; a path is read in a worker thread ---------------
async def _aread_upload(where: str, value: Any) -> Upload:
    if isinstance(value, (str, os.PathLike)):
        return await asyncio.to_thread(read_upload, where, value)
    return read_upload(where, value)


class _AsyncSpeech(_Resource):
    async def create(self, **kwargs: Any) -> BinaryContent:
        _need("audio.speech.create", kwargs, *_SPEECH_PARAMS)
        return _speech(await self._client._request("speech", kwargs, False))

    @property
    def with_streaming_response(self) -> _StreamingSpeech:
        return _StreamingSpeech(self._client)  # `async with ... as response`


class _AsyncTranscriptions(_Resource):
    _op, _task, _where = "transcriptions", "transcribe", "audio.transcriptions.create"

    async def create(self, **kwargs: Any) -> Any:
        fmt = _transcription_args(self._where, kwargs)
        kwargs["file"] = await _aread_upload(f"{self._where}: 'file'", kwargs["file"])
        return _transcript(await self._client._request(self._op, kwargs, False), fmt, self._task)


class _AsyncTranslations(_AsyncTranscriptions):
    _op, _task, _where = "translations", "translate", "audio.translations.create"


class AsyncAudio:
    def __init__(self, client: Any) -> None:
        self.speech = _AsyncSpeech(client)
        self.transcriptions = _AsyncTranscriptions(client)
        self.translations = _AsyncTranslations(client)


class AsyncImages(_Resource):
    async def generate(self, **kwargs: Any) -> ImagesResponse:
        _need("images.generate", kwargs, "prompt")
        return _images(await self._client._request("images", kwargs, False))

    async def edit(self, **kwargs: Any) -> ImagesResponse:
        paths = [k for k in ("image", "mask") if isinstance(kwargs.get(k), (str, os.PathLike))]
        for key in paths:  # read off the loop; the rest (bytes, open files) as MeshClient does
            kwargs[key] = await _aread_upload(f"images.edit: '{key}'", kwargs[key])
        _edit_args(kwargs)
        return _images(await self._client._request("image_edits", kwargs, False))
