"""Audio and images through `modelmesh serve` as a real process, driven by the official openai
SDK over loopback, with fake upstreams behind it: speech bytes (whole, and streamed as they
arrive), transcriptions and translations of a WAV made with the `wave` module, image
generation and edits (multipart in and out), failover on a 500, the capability check before
anything is sent, virtual keys' pools, and errors in OpenAI's shape. One server for the
module; each test has its own pool (and upstreams) where health matters."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import time

import httpx
import openai
import pytest
from media_shells import make_wav

from modelmesh.cli import main
from modelmesh.testing import CutStream, Error, FakeUpstream, FormFile, fake_speech

from proxy_helpers import MASTER, UPSTREAM_KEY, serving, write_config

MODELS = ("tts-1", "whisper-1", "dall-e-2")
NAMES = ("good", "sp", "sf", "tp", "tf", "ip", "if", "cut", "after", "keyed")
WAV = make_wav(1.5)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def media_provider(up: FakeUpstream) -> dict:
    return {"connector": "openai", "config": {"base_url": up.url, "auth": {"api_key": UPSTREAM_KEY}, "timeout": "5s",
                                              "models": list(MODELS)}}


def pool(model: str, *names: str) -> dict:
    order = [f"{n}/{model}" for n in names]
    return {"models": order, "strategy": "priority", "rotation": {"selection": {"model_priority": order}}}


@pytest.fixture(scope="module")
def ups():
    with contextlib.ExitStack() as stack:
        yield {n: stack.enter_context(FakeUpstream("openai", name=n, models=list(MODELS))) for n in NAMES}


@pytest.fixture(scope="module")
def path(ups, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy-media")
    pools = {"speech": pool("tts-1", "good"), "stt": pool("whisper-1", "good"), "images": pool("dall-e-2", "good"),
             "speech-failover": pool("tts-1", "sp", "sf"), "stt-failover": pool("whisper-1", "tp", "tf"),
             "images-failover": pool("dall-e-2", "ip", "if"), "cut": pool("tts-1", "cut", "after"),
             "keyed-speech": pool("tts-1", "keyed"), "keyed-stt": pool("whisper-1", "keyed")}
    storage = {"connector": "sqlite", "config": {"path": str(tmp / "shared.sqlite3")}}
    return write_config(tmp / "mesh.json", {n: media_provider(up) for n, up in ups.items()}, pools,
                        proxy={"max_body_bytes": 200_000}, storage=storage)


@pytest.fixture(scope="module")
def keyed(path):
    """A virtual key that may use the pool `keyed-speech` only."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PROXY_MASTER_KEY", MASTER)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            assert main(["keys", "create", "--config", str(path), "--name", "speaker", "--pools", "keyed-speech"]) == 0
    return re.search(r"(sk-mm-\S+)", out.getvalue()).group(1)


@pytest.fixture(scope="module")
def server(path, keyed):
    with serving(path) as served:
        yield served


@pytest.fixture
def client(server):
    with openai.OpenAI(api_key=MASTER, base_url=server.base_url, max_retries=0) as c:
        yield c


def posts(up: FakeUpstream, suffix: str) -> list:
    return [r for r in up.requests if r.path.endswith(suffix)]


# -- speech ------------------------------------------------------------------------------------------
def test_speech_is_the_upstreams_audio_with_its_content_type(client, ups):
    raw = client.audio.speech.with_raw_response.create(model="speech", input="Hello there", voice="alloy",
                                                       response_format="wav", speed=1.25)
    audio = raw.parse()
    assert audio.content == fake_speech("tts-1", "alloy", "Hello there", "wav") and audio.content[:4] == b"RIFF"
    assert raw.headers["content-type"] == "audio/wav"
    assert raw.headers["x-modelmesh-provider"] == "good" and raw.headers["x-modelmesh-pool"] == "speech"
    sent = posts(ups["good"], "/audio/speech")[-1]
    assert sent.json == {"model": "tts-1", "input": "Hello there", "voice": "alloy", "response_format": "wav",
                         "speed": 1.25}
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the provider's key, not the proxy's


def test_speech_streams_to_the_client_as_it_arrives(client, server, tmp_path):
    text = "a longer sentence so the audio comes in several chunks"
    expected = fake_speech("tts-1", "echo", text, "mp3")
    with client.audio.speech.with_streaming_response.create(model="speech", input=text, voice="echo") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        assert "content-length" not in response.headers  # chunked: sent as the upstream sends it
        response.stream_to_file(tmp_path / "speech.mp3")
    assert (tmp_path / "speech.mp3").read_bytes() == expected
    # on the wire: a chunked body, not one buffered answer
    status, headers, body = server.request("POST", "/v1/audio/speech", json.dumps(
        {"model": "speech", "input": text, "voice": "echo"}).encode(),
        {"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    assert status == 200 and headers.get("transfer-encoding") == "chunked" and body == expected


def test_speech_fails_over_on_a_500_before_the_first_byte(client, ups):
    ups["sp"].script(Error(500))
    raw = client.audio.speech.with_raw_response.create(model="speech-failover", input="hi", voice="nova")
    assert raw.parse().content == fake_speech("tts-1", "nova", "hi", "mp3")
    assert raw.headers["x-modelmesh-provider"] == "sf" and raw.headers["x-modelmesh-attempts"] == "2"
    assert len(posts(ups["sp"], "/audio/speech")) == 1 and len(posts(ups["sf"], "/audio/speech")) == 1


def test_speech_cut_after_audio_breaks_the_body_and_is_never_repeated(client, ups):
    ups["cut"].script(CutStream(after_chunks=2))
    with pytest.raises((httpx.HTTPError, openai.APIError)), \
            client.audio.speech.with_streaming_response.create(model="cut", input="a b c d e", voice="x") as r:
        r.read()
    assert posts(ups["after"], "/audio/speech") == []  # audio cannot be continued on another model


# -- transcriptions and translations -------------------------------------------------------------------
def test_a_wav_is_transcribed_and_every_form_field_reaches_the_upstream(client, ups):
    t = client.audio.transcriptions.create(model="stt", file=("hello.wav", WAV, "audio/wav"), language="en",
                                           temperature=0.2, response_format="verbose_json",
                                           timestamp_granularities=["word", "segment"])
    assert t.text == "Hello from good" and t.duration == 1.5 and t.segments[0].end == 1.5
    form = posts(ups["good"], "/audio/transcriptions")[-1].form
    assert form["file"] == [FormFile("hello.wav", "audio/wav", WAV)] and form["file"][0].data == WAV
    assert form["model"] == ["whisper-1"] and form["language"] == ["en"] and form["temperature"] == ["0.2"]
    assert form["timestamp_granularities[]"] == ["word", "segment"]


def test_text_formats_come_back_as_text_and_json_as_an_object(client):
    plain = client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), response_format="text")
    assert plain.strip() == "Hello from good"
    srt = client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,500\n")
    one = client.audio.transcriptions.create(model="stt", file=("a.wav", WAV))
    assert one.text == "Hello from good" and one.usage.seconds == 2
    tr = client.audio.translations.create(model="stt", file=("a.wav", WAV))
    assert tr.text == "Hello from good"


def test_a_transcript_asked_as_a_stream_arrives_as_transcript_events(client):
    events = list(client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), stream=True))
    assert [e.type for e in events] == ["transcript.text.delta", "transcript.text.done"]
    assert events[0].delta == events[1].text == "Hello from good"


def test_transcriptions_fail_over_with_the_same_file(client, ups):
    ups["tp"].script(Error(500))
    raw = client.audio.transcriptions.with_raw_response.create(model="stt-failover", file=("a.wav", WAV))
    assert raw.parse().text == "Hello from tf" and raw.headers["x-modelmesh-attempts"] == "2"
    assert posts(ups["tf"], "/audio/transcriptions")[-1].form["file"][0].data == WAV


# -- images --------------------------------------------------------------------------------------------
def test_images_generate_and_edit(client, ups):
    r = client.images.generate(model="images", prompt="a red fox", n=2, size="256x256")
    assert len(r.data) == 2 and all(d.url.endswith(".png") for d in r.data)
    assert posts(ups["good"], "/images/generations")[-1].json["n"] == 2
    e = client.images.edit(model="images", image=[("fox.png", PNG, "image/png"), ("b.png", PNG)],
                           mask=("mask.png", PNG), prompt="add a hat", n=1)
    assert len(e.data) == 1
    form = posts(ups["good"], "/images/edits")[-1].form
    assert [f.data for f in form["image[]"]] == [PNG, PNG] and form["mask"][0].data == PNG
    assert form["prompt"] == ["add a hat"] and form["n"] == ["1"]


def test_image_edits_fail_over_on_a_500(client, ups):
    ups["ip"].script(Error(500))
    raw = client.images.with_raw_response.edit(model="images-failover", image=("fox.png", PNG), prompt="a hat")
    assert raw.headers["x-modelmesh-provider"] == "if" and len(raw.parse().data) == 1
    assert posts(ups["if"], "/images/edits")[-1].form["image"][0].data == PNG


# -- refusals ------------------------------------------------------------------------------------------
def test_a_pool_that_cannot_take_the_operation_is_refused_before_sending(client, ups):
    before = len(ups["good"].requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="speech", prompt="a fox")
    assert refused.value.status_code == 400 and "nothing was sent" in refused.value.message
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="images", file=("a.wav", WAV))
    assert len(ups["good"].requests) == before


def test_a_virtual_keys_pools_hold_for_audio(server, keyed, ups):
    with openai.OpenAI(api_key=keyed, base_url=server.base_url, max_retries=0) as c:
        assert c.audio.speech.create(model="keyed-speech", input="hi", voice="a").content
        with pytest.raises(openai.PermissionDeniedError) as denied:
            c.audio.transcriptions.create(model="keyed-stt", file=("a.wav", WAV))
    assert "may not use the pool 'keyed-stt'" in denied.value.message
    assert posts(ups["keyed"], "/audio/transcriptions") == []


def test_bad_uploads_are_answered_in_openais_shape(server, client):
    auth = {"authorization": f"Bearer {MASTER}"}
    status, _, body = server.request("POST", "/v1/audio/transcriptions", b'{"model": "stt"}',
                                     {**auth, "content-type": "application/json"})
    assert status == 415 and "multipart/form-data" in json.loads(body)["error"]["message"]
    form = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n" + WAV[:100] + b"\r\n--XyZ--\r\n")
    status, _, body = server.request("POST", "/v1/audio/transcriptions", form,
                                     {**auth, "content-type": "multipart/form-data; boundary=XyZ"})
    assert status == 400 and json.loads(body)["error"]["param"] == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.audio.transcriptions.create(model="stt", file=("a.wav", WAV), response_format="mp3")
    assert bad.value.param == "response_format"
    with pytest.raises(openai.BadRequestError) as bad:
        client.images.generate(model="images", prompt="x", stream=True)
    assert bad.value.param == "stream"
    with pytest.raises(openai.APIStatusError) as big:
        client.audio.transcriptions.create(model="stt", file=("big.wav", make_wav(20.0)))
    assert big.value.status_code == 413


def test_media_requests_are_in_the_access_log(server, client):
    client.images.generate(model="images", prompt="logged")
    client.audio.speech.create(model="speech", input="logged", voice="alloy")
    deadline = time.monotonic() + 10  # a stream is logged when the server closes its body, just after the client read it
    while time.monotonic() < deadline and not any(r.get("op") == "speech" for r in server.access_log()):
        time.sleep(0.02)
    by_op = {r["op"]: r for r in server.access_log() if r.get("status") == 200}
    assert by_op["speech"]["provider"] == "good" and by_op["speech"]["pool"] == "speech" and by_op["speech"]["stream"]
    assert by_op["images"]["provider"] == "good" and by_op["images"]["attempts"] == 1


# -- the form reader, by itself --------------------------------------------------------------------------
def form_of(**files_and_fields) -> tuple[bytes, str]:
    files = {k: v for k, v in files_and_fields.items() if isinstance(v, tuple)}
    data = {k: v for k, v in files_and_fields.items() if not isinstance(v, tuple)}
    request = httpx.Request("POST", "http://x/", data=data, files=files)
    return request.read(), request.headers["content-type"]


def test_the_form_reader_keeps_every_byte_and_reads_lists_objects_and_numbers():
    from modelmesh._form import parse_form

    binary = bytes(range(256)) * 64 + b"\r\n--\r\n\r\r\n"  # CRLFs and dashes inside a file part stay
    body, ctype = form_of(file=("h\u00e9llo \"q\".wav", binary, "audio/wav"), model="stt", temperature="0.5",
                          **{"timestamp_granularities[]": ["word", "segment"], "chunking_strategy[type]": "auto"})
    form = parse_form("transcriptions", body, ctype)
    assert form["file"].data == binary and form["file"].content_type == "audio/wav"
    assert form["file"].filename == "h\u00e9llo %22q%22.wav"  # as httpx spells a quote
    raw = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="x\\"y.wav"\r\n\r\nRIFF\r\n--b--\r\n')
    assert parse_form("transcriptions", raw, "multipart/form-data; boundary=b")["file"].filename == "xy.wav"
    assert form["model"] == "stt" and form["temperature"] == 0.5
    assert form["timestamp_granularities"] == ["word", "segment"] and form["chunking_strategy"] == {"type": "auto"}


def test_the_form_reader_names_what_is_wrong():
    from modelmesh._form import FormError, parse_form

    body, ctype = form_of(file=("a.wav", WAV), model="stt", temperature="warm")
    with pytest.raises(FormError, match="'temperature' must be a number") as bad:
        parse_form("transcriptions", body, ctype)
    assert bad.value.param == "temperature"
    body, ctype = form_of(image=("a.png", b""), model="images", prompt="x")
    with pytest.raises(FormError, match="file 'image' is empty"):
        parse_form("image_edits", body, ctype)
    with pytest.raises(FormError, match="no boundary"):
        parse_form("transcriptions", body, "multipart/form-data")


def test_import_modelmesh_loads_no_form_reader_proxy_or_batch_code():
    code = ("import sys, modelmesh; "
            "print(sorted(m for m in ('modelmesh._form', 'modelmesh.proxy', 'modelmesh._batch', 'modelmesh._abatch', "
            "'email.parser', 'modelmesh._serving') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
