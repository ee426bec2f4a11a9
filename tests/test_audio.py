"""Audio end to end over real HTTP on loopback: speech, transcriptions and translations through
OpenAI (and the compatible family), ElevenLabs and Deepgram fakes, on both clients.

Every test runs against MeshClient and AsyncMeshClient (`media_shells.py`)."""
from __future__ import annotations

import pytest
from media_shells import make_wav, media_client

from modelmesh import errors as E
from modelmesh.testing import CutStream, Drop, Error, FakeClock, FakeUpstream, FormFile, MalformedJSON, fake_speech

from core_helpers import MECHANICS
from shells import SHELLS

KEYS = {"openai": "sk-audio-openai-0123456789", "elevenlabs": "xi-audio-key-0123456789abcdef",
        "deepgram": "dg-audio-key-0123456789abcdef"}
TTS = {"openai": "tts-1", "elevenlabs": "eleven_multilingual_v2"}
STT = {"openai": "whisper-1", "deepgram": "nova-3"}
WAV = make_wav(2.0)


@pytest.fixture(autouse=True, params=SHELLS)
def shell(request):
    return request.param


def prov(connector, url, *models):
    return {"connector": connector, "config": {
        "base_url": url, "auth": {"api_key": KEYS[connector]}, "models": list(models),
        "timeout": "2s", "connect_timeout": "1s", "stream_first_chunk_timeout": "1s"}}


def client_for(shell, providers, order, **pool):
    clock = FakeClock()
    config = {"providers": providers, "routing": MECHANICS, "pools": {"p": {
        "models": order, "strategy": "priority",
        "rotation": {"selection": {"model_priority": order}, "deactivation": {"retry_limit": 3}}, **pool}}}
    return media_client(shell, config, clock=clock, sleep=clock.sleep, environ={})


def one(shell, style, *models, **up_kw):
    """A fake of `style` and a client whose pool `p` is its models."""
    up = FakeUpstream(style, name=style, api_key=KEYS[style], models=list(models), **up_kw)
    client = client_for(shell, {"a": prov(style, up.url, *models)}, [f"a/{m}" for m in models])
    return up, client


# -- speech ------------------------------------------------------------------------------------------
def test_speech_returns_the_bytes_the_upstream_sent(shell):
    up, client = one(shell, "openai", "tts-1")
    with up, client:
        audio = client.audio.speech.create(model="p", input="Hello there", voice="alloy", speed=1.25)
        assert audio.content == fake_speech("tts-1", "alloy", "Hello there", "mp3")
        assert audio.read() == audio.content and audio.content_type == "audio/mpeg"
        assert b"".join(audio.iter_bytes(1000)) == audio.content
        assert audio.mesh.provider == "a" and audio.mesh.model == "tts-1"
        sent = up.last_request
        assert sent.path == "/v1/audio/speech" and sent.headers["authorization"] == f"Bearer {KEYS['openai']}"
        assert sent.json == {"model": "tts-1", "input": "Hello there", "voice": "alloy", "speed": 1.25}


def test_speech_write_to_file(shell, tmp_path):
    up, client = one(shell, "openai", "tts-1")
    with up, client:
        audio = client.audio.speech.create(model="p", input="One two", voice="nova", response_format="wav")
        audio.write_to_file(tmp_path / "out.wav")
        assert (tmp_path / "out.wav").read_bytes() == audio.content and audio.content[:4] == b"RIFF"


def test_streaming_speech_writes_the_file_as_it_arrives(shell, tmp_path):
    up, client = one(shell, "openai", "tts-1")
    text = "a longer sentence so the audio comes in several chunks"
    with up, client:
        with client.audio.speech.with_streaming_response.create(model="p", input=text, voice="echo") as response:
            assert response.content_type == "audio/mpeg"
            response.stream_to_file(tmp_path / "speech.mp3")
        expected = fake_speech("tts-1", "echo", text, "mp3")
        assert len(expected) > 4 * 1024  # several chunks on the wire
        assert (tmp_path / "speech.mp3").read_bytes() == expected
        assert response.mesh is not None and response.mesh.provider == "a"
        assert "stream" not in up.last_request.json  # /audio/speech streams as plain HTTP


def test_streaming_speech_iter_bytes_in_chunks(shell):
    up, client = one(shell, "openai", "tts-1")
    with up, client:
        with client.audio.speech.with_streaming_response.create(model="p", input="hi there", voice="echo") as r:
            pieces = list(r.iter_bytes(chunk_size=1000))
        assert b"".join(pieces) == fake_speech("tts-1", "echo", "hi there", "mp3")
        assert all(len(p) == 1000 for p in pieces[:-1])


@pytest.mark.parametrize("fault", [Error(429, retry_after=1), Error(503)])
def test_streaming_speech_fails_over_before_the_first_byte(shell, fault, tmp_path):
    with FakeUpstream("elevenlabs", api_key=KEYS["elevenlabs"], models=[TTS["elevenlabs"]]) as el, \
            FakeUpstream("openai", api_key=KEYS["openai"], models=["tts-1"]) as oa:
        el.script(fault)
        client = client_for(shell, {"el": prov("elevenlabs", el.url, TTS["elevenlabs"]),
                                    "oa": prov("openai", oa.url, "tts-1")}, [f"el/{TTS['elevenlabs']}", "oa/tts-1"])
        with client, client.audio.speech.with_streaming_response.create(model="p", input="hi", voice="v1") as r:
            data = r.read()
        assert data == fake_speech("tts-1", "v1", "hi", "mp3")
        assert len(el.requests) == 1 and len(oa.requests) == 1
        assert [a.outcome for a in r.mesh.attempts] == ["rate_limited" if fault.status == 429 else "server_error", "ok"]


def test_streaming_speech_cut_after_bytes_raises_and_never_repeats_audio(shell):
    with FakeUpstream("openai", name="first", api_key=KEYS["openai"], models=["tts-1"]) as a, \
            FakeUpstream("openai", name="second", api_key=KEYS["openai"], models=["tts-1"]) as b:
        a.script(CutStream(after_chunks=2))
        client = client_for(shell, {"a": prov("openai", a.url, "tts-1"), "b": prov("openai", b.url, "tts-1")},
                            ["a/tts-1", "b/tts-1"], stream_resume=True)
        with client:
            speech = client.audio.speech.with_streaming_response.create(model="p", input="a b c d e", voice="x")
            with pytest.raises(E.StreamInterruptedError), speech as r:
                r.read()
            assert len(b.requests) == 0  # audio cannot be continued on another model


# -- transcriptions and translations -------------------------------------------------------------------
def test_transcription_of_a_real_wav_goes_as_multipart(shell):
    up, client = one(shell, "openai", "whisper-1", text="The quick brown fox.")
    with up, client:
        t = client.audio.transcriptions.create(model="p", file=("clip.wav", WAV), language="en",
                                               prompt="Foxes.", temperature=0.2)
        assert t.text == "The quick brown fox." and t.mesh.model == "whisper-1"
        sent = up.last_request
        assert sent.path == "/v1/audio/transcriptions"
        assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
        form = sent.form
        assert form["file"] == [FormFile("clip.wav", "audio/wav", WAV)] and form["file"][0].data == WAV
        assert form["model"] == ["whisper-1"] and form["language"] == ["en"]
        assert form["prompt"] == ["Foxes."] and form["temperature"] == ["0.2"]


@pytest.mark.parametrize(("fmt", "expected"), [
    ("text", "Hi there."),
    ("srt", "1\n00:00:00,000 --> 00:00:02,000\nHi there.\n\n"),
    ("vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nHi there.\n\n"),
])
def test_text_formats_come_back_as_str(shell, fmt, expected):
    up, client = one(shell, "openai", "whisper-1", text="Hi there.")
    with up, client:
        assert client.audio.transcriptions.create(model="p", file=WAV, response_format=fmt) == expected
        assert up.last_request.form["response_format"] == [fmt]


def test_json_formats_come_back_as_objects(shell):
    up, client = one(shell, "openai", "whisper-1", text="Hi there.")
    with up, client:
        plain = client.audio.transcriptions.create(model="p", file=WAV, response_format="json")
        assert type(plain).__name__ == "Transcription" and plain.text == "Hi there."
        verbose = client.audio.transcriptions.create(model="p", file=WAV, response_format="verbose_json")
        assert verbose.text == "Hi there." and verbose.duration == 2.0 and verbose.language == "english"
        assert verbose.task == "transcribe" and verbose.segments[0].end == 2.0


def test_every_file_form_sends_the_same_part(shell, tmp_path):
    path = tmp_path / "voice.wav"
    path.write_bytes(WAV)
    up, client = one(shell, "openai", "whisper-1")
    with up, client:
        with open(path, "rb") as f:
            given = [path, str(path), f, WAV, ("voice.wav", WAV), ("voice.wav", WAV, "audio/x-wav")]
            for file in given:
                client.audio.transcriptions.create(model="p", file=file)
        parts = [r.form["file"][0] for r in up.requests]
        assert all(p.data == WAV for p in parts)
        assert [p.filename for p in parts] == ["voice.wav"] * 3 + ["upload.wav"] + ["voice.wav"] * 2
        assert parts[-1].content_type == "audio/x-wav" and parts[0].content_type == "audio/wav"


def test_bad_file_arguments_are_refused_before_anything_is_sent(shell, tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not audio")
    up, client = one(shell, "openai", "whisper-1")
    with up, client, open(text_file) as opened_as_text:
        cases = [(tmp_path / "missing.wav", "cannot read"), (opened_as_text, "text mode"), (b"", "empty"),
                 (("a.wav",), "file tuple"), (12, "expected a path")]
        for bad, words in cases:
            with pytest.raises(E.InvalidArgumentError, match=words):
                client.audio.transcriptions.create(model="p", file=bad)
        with pytest.raises(E.InvalidArgumentError, match="response_format"):
            client.audio.transcriptions.create(model="p", file=WAV, response_format="mp3")
        with pytest.raises(E.InvalidArgumentError, match="'file' is required"):
            client.audio.transcriptions.create(model="p")
        with pytest.raises(E.InvalidArgumentError, match="'voice' is required"):
            client.audio.speech.create(model="p", input="hi")
        assert up.requests == []


def test_translation_goes_to_the_translations_endpoint(shell):
    up, client = one(shell, "openai", "whisper-1", text="Hello.")
    with up, client:
        t = client.audio.translations.create(model="p", file=("hola.wav", WAV))
        assert type(t).__name__ == "Translation" and t.text == "Hello."
        assert up.last_request.path == "/v1/audio/translations" and up.last_request.form["model"] == ["whisper-1"]
        verbose = client.audio.translations.create(model="p", file=WAV, response_format="verbose_json")
        assert verbose.task == "translate"


# -- failover, for each operation and connector ---------------------------------------------------------
CASES = [  # (operation, the first provider's connector, the second's)
    ("speech", "openai", "elevenlabs"), ("speech", "elevenlabs", "openai"),
    ("transcriptions", "openai", "deepgram"), ("transcriptions", "deepgram", "openai"),
    ("translations", "openai", "openai"),
]
MODELS = {"speech": TTS, "transcriptions": STT, "translations": {"openai": "whisper-1"}}


def _call(client, op):
    if op == "speech":
        return client.audio.speech.create(model="p", input="hi", voice="v1").content
    resource = client.audio.transcriptions if op == "transcriptions" else client.audio.translations
    return resource.create(model="p", file=WAV).text


@pytest.mark.parametrize("status", [429, 500, 503])
@pytest.mark.parametrize(("op", "first", "second"), CASES)
def test_a_429_or_5xx_fails_over_to_the_next_model(shell, op, first, second, status):
    m1, m2 = MODELS[op][first], MODELS[op][second]
    with FakeUpstream(first, name="one", api_key=KEYS[first], models=[m1], text="same words") as a, \
            FakeUpstream(second, name="two", api_key=KEYS[second], models=[m2], text="same words") as b:
        a.script(Error(status))
        client = client_for(shell, {"a": prov(first, a.url, m1), "b": prov(second, b.url, m2)}, [f"a/{m1}", f"b/{m2}"])
        with client:
            result = _call(client, op)
            fmt = "mp3_44100_128" if second == "elevenlabs" else "mp3"  # each vendor's name for the default
            assert result == (fake_speech(m2, "v1", "hi", fmt) if op == "speech" else "same words")
            assert len(a.requests) == 1 and len(b.requests) == 1
            assert client.status()["pools"]["p"][0]["failures"] == 1


@pytest.mark.parametrize("fault", [MalformedJSON(), Drop(), CutStream()])
@pytest.mark.parametrize("op", ["speech", "transcriptions"])
def test_broken_answers_fail_over_too(shell, op, fault):
    m = "tts-1" if op == "speech" else "whisper-1"
    with FakeUpstream("openai", name="one", api_key=KEYS["openai"], models=[m], text="fine") as a, \
            FakeUpstream("openai", name="two", api_key=KEYS["openai"], models=[m], text="fine") as b:
        a.script(fault)
        client = client_for(shell, {"a": prov("openai", a.url, m), "b": prov("openai", b.url, m)}, [f"a/{m}", f"b/{m}"])
        with client:
            assert _call(client, op) == (fake_speech(m, "v1", "hi", "mp3") if op == "speech" else "fine")
            assert len(a.requests) == 1 and len(b.requests) == 1


# -- capabilities ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "model"), [("speech", "whisper-1"), ("transcriptions", "tts-1"),
                                           ("translations", "gpt-4o-transcribe"), ("speech", "gpt-4o")])
def test_a_capability_mismatch_is_refused_before_anything_is_sent(shell, op, model):
    up, client = one(shell, "openai", model)
    with up, client:
        with pytest.raises(E.BadRequestError, match="cannot take a .* request.*nothing was sent"):
            _call(client, op)
        assert up.requests == []


def test_a_pool_sends_each_operation_only_to_models_that_declare_it(shell):
    with FakeUpstream("openai", api_key=KEYS["openai"], models=["whisper-1", "tts-1"], text="heard") as up:
        client = client_for(shell, {"a": prov("openai", up.url, "whisper-1", "tts-1")}, ["a/whisper-1", "a/tts-1"])
        with client:
            assert client.audio.speech.create(model="p", input="x", voice="v").mesh.model == "tts-1"
            assert client.audio.transcriptions.create(model="p", file=WAV).mesh.model == "whisper-1"
            assert [r.model for r in up.requests] == ["tts-1", "whisper-1"]


def test_capability_names_route_audio_requests(shell):
    with FakeUpstream("openai", api_key=KEYS["openai"], models=["tts-1", "whisper-1"], text="ok") as up:
        config = {"providers": {"a": prov("openai", up.url, "tts-1", "whisper-1")}}
        with media_client(shell, config, environ={}) as client:
            assert client.audio.speech.create(model="text-to-speech", input="x", voice="v").mesh.model == "tts-1"
            assert client.audio.transcriptions.create(model="stt", file=WAV).text == "ok"


# -- ElevenLabs' wire ---------------------------------------------------------------------------------------
def test_elevenlabs_wire_format(shell):
    up, client = one(shell, "elevenlabs", "eleven_multilingual_v2")
    with up, client:
        audio = client.audio.speech.create(model="p", input="Bonjour", voice="21m00Tcm4TlvDq8ikWAM",
                                           response_format="pcm", speed=1.1,
                                           extra_body={"language_code": "fr", "seed": 7})
        sent = up.last_request
        assert sent.method == "POST" and sent.path == "/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM"
        assert sent.query == {"output_format": "pcm_24000"}
        assert sent.headers["xi-api-key"] == KEYS["elevenlabs"] and "authorization" not in sent.headers
        assert sent.json == {"text": "Bonjour", "model_id": "eleven_multilingual_v2", "language_code": "fr",
                             "seed": 7, "voice_settings": {"speed": 1.1}}
        assert audio.content == fake_speech("eleven_multilingual_v2", "21m00Tcm4TlvDq8ikWAM", "Bonjour", "pcm_24000")
        client.audio.speech.create(model="p", input="x", voice="v", response_format="mp3_22050_32")
        assert up.last_request.query == {"output_format": "mp3_22050_32"}


@pytest.mark.parametrize(("status", "code", "outcome", "error"), [
    # a spent quota arrives as a 401: raised as the SDK's class for that status, but handled as a
    # quota (the provider waits for its reset) rather than a bad key
    (401, "quota_exceeded", "quota_exhausted", E.AuthenticationError),
    (401, "invalid_api_key", "auth", E.AuthenticationError),
    (429, "too_many_concurrent_requests", "rate_limited", E.RateLimitError),
    (400, "max_character_limit_exceeded", "context_length", E.BadRequestError),
])
def test_elevenlabs_error_bodies_are_read(shell, status, code, outcome, error):
    up, client = one(shell, "elevenlabs", "eleven_multilingual_v2")
    with up, client:
        up.always(Error(status, code=code, message=f"detail for {code}"))
        with pytest.raises(error) as caught:
            client.audio.speech.create(model="p", input="hi", voice="v")
        assert caught.value.attempts[0].outcome == outcome
        assert f"detail for {code}" in str(caught.value) and KEYS["elevenlabs"] not in str(caught.value)


def test_elevenlabs_validation_errors_fail_fast(shell):
    up, client = one(shell, "elevenlabs", "eleven_multilingual_v2")
    with up, client:
        up.script(Error(422, code="validation", message="field required"))
        with pytest.raises(E.UnprocessableEntityError, match="body.text: field required"):
            client.audio.speech.create(model="p", input="hi", voice="v")


def test_what_elevenlabs_cannot_say_goes_to_a_model_that_can(shell):
    with FakeUpstream("elevenlabs", api_key=KEYS["elevenlabs"], models=[TTS["elevenlabs"]]) as el, \
            FakeUpstream("openai", api_key=KEYS["openai"], models=["gpt-4o-mini-tts"]) as oa:
        client = client_for(shell, {"el": prov("elevenlabs", el.url, TTS["elevenlabs"]),
                                    "oa": prov("openai", oa.url, "gpt-4o-mini-tts")},
                            [f"el/{TTS['elevenlabs']}", "oa/gpt-4o-mini-tts"])
        with client:
            for extra in ({"response_format": "flac"}, {"instructions": "Speak softly."}):
                audio = client.audio.speech.create(model="p", input="hi", voice="v", **extra)
                assert audio.mesh.provider == "oa"
            assert el.requests == [] and client.status()["pools"]["p"][0]["status"] == "active"


# -- Deepgram's wire ----------------------------------------------------------------------------------------
def test_deepgram_wire_format(shell):
    up, client = one(shell, "deepgram", "nova-3", text="Hello, world.")
    with up, client:
        t = client.audio.transcriptions.create(model="p", file=("clip.wav", WAV), extra_body={"diarize": True})
        assert t.text == "Hello, world." and t.mesh.provider == "a"
        sent = up.last_request
        assert sent.method == "POST" and sent.path == "/v1/listen"
        assert sent.headers["authorization"] == f"Token {KEYS['deepgram']}"
        assert sent.headers["content-type"] == "audio/wav" and sent.body == WAV  # the audio itself, not multipart
        assert sent.query == {"model": "nova-3", "detect_language": "true", "smart_format": "true", "diarize": "true"}
        assert client.audio.transcriptions.create(model="p", file=WAV, language="de", response_format="text") \
            == "Hello, world."
        assert up.last_request.query["language"] == "de" and "detect_language" not in up.last_request.query
        verbose = client.audio.transcriptions.create(model="p", file=WAV, response_format="verbose_json")
        assert verbose.duration == 2.0 and verbose.language == "en" and verbose.words[1].word == "world."


@pytest.mark.parametrize(("status", "code", "error", "outcome"), [
    (401, "INVALID_AUTH", E.AuthenticationError, "auth"),
    (402, "ASR_PAYMENT_REQUIRED", E.RateLimitError, "quota_exhausted"),
    (400, "Bad Request", E.BadRequestError, "bad_request"),
])
def test_deepgram_error_bodies_are_read(shell, status, code, error, outcome):
    up, client = one(shell, "deepgram", "nova-3")
    with up, client:
        up.always(Error(status, code=code))
        with pytest.raises(error) as caught:
            client.audio.transcriptions.create(model="p", file=WAV)
        assert caught.value.attempts[0].outcome == outcome and KEYS["deepgram"] not in str(caught.value)


def test_deepgram_refuses_a_wrong_key_with_its_own_body(shell):
    with FakeUpstream("deepgram", api_key="another-key-0123456789", models=["nova-3"]) as up:
        client = client_for(shell, {"a": prov("deepgram", up.url, "nova-3")}, ["a/nova-3"])
        with client, pytest.raises(E.AuthenticationError, match="Invalid credentials"):
            client.audio.transcriptions.create(model="p", file=WAV)


def test_what_deepgram_cannot_do_goes_to_whisper(shell):
    with FakeUpstream("deepgram", api_key=KEYS["deepgram"], models=["nova-3"]) as dg, \
            FakeUpstream("openai", api_key=KEYS["openai"], models=["whisper-1"], text="subtitled") as oa:
        client = client_for(shell, {"dg": prov("deepgram", dg.url, "nova-3"), "oa": prov("openai", oa.url, "whisper-1")},
                            ["dg/nova-3", "oa/whisper-1"])
        with client:
            assert client.audio.transcriptions.create(model="p", file=WAV, response_format="srt").endswith("subtitled\n\n")
            assert client.audio.transcriptions.create(model="p", file=WAV, prompt="Names: Ada.").text == "subtitled"
            assert dg.requests == []
            with pytest.raises(E.BadRequestError, match="speech translation"):  # Deepgram models do not translate
                client_only_deepgram = client_for(shell, {"dg": prov("deepgram", dg.url, "nova-3")}, ["dg/nova-3"])
                with client_only_deepgram:
                    client_only_deepgram.audio.translations.create(model="p", file=WAV)
            assert dg.requests == []


# -- with_raw_response ---------------------------------------------------------------------------------
def test_with_raw_response_says_who_served_speech_transcripts_and_images(shell):
    models = ("tts-1", "whisper-1", "dall-e-2")
    with FakeUpstream("openai", name="a", api_key=KEYS["openai"], models=list(models)) as up, \
            FakeUpstream("openai", name="b", api_key=KEYS["openai"], models=list(models)) as other:
        client = client_for(shell, {"a": prov("openai", up.url, *models), "b": prov("openai", other.url, *models)},
                            ["a/tts-1", "b/tts-1"])
        real = getattr(client, "client", client)  # the async shell's own AsyncMeshClient
        done = getattr(client, "run", lambda value: value)  # ... whose coroutines the adapter runs
        with client:
            up.script(Error(503))
            raw = done(real.audio.speech.with_raw_response.create(model="p", input="hi", voice="alloy"))
            assert raw.content == fake_speech("tts-1", "alloy", "hi", "mp3") == raw.parse().content
            assert raw.headers["content-type"] == "audio/mpeg" and raw.headers["x-modelmesh-provider"] == "b"
            assert raw.retries_taken == 1 and raw.request_id
            with pytest.raises(E.InvalidArgumentError, match="audio, not text"):
                raw.json()
            raw = done(real.with_raw_response.audio.transcriptions.create(model="a/whisper-1", file=WAV))
            assert raw.parse().text == "Hello from a" and raw.json()["text"] == "Hello from a"
            assert raw.headers["x-modelmesh-model"] == "whisper-1"
            srt = done(real.audio.translations.with_raw_response.create(model="a/whisper-1", file=WAV,
                                                                        response_format="srt"))
            assert srt.text.startswith("1\n") and srt.parse() == srt.text
            img = done(real.images.with_raw_response.generate(model="a/dall-e-2", prompt="a fox"))
            assert img.parse().data[0].url and img.headers["x-modelmesh-provider"] == "a"
            edit = done(real.with_raw_response.images.edit(model="a/dall-e-2", image=b"\x89PNG0000", prompt="a hat"))
            assert len(edit.parse().data) == 1
