"""The audio and image resources of both clients behind one blocking surface, for tests.

`media_client(shell, config, **kw)` is `shells.make_client` plus, for the async client,
blocking adapters of `audio` and `images` (each coroutine run on the adapter's loop), and
of the async `with_streaming_response` context manager and its response. What tests assert
on (BinaryContent, Transcription, ImagesResponse, errors, `mesh`) is the async client's own.
"""
from __future__ import annotations

import io
import wave
from typing import Any

from shells import AsyncAdapter, _Call, make_client


def media_client(shell: str, config: Any, **kwargs: Any) -> Any:
    client = make_client(shell, config, **kwargs)
    if isinstance(client, AsyncAdapter):
        client.audio = _Audio(client)
        client.images = _Call(client, client.client.images)
    return client


def make_wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    """A real, small WAV: mono 16-bit silence with a rising ramp, made with the `wave` module."""
    buf = io.BytesIO()
    frames = int(seconds * rate)
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(((i * 37) % 2000).to_bytes(2, "little", signed=True) for i in range(frames)))
    return buf.getvalue()


class _Audio:
    def __init__(self, adapter: AsyncAdapter) -> None:
        audio = adapter.client.audio
        self.speech = _Speech(adapter, audio.speech)
        self.transcriptions = _Call(adapter, audio.transcriptions)
        self.translations = _Call(adapter, audio.translations)


class _Speech:
    def __init__(self, adapter: AsyncAdapter, speech: Any) -> None:
        self._a = adapter
        self._s = speech

    def create(self, **kwargs: Any) -> Any:
        return self._a.run(self._s.create(**kwargs))

    @property
    def with_streaming_response(self) -> Any:
        return _Streaming(self._a, self._s.with_streaming_response)


class _Streaming:
    def __init__(self, adapter: AsyncAdapter, streaming: Any) -> None:
        self._a = adapter
        self._st = streaming

    def create(self, **kwargs: Any) -> _Context:
        return _Context(self._a, self._st.create(**kwargs))


class _Context:
    def __init__(self, adapter: AsyncAdapter, context: Any) -> None:
        self._a = adapter
        self._c = context

    def __enter__(self) -> _Response:
        return _Response(self._a, self._a.run(self._c.__aenter__()))

    def __exit__(self, *exc: Any) -> None:
        self._a.run(self._c.__aexit__(*exc))


class _Response:
    """An AsyncSpeechStream read with blocking calls."""

    def __init__(self, adapter: AsyncAdapter, response: Any) -> None:
        self._a = adapter
        self.response = response

    def iter_bytes(self, chunk_size: int | None = None) -> Any:
        pieces = self.response.iter_bytes(chunk_size)
        while True:
            try:
                yield self._a.run(pieces.__anext__())
            except StopAsyncIteration:
                return

    def read(self) -> bytes:
        return bytes(self._a.run(self.response.read()))

    def stream_to_file(self, path: Any, **kwargs: Any) -> None:
        self._a.run(self.response.stream_to_file(path, **kwargs))

    def __getattr__(self, name: str) -> Any:  # mesh, headers, content_type, request_id
        return getattr(self.response, name)
