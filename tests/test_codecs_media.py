"""The media codecs alone (sans-IO): multipart encoding, uploads and what stays out of reprs."""
from __future__ import annotations

import pytest

from modelmesh._core._types import ErrorKind, Upload, WireRequest
from modelmesh._core.codecs import get_codec
from modelmesh._core.codecs._base import CodecError, Target, form_fields, multipart

AUDIO = Upload(filename="a.wav", data=b"RIFF" + b"\x00" * 40, content_type="audio/wav")


def test_multipart_is_deterministic_and_its_boundary_is_in_no_part():
    fields = form_fields({"file": AUDIO, "model": "whisper-1", "timestamp_granularities": ["word", "segment"],
                          "chunking_strategy": {"type": "auto"}, "stream": False, "prompt": None})
    body, ctype = multipart(fields)
    assert multipart(fields) == (body, ctype)
    boundary = ctype.split("boundary=")[1].encode()
    assert body.count(b"--" + boundary) == len(fields) + 1 and body.endswith(b"--" + boundary + b"--\r\n")
    assert [name for name, _ in fields] == ["file", "model", "timestamp_granularities[]", "timestamp_granularities[]",
                                            "chunking_strategy[type]", "stream"]
    tricky = Upload(filename="b.bin", data=b"--" + boundary + b"--")  # the first boundary inside the content
    _, other = multipart([("file", tricky)])
    assert other.split("boundary=")[1].encode() not in tricky.data


def test_uploads_and_requests_keep_bytes_and_keys_out_of_reprs():
    assert "RIFF" not in repr(AUDIO) and "size=44" in repr(AUDIO)
    target = Target(provider="dg", model="nova-3", base_url="http://x/v1", api_key="dg-secret-0123456789")
    request = get_codec("deepgram").build_request(target, "transcriptions", {"file": AUDIO}, stream=False)
    assert "dg-secret" not in repr(request) and "dg-secret" not in repr(target)
    with pytest.raises(ValueError, match="not both"):
        WireRequest(method="POST", url="http://x", json={}, content=b"x")
    with pytest.raises(ValueError, match="filename"):
        Upload(filename='a"b.wav', data=b"x")


def test_elevenlabs_cannot_express_what_it_lacks():
    target = Target(provider="el", model="eleven_multilingual_v2", base_url="http://x/v1", api_key="k")
    codec = get_codec("elevenlabs")
    for extra, words in [({"response_format": "flac"}, "response_format 'flac'"),
                         ({"instructions": "softly"}, "'instructions'")]:
        with pytest.raises(CodecError, match=words) as caught:
            codec.build_request(target, "speech", {"input": "hi", "voice": "v", **extra}, stream=False)
        assert caught.value.info.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(ValueError, match="no operation 'chat'"):
        codec.build_request(target, "chat", {"messages": []}, stream=False)


def test_deepgram_and_elevenlabs_classify_their_error_bodies():
    dg, el = get_codec("deepgram"), get_codec("elevenlabs")
    info = dg.classify_error(402, {}, b'{"err_code": "ASR_PAYMENT_REQUIRED", "err_msg": "no credits", "request_id": "r"}')
    assert info.kind is ErrorKind.QUOTA_EXHAUSTED and info.message == "no credits"
    info = dg.classify_error(400, {}, b'{"category": "INVALID_JSON", "message": "Invalid JSON.", "details": "line 1"}')
    assert info.kind is ErrorKind.BAD_REQUEST and info.message == "Invalid JSON.: line 1"
    info = el.classify_error(401, {}, b'{"detail": {"status": "quota_exceeded", "message": "out of credits"}}',
                             secrets=("k",))
    assert info.kind is ErrorKind.QUOTA_EXHAUSTED and info.code == "quota_exceeded"
    info = el.classify_error(503, {"retry-after": "3"}, b'{"detail": {"status": "system_busy", "message": "busy"}}')
    assert info.kind is ErrorKind.SERVER_ERROR and info.retry_after == 3.0
