"""Hostile upstreams, rows 3 and 4: odd but valid JSON and wrong-shaped 2xx bodies.

Each case takes a well-formed vendor body (or stream event), breaks one field, and
asserts the codec reports MALFORMED: a `CodecError` from `parse_response`, a
`StreamError` from the stream decoder; never a raw exception, never a success.
"""
from __future__ import annotations

import copy
import json

import pytest

from modelmesh._core._types import ErrorKind
from modelmesh._core.codecs import CodecError, StreamDone, StreamError, Target, get_codec

TARGETS = {
    "openai": Target(provider="openai", model="gpt-4o-mini", base_url="https://api.openai.com/v1"),
    "azure-openai": Target(provider="azure", model="gpt-4o", base_url="https://r.openai.azure.com"),
    "anthropic": Target(provider="anthropic", model="claude-sonnet-4-20250514", base_url="https://api.anthropic.com/v1"),
    "gemini": Target(provider="google", model="gemini-2.5-flash", base_url="https://g.example/v1beta"),
}
DEEP = "@@deep@@"      # replaced by 10 000 nested lists: json.loads raises RecursionError
HUGE = "@@1e400@@"     # replaced by 1e400, which Python reads as float("inf")
NAN = float("nan")


def wire(obj):
    """JSON text of `obj`; NaN stays the bare `NaN` json.loads accepts."""
    text = json.dumps(obj)
    return text.replace(json.dumps(DEEP), "[" * 10_000 + "]" * 10_000).replace(json.dumps(HUGE), "1e400")


def broken(base, path, value):
    """`base` with the field at `path` (keys and indexes) set to `value`, or deleted for `...`."""
    out = copy.deepcopy(base)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


BAD_COUNTS = [[], NAN, HUGE, -1, True, 1.5, "12", DEEP]

# -- non-streaming bodies --------------------------------------------------------------------

OPENAI_CHAT = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}
OPENAI_EMBED = {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
                "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}
ANTHROPIC_MSG = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                 "content": [{"type": "text", "text": "hi"},
                             {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
                 "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 1}}
GEMINI_RESP = {"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"},
                                                                     {"functionCall": {"name": "f", "args": {}}}]},
                               "finishReason": "STOP", "index": 0}],
               "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}}
GEMINI_EMBED = {"embeddings": [{"values": [0.1, -0.2]}]}

OPENAI_CASES = [
    ("usage is a list", ["usage"], []),
    *[(f"prompt_tokens {v!r}", ["usage", "prompt_tokens"], v) for v in BAD_COUNTS],
    ("cached_tokens negative", ["usage", "prompt_tokens_details"], {"cached_tokens": -3}),
    ("choices empty", ["choices"], []),
    ("choices [null]", ["choices"], [None]),
    ('choices ["x"]', ["choices"], ["x"]),
    ("choices deep", ["choices"], DEEP),
    ("no message", ["choices", 0, "message"], ...),
    ("message is text", ["choices", 0, "message"], "hi"),
    ("content 42", ["choices", 0, "message", "content"], 42),
    ("content list", ["choices", 0, "message", "content"], [{"type": "text", "text": "hi"}]),
    ("role 1", ["choices", 0, "message", "role"], 1),
    ("tool_calls text", ["choices", 0, "message", "tool_calls"], "f()"),
    ("tool_calls [1]", ["choices", 0, "message", "tool_calls"], [1]),
    ("tool call function text", ["choices", 0, "message", "tool_calls"], [{"id": "c", "function": "f"}]),
    ("finish_reason 3", ["choices", 0, "finish_reason"], 3),
    ("index text", ["choices", 0, "index"], "0"),
    ("index bool", ["choices", 0, "index"], False),
]
EMBED_CASES = [
    ("data empty", ["data"], []),
    ('data ["x"]', ["data"], ["x"]),
    ("embedding missing", ["data", 0, "embedding"], ...),
    ("embedding NaN", ["data", 0, "embedding"], [0.1, NAN]),
    ("embedding inf", ["data", 0, "embedding"], [HUGE]),
    ("embedding text items", ["data", 0, "embedding"], ["x"]),
    ("embedding bools", ["data", 0, "embedding"], [True]),
    ("usage NaN", ["usage", "total_tokens"], NAN),
]
ANTHROPIC_CASES = [
    ("usage is a list", ["usage"], []),
    *[(f"input_tokens {v!r}", ["usage", "input_tokens"], v) for v in BAD_COUNTS],
    ("cache read NaN", ["usage", "cache_read_input_tokens"], NAN),
    ("content missing", ["content"], ...),
    ("content text", ["content"], "hi"),
    ("content [null]", ["content"], [None]),
    ('content ["x"]', ["content"], ["x"]),
    ("content deep", ["content"], DEEP),
    ("text 42", ["content", 0, "text"], 42),
    ("tool_use id 7", ["content", 1, "id"], 7),
    ("tool_use without name", ["content", 1, "name"], ...),
    ("tool_use input text", ["content", 1, "input"], "{}"),
    ("tool_use input deep", ["content", 1, "input"], {"a": DEEP}),
    ("stop_reason 5", ["stop_reason"], 5),
]
GEMINI_CASES = [
    ("usageMetadata a list", ["usageMetadata"], []),
    *[(f"promptTokenCount {v!r}", ["usageMetadata", "promptTokenCount"], v) for v in BAD_COUNTS],
    ("candidates empty", ["candidates"], []),
    ("candidates [null]", ["candidates"], [None]),
    ('candidates ["x"]', ["candidates"], ["x"]),
    ("candidates text", ["candidates"], "x"),
    ("candidates deep", ["candidates"], DEEP),
    ("content text", ["candidates", 0, "content"], "hi"),
    ("parts text", ["candidates", 0, "content", "parts"], "hi"),
    ("parts [null]", ["candidates", 0, "content", "parts"], [None]),
    ("text 42", ["candidates", 0, "content", "parts", 0, "text"], 42),
    ("functionCall text", ["candidates", 0, "content", "parts", 1, "functionCall"], "f"),
    ("functionCall name 1", ["candidates", 0, "content", "parts", 1, "functionCall", "name"], 1),
    ("functionCall args list", ["candidates", 0, "content", "parts", 1, "functionCall", "args"], []),
]
GEMINI_EMBED_CASES = [
    ("values NaN", ["embeddings", 0, "values"], [NAN]),
    ("values text", ["embeddings", 0, "values"], ["x"]),
    ("embeddings [null]", ["embeddings"], [None]),
]

RESPONSE_CASES = [
    *[(name, "chat", OPENAI_CHAT, case) for name in ("openai", "azure-openai") for case in OPENAI_CASES],
    *[(name, "embeddings", OPENAI_EMBED, case) for name in ("openai", "azure-openai") for case in EMBED_CASES],
    *[("anthropic", "chat", ANTHROPIC_MSG, case) for case in ANTHROPIC_CASES],
    *[("gemini", "chat", GEMINI_RESP, case) for case in GEMINI_CASES],
    *[("gemini", "embeddings", GEMINI_EMBED, case) for case in GEMINI_EMBED_CASES],
]


@pytest.mark.parametrize(("name", "op", "base"), [
    ("openai", "chat", OPENAI_CHAT), ("azure-openai", "chat", OPENAI_CHAT), ("openai", "embeddings", OPENAI_EMBED),
    ("anthropic", "chat", ANTHROPIC_MSG), ("gemini", "chat", GEMINI_RESP), ("gemini", "embeddings", GEMINI_EMBED)])
def test_the_unbroken_bodies_parse(name, op, base):
    assert get_codec(name).parse_response(TARGETS[name], op, 200, {}, wire(base).encode())


@pytest.mark.parametrize(("name", "op", "base", "case"), RESPONSE_CASES,
                         ids=[f"{n}-{op}-{c[0]}" for n, op, _, c in RESPONSE_CASES])
def test_a_wrong_shaped_2xx_body_is_malformed(name, op, base, case):
    _, path, value = case
    body = wire(broken(base, path, value)).encode()
    with pytest.raises(CodecError) as err:
        get_codec(name).parse_response(TARGETS[name], op, 200, {}, body)
    assert err.value.info.kind is ErrorKind.MALFORMED
    assert err.value.info.status == 200


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("status", [400, 429, 500, 503])
@pytest.mark.parametrize("body", [wire({"error": DEEP}), wire({"error": {"message": NAN}}), wire([DEEP]),
                                  wire({"error": {"message": "x", "details": [{"@type": DEEP}]}})])
def test_a_hostile_error_body_is_still_classified_by_status(name, status, body):
    info = get_codec(name).classify_error(status, {}, body.encode())
    assert info.status == status and info.kind is not ErrorKind.MALFORMED


def test_known_shapes_that_compatible_servers_omit_are_filled_in():
    body = broken(broken(OPENAI_CHAT, ["choices", 0, "index"], ...), ["choices", 0, "message", "role"], None)
    body = broken(body, ["usage", "prompt_tokens"], 5.0)
    out = get_codec("openai").parse_response(TARGETS["openai"], "chat", 200, {}, wire(body).encode())
    assert out["choices"][0]["index"] == 0 and out["choices"][0]["message"]["role"] == "assistant"
    assert out["usage"]["prompt_tokens"] == 5 and type(out["usage"]["prompt_tokens"]) is int


# -- streams ------------------------------------------------------------------------------------

OPENAI_CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None}]}
OPENAI_STREAM_CASES = [
    ("choices text", ["choices"], "x"),
    ('choices ["x"]', ["choices"], ["x"]),
    ("choices deep", ["choices"], DEEP),
    ("delta text", ["choices", 0, "delta"], "hi"),
    ("content 42", ["choices", 0, "delta", "content"], 42),
    ("tool_calls text", ["choices", 0, "delta", "tool_calls"], "x"),
    ("finish_reason 1", ["choices", 0, "finish_reason"], 1),
    ("usage a list", ["usage"], []),
    *[(f"prompt_tokens {v!r}", ["usage"], {"prompt_tokens": v}) for v in BAD_COUNTS],
]
ANTHROPIC_EVENTS = {
    "message_start": {"type": "message_start", "message": {"id": "msg_1", "model": "claude", "content": [],
                                                           "usage": {"input_tokens": 5, "output_tokens": 1}}},
    "content_block_start": {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}},
    "content_block_delta": {"type": "content_block_delta", "index": 0,
                            "delta": {"type": "text_delta", "text": "hi"}},
    "message_delta": {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
}
ANTHROPIC_STREAM_CASES = [
    ("message_start", "message text", ["message"], "x"),
    ("message_start", "usage a list", ["message", "usage"], []),
    *[("message_start", f"input_tokens {v!r}", ["message", "usage", "input_tokens"], v) for v in BAD_COUNTS],
    ("content_block_start", "block text", ["content_block"], "x"),
    ("content_block_start", "tool_use id 1", ["content_block", "id"], 1),
    ("content_block_start", "tool_use no index", ["index"], ...),
    ("content_block_delta", "delta text", ["delta"], "x"),
    ("content_block_delta", "text 42", ["delta", "text"], 42),
    ("content_block_delta", "delta deep", ["delta"], DEEP),
    ("message_delta", "output_tokens NaN", ["usage", "output_tokens"], NAN),
    ("message_delta", "output_tokens -1", ["usage", "output_tokens"], -1),
    ("message_delta", "stop_reason 1", ["delta", "stop_reason"], 1),
    ("message_delta", "delta a list", ["delta"], []),
    ("message_delta", "type 42", ["type"], 42),
]
# Each Gemini stream event is a whole GenerateContentResponse; one without candidates is legal there.
GEMINI_STREAM_CASES = [case for case in GEMINI_CASES if case[0] != "candidates empty"]


def sse(*events, named=False):
    return b"".join(
        ((f"event: {e['type']}\n" if named and isinstance(e.get("type"), str) else "") + f"data: {wire(e)}\n\n").encode()
        for e in events)


def decode(name, raw):
    decoder = get_codec(name).stream_decoder(TARGETS[name], "chat")
    return decoder.feed(raw) + decoder.close()


def assert_malformed(items):
    assert isinstance(items[-1], StreamError), items
    assert items[-1].info.kind is ErrorKind.MALFORMED
    assert all(isinstance(i, dict) for i in items[:-1])


STREAM_CASES = [
    *[(name, sse(OPENAI_CHUNK, broken(OPENAI_CHUNK, p, v)), n)
      for name in ("openai", "azure-openai") for n, p, v in OPENAI_STREAM_CASES],
    *[("anthropic", sse(ANTHROPIC_EVENTS["message_start"], broken(ANTHROPIC_EVENTS[event], p, v), named=True),
       f"{event} {n}") for event, n, p, v in ANTHROPIC_STREAM_CASES],
    *[("gemini", sse(broken(GEMINI_RESP, p, v)), n) for n, p, v in GEMINI_STREAM_CASES],
]


@pytest.mark.parametrize(("name", "raw", "case"), STREAM_CASES, ids=[f"{n}-{c}" for n, _, c in STREAM_CASES])
def test_a_wrong_shaped_stream_event_ends_the_stream_as_malformed(name, raw, case):
    assert_malformed(decode(name, raw))


@pytest.mark.parametrize("name", list(TARGETS))
@pytest.mark.parametrize("data", ["NaN", "[" * 10_000 + "]" * 10_000, '{"a": ' * 5_000 + "1" + "}" * 5_000])
def test_an_unparsable_stream_event_is_malformed(name, data):
    assert_malformed(decode(name, f"data: {data}\n\n".encode()))


def test_anthropic_skips_ping_and_event_types_it_does_not_know():
    """Anthropic's streaming docs: new event types may be added; handle unknown ones gracefully."""
    events = [ANTHROPIC_EVENTS["message_start"], {"type": "ping"},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
              {"type": "future_event", "payload": {"x": [1, 2]}}, {"type": "end"}, {"type": "event"},
              {"type": "__init__"}, {"type": "content_block_stop", "index": 0},
              ANTHROPIC_EVENTS["message_delta"], {"type": "message_stop"}]
    items = decode("anthropic", sse(*events, named=True))
    assert isinstance(items[-1], StreamDone)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in items[:-1] if c["choices"]) == "hi"
    assert items[-2]["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


# -- both JSON parsers: the standard one and orjson (the `fast` extra) judge alike -----------

JSON_BODIES = [
    (b'{"a": 1, "b": [true, null, "x"]}', {"a": 1, "b": [True, None, "x"]}),
    (b'\xef\xbb\xbf{"a": 1}', {"a": 1}),            # a UTF-8 byte-order mark
    (b'{"a": NaN}', None), (b'{"a": Infinity}', None), (b'{"a": -Infinity}', None),
    (b"[" * 5000 + b"]" * 5000, None),             # nesting deeper than either parser goes
    (b'{"a": 1', None), (b"\xff\xfe", None), (b"", None), (b"null", None),
]


@pytest.mark.parametrize("parser", ["standard", "orjson"])
@pytest.mark.parametrize("body, expected", JSON_BODIES)
def test_both_json_parsers_read_and_refuse_alike(monkeypatch, parser, body, expected):
    from modelmesh._core.codecs import _base
    if parser == "standard":
        monkeypatch.setattr(_base, "_orjson", None)
    else:
        monkeypatch.setattr(_base, "_orjson", pytest.importorskip("orjson"))
    got = _base.load_json(body)
    assert (got if got is not _base._NO_JSON else None) == expected
