"""Audio and images through modelmesh.openai.OpenAI and AsyncOpenAI: the official SDK's own
methods and types, with the mesh as its transport (the mapping `_serving` shares with the
proxy), over loopback fake upstreams and a fake clock."""
from __future__ import annotations

import asyncio
import contextlib

import httpx
import openai
import pytest
from media_shells import make_wav

import modelmesh
from modelmesh.openai import AsyncOpenAI, OpenAI
from modelmesh.testing import CutStream, Error, FakeClock, FakeUpstream, fake_speech

from core_helpers import MECHANICS

MODELS = ("tts-1", "whisper-1", "dall-e-2")
WAV = make_wav(1.0)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def config(*ups: FakeUpstream) -> dict:
    providers = {up.name: {"connector": "openai", "config": {
        "base_url": up.url, "auth": {"api_key": f"sk-media-{up.name}-0123456789"}, "timeout": "2s",
        "models": list(MODELS)}} for up in ups}

    def pool(model: str) -> dict:
        order = [f"{up.name}/{model}" for up in ups]
        return {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}

    return {"providers": providers, "routing": MECHANICS,
            "pools": {"speech": pool("tts-1"), "stt": pool("whisper-1"), "images": pool("dall-e-2")}}


@contextlib.contextmanager
def two():
    with FakeUpstream("openai", name="alpha", models=list(MODELS)) as a, \
            FakeUpstream("openai", name="beta", models=list(MODELS)) as b:
        yield a, b


def sync_client(*ups: FakeUpstream) -> OpenAI:
    clock = FakeClock()
    return OpenAI(mesh=modelmesh.MeshClient(config(*ups), clock=clock, sleep=clock.sleep, environ={}))


def async_client(*ups: FakeUpstream) -> AsyncOpenAI:
    clock = FakeClock()
    return AsyncOpenAI(mesh=modelmesh.AsyncMeshClient(config(*ups), clock=clock, sleep=clock.sleep,
                                                      environ={}))


def posts(up: FakeUpstream, suffix: str) -> list:
    return [r for r in up.requests if r.path.endswith(suffix)]


# -- OpenAI ---------------------------------------------------------------------------------------------
def test_speech_bytes_fail_over_on_a_500_and_say_who_served():
    with two() as (a, b), sync_client(a, b) as client:
        a.script(Error(500))
        raw = client.audio.speech.with_raw_response.create(model="speech", input="hi there", voice="alloy")
        assert raw.parse().content == fake_speech("tts-1", "alloy", "hi there", "mp3")
        assert raw.headers["content-type"] == "audio/mpeg" and raw.headers["x-modelmesh-provider"] == "beta"
        assert raw.headers["x-modelmesh-attempts"] == "2"
        assert type(raw.parse()).__name__ == "HttpxBinaryResponseContent"  # the SDK's own


def test_streaming_speech_comes_in_pieces(tmp_path):
    text = "several words make several chunks of audio"
    with two() as (a, b), sync_client(a, b) as client:
        with client.audio.speech.with_streaming_response.create(model="speech", input=text, voice="echo",
                                                                response_format="opus") as r:
            assert r.headers["content-type"] == "audio/ogg"
            pieces = list(r.iter_bytes())
        assert len(pieces) > 1 and b"".join(pieces) == fake_speech("tts-1", "echo", text, "opus")


def test_speech_cut_mid_audio_is_a_broken_body_and_is_not_repeated():
    with two() as (a, b), sync_client(a, b) as client:
        a.script(CutStream(after_chunks=2))
        with pytest.raises(httpx.RemoteProtocolError, match="stream was cut"), \
                client.audio.speech.with_streaming_response.create(model="speech", input="a b c d", voice="x") as r:
            r.read()
        assert posts(b, "/audio/speech") == []


def test_transcriptions_and_translations_of_a_wav():
    with two() as (a, b), sync_client(a, b) as client:
        a.script(Error(500))
        t = client.audio.transcriptions.create(model="stt", file=("hello.wav", WAV), temperature=0.3,
                                               timestamp_granularities=["word"], response_format="verbose_json")
        assert type(t).__name__ == "TranscriptionVerbose" and t.text == "Hello from beta" and t.duration == 1.0
        form = posts(b, "/audio/transcriptions")[-1].form
        assert form["file"][0].data == WAV and form["temperature"] == ["0.3"]
        assert form["timestamp_granularities[]"] == ["word"]
        assert client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), response_format="vtt") \
            .startswith("WEBVTT")
        assert client.audio.translations.create(model="stt", file=("a.wav", WAV)).text == "Hello from alpha"


def test_images_generate_and_edit_fail_over():
    with two() as (a, b), sync_client(a, b) as client:
        a.script(Error(503))
        r = client.images.generate(model="images", prompt="a fox", n=2)
        assert type(r) is openai.types.ImagesResponse and len(r.data) == 2
        a.script(Error(500))
        e = client.images.with_raw_response.edit(model="images", image=("fox.png", PNG), mask=("m.png", PNG),
                                                 prompt="a hat")
        assert e.headers["x-modelmesh-provider"] == "beta" and len(e.parse().data) == 1
        form = posts(b, "/images/edits")[-1].form
        assert form["image"][0].data == PNG and form["mask"][0].data == PNG


def test_capability_mismatch_is_a_400_and_nothing_is_sent():
    with two() as (a, b), sync_client(a, b) as client:
        with pytest.raises(openai.BadRequestError, match="nothing was sent"):
            client.audio.speech.create(model="images", input="x", voice="alloy")
        with pytest.raises(openai.BadRequestError) as bad:
            client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), response_format="wav")
        assert bad.value.param == "response_format"
        assert a.requests == [] and b.requests == []


# -- AsyncOpenAI ----------------------------------------------------------------------------------------
def test_the_async_sdk_serves_the_same_media():
    async def main(a, b):
        async with async_client(a, b) as client:
            a.script(Error(500))
            speech = await client.audio.speech.create(model="speech", input="hi", voice="nova")
            async with client.audio.speech.with_streaming_response.create(model="speech", input="hi you",
                                                                           voice="nova") as r:
                streamed = b"".join([piece async for piece in r.iter_bytes()])
            t = await client.audio.transcriptions.create(model="stt", file=("a.wav", WAV))
            events = [e async for e in await client.audio.transcriptions.create(model="stt", file=("a.wav", WAV),
                                                                                 stream=True)]
            img = await client.images.edit(model="images", image=("fox.png", PNG), prompt="a hat")
            a.script(CutStream(after_chunks=1))
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.audio.speech.with_streaming_response.create(model="speech", input="a b c",
                                                                               voice="x") as cut:
                    await cut.read()
            return speech.content, streamed, t.text, [e.type for e in events], len(img.data)

    with two() as (a, b):
        speech, streamed, text, events, images = asyncio.run(main(a, b))
    assert speech == fake_speech("tts-1", "nova", "hi", "mp3")
    assert streamed == fake_speech("tts-1", "nova", "hi you", "mp3")
    assert text == "Hello from alpha" and images == 1
    assert events == ["transcript.text.delta", "transcript.text.done"]
    assert len(posts(b, "/audio/speech")) == 1  # the 500's failover; the cut audio was not repeated
