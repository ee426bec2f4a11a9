"""Fuzz every codec's three doors with random bytes and random JSON.

The only outcomes allowed: a parsed result in OpenAI shape (`assert_openai_shape`), a
`CodecError`, a classified `ErrorInfo`, or stream items that are chunks in shape and end
at most once in `StreamDone`/`StreamError`. Any other exception fails the test.
"""
from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh._core._types import ErrorInfo
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec

NAMES = ["openai", "azure-openai", "anthropic", "gemini", "cohere"]
TARGET = Target(provider="p", model="m", base_url="https://x.example/v1")
FUZZ = settings(max_examples=300, deadline=None)


# -- the shape every success must have -------------------------------------------------------

def _count(value):
    assert type(value) is int and value >= 0, value


def _usage(usage):
    if usage is None:
        return
    assert isinstance(usage, dict)
    for key, value in usage.items():
        if key.endswith("_tokens"):
            _count(value)
        elif key.endswith("_details") and value is not None:
            assert all(type(v) is int and v >= 0 for k, v in value.items() if k.endswith("_tokens"))
        elif isinstance(value, float):
            assert math.isfinite(value)


def _text_or_none(value):
    assert value is None or isinstance(value, str), value


def _tool_calls(calls):
    assert calls is None or (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)), calls


def _choice(choice):
    assert isinstance(choice, dict)
    assert type(choice["index"]) is int
    _text_or_none(choice["finish_reason"])


def assert_openai_shape(result, op="chat", stream=False):
    """`result` is what the core may hand a caller for `op` (a chunk when `stream`)."""
    assert isinstance(result, dict)
    if op == "speech":
        assert isinstance(result["content"], bytes) and result["content"]
        return
    if op == "models":
        assert isinstance(result["data"], list)
        assert all(isinstance(m, dict) and isinstance(m["id"], str) for m in result["data"])
        return
    _usage(result.get("usage"))
    if op in ("transcriptions", "translations"):
        assert isinstance(result["text"], str)
        return
    if op in ("images", "image_edits"):
        assert isinstance(result["data"], list) and result["data"] and type(result["created"]) is int
        assert all(isinstance(item, dict) for item in result["data"])
        return
    if op == "embeddings":
        assert isinstance(result["data"], list) and result["data"]
        for item in result["data"]:
            vector = item["embedding"]
            assert isinstance(vector, str) or all(
                type(x) in (int, float) and math.isfinite(x) for x in vector), vector
        return
    choices = result["choices"]
    assert isinstance(choices, list) and (stream or choices)
    for choice in choices:
        _choice(choice)
        body = choice["delta"] if stream else choice["message"]
        assert isinstance(body, dict)
        _text_or_none(body.get("content"))
        if not stream:
            assert isinstance(body["role"], str) and "content" in body
        _tool_calls(body.get("tool_calls"))


# -- what to feed ---------------------------------------------------------------------------------

_KEYS = ["type", "error", "message", "choices", "candidates", "content", "delta", "index", "usage", "role",
         "stop_reason", "content_block", "parts", "text", "functionCall", "finishReason", "promptFeedback",
         "blockReason", "details", "status", "code", "input_tokens", "output_tokens", "prompt_tokens",
         "usageMetadata", "promptTokenCount", "data", "id", "name", "args", "input", "partial_json", "models",
         "embeddings", "embedding", "values", "finish_reason", "tool_calls", "function", "arguments", "reason",
         "violations", "@type", "retryDelay", "prompt_tokens_details", "cached_tokens"]
_LEAF = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
         | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
         | st.sampled_from(["text", "tool_use", "text_delta", "input_json_delta", "message_start", "message_delta",
                            "content_block_start", "content_block_delta", "message_stop", "STOP", "assistant"]))
JSON = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), inner, max_size=5),
                    max_leaves=30)


def _skeleton(make):
    """A vendor-shaped body with random leaves: deep enough to reach the translators."""
    return st.builds(make, JSON, JSON, JSON, JSON)


SKELETONS = st.one_of(
    _skeleton(lambda a, b, c, d: {"choices": [{"index": a, "message": {"role": "assistant", "content": b,
                                                                       "tool_calls": c}, "finish_reason": d}],
                                  "usage": {"prompt_tokens": a, "completion_tokens": d}}),
    _skeleton(lambda a, b, c, d: {"choices": [{"index": 0, "delta": {"content": a, "tool_calls": b},
                                               "finish_reason": c}], "usage": d}),
    _skeleton(lambda a, b, c, d: {"data": [{"index": 0, "embedding": a, "id": b}], "usage": c, "object": d}),
    _skeleton(lambda a, b, c, d: {"type": "message", "content": [{"type": "text", "text": a},
                                                                 {"type": "tool_use", "id": "t", "name": b, "input": c}],
                                  "stop_reason": "end_turn", "usage": {"input_tokens": d}}),
    _skeleton(lambda a, b, c, d: {"type": a, "message": {"id": "m", "usage": b}, "index": 0,
                                  "content_block": {"type": "tool_use", "id": "t", "name": "f"},
                                  "delta": {"type": c, "text": d, "partial_json": d, "stop_reason": d}}),
    _skeleton(lambda a, b, c, d: {"candidates": [{"content": {"parts": [{"text": a}, {"functionCall": b}]},
                                                  "finishReason": c, "index": 0}], "usageMetadata": d}),
    _skeleton(lambda a, b, c, d: {"embeddings": [{"values": a}], "models": [{"name": b}], "data": [c], "x": d}),
    _skeleton(lambda a, b, c, d: {"error": {"message": a, "type": b, "code": c, "status": c, "details": d}}),
)
PAYLOADS = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda v: json.dumps(v).encode()),
    SKELETONS.map(lambda v: json.dumps(v).encode()),
)


# -- the three doors -----------------------------------------------------------------------------

@FUZZ
@given(name=st.sampled_from(NAMES), body=PAYLOADS, status=st.sampled_from([200, 201]))
def test_parse_response_gives_a_shaped_result_or_a_codec_error(name, body, status):
    codec = get_codec(name)
    for op in sorted(codec.ops):
        try:
            result = codec.parse_response(TARGET, op, status, {}, body)
        except CodecError as err:
            assert isinstance(err.info, ErrorInfo)
        else:
            assert_openai_shape(result, op)


@FUZZ
@given(name=st.sampled_from(NAMES), body=PAYLOADS, status=st.sampled_from([400, 401, 404, 408, 413, 429, 500, 529]))
def test_classify_error_always_classifies(name, body, status):
    info = get_codec(name).classify_error(status, {}, body, now=0.0)
    assert isinstance(info, ErrorInfo) and info.status == status and isinstance(info.message, str)


_EVENT_NAMES = st.sampled_from([None, "message_start", "content_block_start", "content_block_delta", "message_delta",
                                "message_stop", "ping", "error", "end", "event",
                                "message-start", "content-delta", "tool-call-start", "tool-call-delta",
                                "message-end"])


@st.composite
def streams(draw):
    """An SSE body of a few events (named or not, JSON or junk), cut into random pieces."""
    events = draw(st.lists(st.tuples(_EVENT_NAMES, PAYLOADS), min_size=1, max_size=4))
    raw = b"".join((f"event: {e}\n".encode() if e else b"") + b"data: " + data.replace(b"\n", b" ") + b"\n\n"
                   for e, data in events)
    if draw(st.booleans()):
        raw += b"data: [DONE]\n\n"
    cuts = sorted(draw(st.lists(st.integers(0, len(raw)), max_size=3)))
    return [raw[i:j] for i, j in zip([0, *cuts], [*cuts, len(raw)], strict=True)]


@FUZZ
@given(name=st.sampled_from(NAMES), pieces=streams())
def test_stream_decoders_yield_shaped_chunks_then_one_end(name, pieces):
    decoder = get_codec(name).stream_decoder(TARGET, "chat")
    items = [item for piece in pieces for item in decoder.feed(piece)] + decoder.close()
    ends = [i for i, item in enumerate(items) if isinstance(item, (StreamDone, StreamError))]
    assert ends == [len(items) - 1], items
    for item in items[:-1]:
        assert_openai_shape(item, stream=True)
    assert decoder.feed(b"data: {}\n\n") == [] and decoder.close() == []
