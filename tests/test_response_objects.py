"""MeshClient's response objects against the official SDK's: the same payload read, dumped and
serialised through both (`openai.types...model_validate(payload)`), the field table checked
against the installed SDK's types, and objects handed back into requests over loopback.

Run as a script, it prints `modelmesh/_response_fields.py` as the installed SDK would have it.
"""
from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelmesh
from modelmesh import errors as E
from modelmesh._response import _CLASSES, ChatCompletion, ChatCompletionChunk, MeshObject, SyncPage, as_plain
from modelmesh._response_fields import SDK_VERSION, TAGS, TYPES
from modelmesh.testing import FakeUpstream, Reply, ToolCall

KEY = "sk-objects-0123456789abcdef"
MSG = [{"role": "user", "content": "What is the weather in Paris?"}]

# -- payloads: what codecs produce, with everything the SDK declares somewhere in them ------------
CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-x",
    "choices": [
        {"index": 0, "finish_reason": "tool_calls", "logprobs": {"content": [
            {"token": "Hi", "logprob": -0.25, "bytes": [72, 105], "top_logprobs": [{"token": "Hi", "logprob": -0.25}]}]},
         "message": {"role": "assistant", "content": None, "refusal": None, "annotations": [
             {"type": "url_citation", "url_citation": {"start_index": 0, "end_index": 2, "title": "T", "url": "https://x"}}],
             "tool_calls": [
                 {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                 {"id": "call_2", "type": "custom", "custom": {"name": "grep", "input": "weather"}}]}},
        {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "Héllo ✓"}},
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12,
              "completion_tokens_details": {"reasoning_tokens": 0}, "prompt_tokens_details": {"cached_tokens": 4}},
    "moderation": {"input": {"type": "error", "code": "unavailable", "message": "later"},
                   "output": {"type": "moderation_results", "model": "omni", "results": [
                       {"type": "moderation_result", "model": "omni", "flagged": False, "categories": {"hate": False},
                        "category_scores": {"hate": 0.5}, "category_applied_input_types": {"hate": ["text"]}}]}},
    "metadata": {"team": "a"}, "service_tier": "default",
    "x_groq": {"id": "req_1", "nested": {"deep": None}}, "x_region": "eu",  # fields the SDK does not declare
}
MINIMAL_CHAT = {"id": "c2", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]}
CHUNKS = [
    {"id": "c3", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None}, "logprobs": None,
                  "finish_reason": None}], "usage": None},
    {"id": "c3", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                                        "function": {"name": "f", "arguments": ""}}]}}]},
    {"id": "c3", "object": "chat.completion.chunk", "created": 1, "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c3", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
     "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}},
]
EMBEDDINGS = {"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
              "usage": {"prompt_tokens": 1, "total_tokens": 1}}
PAGE = {"object": "list", "data": [{"id": "a/gpt-x", "object": "model", "created": 0, "owned_by": "a",
                                    "capabilities": ["chat-completion"]}]}

DUMPS = [
    {}, {"exclude_unset": True}, {"exclude_none": True}, {"exclude_defaults": True}, {"mode": "json"},
    {"by_alias": True}, {"exclude_unset": True, "exclude_none": True},
    {"include": {"id", "choices", "data"}}, {"exclude": {"usage", "x_groq"}},
    {"include": {"choices": {"__all__": {"message": {"content", "tool_calls"}, "delta": {"content"}}}}},
    {"exclude": {"choices": {0: {"message": {"tool_calls": {"__all__": {"function"}}}}}}},
    {"include": {"choices": {-1: True}, "x_groq": {"nested"}}},
    {"include": {"choices": {"__all__": {"index"}, 0: True}}, "exclude": {"choices": {0: {"logprobs"}}}},
    {"exclude": {"data": {"__all__": {"embedding", "capabilities"}}}, "exclude_unset": True},
]


def sdk_types():
    pytest.importorskip("openai")
    from openai.pagination import SyncPage as SDKPage
    from openai.types import CreateEmbeddingResponse, Model
    from openai.types.chat import ChatCompletion as SDKChat
    from openai.types.chat import ChatCompletionChunk as SDKChunk
    return {"ChatCompletion": SDKChat, "ChatCompletionChunk": SDKChunk, "CreateEmbeddingResponse": CreateEmbeddingResponse,
            "Model": Model, "SyncPage": SDKPage[Model]}


def exact():
    """Whether the installed SDK is the one the table was derived from. Then every comparison is
    exact, key order and JSON text included. An older SDK declares fewer fields (the table has the
    newest's): what ours prints for those (None: the payload lacks them) is left out, the rest must
    be equal."""
    import openai

    return openai.__version__ == SDK_VERSION


def fit(ours, theirs):
    """`ours` without the fields, absent from the payload, that only a newer SDK than theirs declares."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: fit(v, theirs[k]) if k in theirs else v for k, v in ours.items() if k in theirs or v is not None}
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [fit(a, b) for a, b in zip(ours, theirs, strict=True)]
    return ours


def same_dump(ours, theirs, where=""):
    """Two model_dump() results, or two JSON texts, as the SDK's would be."""
    if exact():
        assert (ours if isinstance(ours, str) else json.dumps(ours)) == \
            (theirs if isinstance(theirs, str) else json.dumps(theirs)), where  # key order too
        return
    if isinstance(ours, str):
        ours, theirs = json.loads(ours), json.loads(theirs)
    assert fit(ours, theirs) == theirs, where


def pairs():
    """(ours, the SDK's) for every payload above."""
    sdk = sdk_types()
    out = [(ChatCompletion(copy.deepcopy(p)), sdk["ChatCompletion"].model_validate(p)) for p in (CHAT, MINIMAL_CHAT)]
    out += [(ChatCompletionChunk(copy.deepcopy(p)), sdk["ChatCompletionChunk"].model_validate(p)) for p in CHUNKS]
    out.append((_CLASSES["CreateEmbeddingResponse"](copy.deepcopy(EMBEDDINGS)),
                sdk["CreateEmbeddingResponse"].model_validate(EMBEDDINGS)))
    out.append((SyncPage(copy.deepcopy(PAGE)), sdk["SyncPage"].model_validate(PAGE)))
    return out


def same_reads(ours, theirs, path="r"):
    """Every field the SDK object has, declared or not, reads the same on ours, all the way down;
    a name neither has raises AttributeError on both."""
    names = list(type(theirs).model_fields) + list(theirs.model_extra or {})
    if isinstance(ours, SyncPage):  # a page iterates its items, as theirs does
        same_value(list(ours), list(theirs), f"{path} items")
    elif exact():
        assert [name for name, _ in ours] == [name for name, _ in theirs] == names, path
    else:  # the fields only a newer SDK declares read None (the payload lacks them)
        assert [name for name, _ in theirs] == names and set(names) <= {name for name, _ in ours}, path
        assert all(value is None for name, value in ours if name not in names), path
    for name in names:
        same_value(getattr(ours, name), getattr(theirs, name), f"{path}.{name}")
    for obj in (ours, theirs):
        with pytest.raises(AttributeError):
            obj.no_such_field  # noqa: B018
        assert not hasattr(obj, "choises") and getattr(obj, "contnet", "default") == "default"


def same_value(a, b, path):
    import pydantic

    if isinstance(b, pydantic.BaseModel):
        assert isinstance(a, MeshObject) and type(a).__name__ == type(b).__name__, path
        same_reads(a, b, path)
    elif isinstance(b, dict) and isinstance(a, MeshObject) and not exact():  # a type an older SDK lacks
        assert a.to_dict() == b, path
    elif isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same_value(x, y, f"{path}[{i}]")
    else:
        assert type(a) is type(b) and a == b, path


# -- the table ---------------------------------------------------------------------------------------

def test_the_field_table_is_the_installed_sdks():
    """The table is the newest SDK's: equal to the installed SDK's when it is that version, and
    holding every field an older one declares, as it declares it."""
    types, tags = sdk_table()
    regenerate = "the SDK's types changed: run `python tests/test_response_objects.py` with the newest SDK"
    if exact():
        assert types == TYPES and tags == TAGS, regenerate
        return
    for key, specs in types.items():
        assert key in TYPES and set(specs) <= set(TYPES[key]), f"{key}: {regenerate}"
    assert tags.items() <= TAGS.items(), regenerate


def test_no_declared_field_hides_a_method_of_ours():
    ours = set(dir(MeshObject)) | {"mesh", "provider", "has_next_page", "iter_pages"}
    for key, cls in _CLASSES.items():
        assert not (set(cls._order) & ours), key


def test_the_light_client_imports_neither_openai_nor_pydantic():
    probe = ("import sys, modelmesh.client, modelmesh._response; "
             "print(sorted(m for m in ('openai', 'pydantic', 'pydantic_core') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- objects against the SDK's, payload by payload ------------------------------------------------------

def test_every_field_reads_as_on_the_sdks_objects():
    for ours, theirs in pairs():
        same_reads(ours, theirs, type(ours).__name__)


def test_dumps_are_the_sdks_for_every_argument():
    for ours, theirs in pairs():
        for kw in map(dict, DUMPS):
            where = f"{type(ours).__name__} {kw}"
            same_dump(ours.model_dump(**kw), theirs.model_dump(**kw), where)
            kw.pop("mode", None)  # model_dump_json has none
            same_dump(ours.model_dump_json(**kw), theirs.model_dump_json(**kw), where)
            same_dump(ours.model_dump_json(indent=2, **kw), theirs.model_dump_json(indent=2, **kw), where)
        assert ours.to_dict() == theirs.to_dict()  # the payload's fields only
        same_dump(ours.to_json(), theirs.to_json())
        same_dump(ours.to_json(indent=None, exclude_none=True), theirs.to_json(indent=None, exclude_none=True))
        same_dump(ours.to_dict(exclude_unset=False, mode="json"), theirs.to_dict(exclude_unset=False, mode="json"))


def filters_for(value, depth=0):
    """include/exclude arguments that fit `value`'s shape: sets and dicts of its keys or indexes
    (negative ones too) and `__all__`, nested, with True, `...` and empty sets among the leaves."""
    if depth > 3 or not isinstance(value, (dict, list)) or not value:
        return st.just(True)
    keys = [*value, "__all__"] if isinstance(value, dict) else [*range(len(value)), -1, "__all__"]

    def under(key):
        if key == "__all__":
            key = next(iter(value)) if isinstance(value, dict) else 0
        return filters_for(value[key], depth + 1)

    nested = st.lists(st.sampled_from(keys), max_size=3, unique=True).flatmap(
        lambda ks: st.fixed_dictionaries({k: st.one_of(st.just(True), st.just(...), under(k)) for k in ks}))
    return st.one_of(st.sets(st.sampled_from(keys), max_size=3), nested)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), unset=st.booleans(), none=st.booleans())
def test_any_include_and_exclude_dump_as_the_sdks(data, unset, none):
    sdk = sdk_types()["ChatCompletion"]
    theirs = sdk.model_validate(CHAT)
    shape = theirs.model_dump()
    include = data.draw(st.one_of(st.none(), filters_for(shape)))
    exclude = data.draw(st.one_of(st.none(), filters_for(shape)))
    kw = {"include": include, "exclude": exclude, "exclude_unset": unset, "exclude_none": none}
    same_dump(ChatCompletion(copy.deepcopy(CHAT)).model_dump_json(**kw), theirs.model_dump_json(**kw), kw)


def test_a_dump_is_a_copy_and_a_bad_argument_fails_as_the_sdks_does():
    r = ChatCompletion(copy.deepcopy(CHAT))
    dumped = r.model_dump()
    dumped["choices"][1]["message"]["content"] = "changed"
    dumped["x_groq"]["id"] = "changed"
    assert r.choices[1].message.content == "Héllo ✓" and r.x_groq["id"] == "req_1"
    with pytest.raises(TypeError):
        r.model_dump(exclude_unsett=True)
    with pytest.raises(ValueError):
        r.model_dump(mode="yaml")


def test_setting_a_field_shows_in_reads_and_dumps():
    r = ChatCompletion(copy.deepcopy(MINIMAL_CHAT))
    r.choices[0].message.content = "edited"
    r.system_fingerprint = "fp_1"
    assert r.choices[0].message.content == "edited" and r.system_fingerprint == "fp_1"
    assert r.to_dict()["choices"][0]["message"]["content"] == "edited" and r.to_dict()["system_fingerprint"] == "fp_1"
    r.choices[0].message = r.choices[0].message  # an object set into another dumps as its data
    assert json.loads(r.to_json())["choices"][0]["message"] == {"role": "assistant", "content": "edited"}


def test_an_object_of_no_known_type_reads_only_what_it_holds():
    obj = MeshObject({"a": {"b": 1}, "c": [{"d": None}]})
    assert obj.a.b == 1 and obj.c[0].d is None and obj["a"]["b"] == 1 and obj.get("zz", 5) == 5
    with pytest.raises(AttributeError):
        obj.b  # noqa: B018
    assert obj.model_dump(exclude_none=True) == {"a": {"b": 1}, "c": [{}]}


def test_a_tool_call_without_a_known_type_reads_as_a_function_call():
    calls = [{"id": "a", "function": {"name": "f", "arguments": "{}"}}, {"id": "b", "type": ["odd"]},
             {"id": "c", "type": "custom", "custom": {"name": "g", "input": "x"}}]
    message = ChatCompletion({"choices": [{"message": {"role": "assistant", "tool_calls": calls}}]}).choices[0].message
    kinds = [type(c).__name__ for c in message.tool_calls]
    assert kinds == ["ChatCompletionMessageFunctionToolCall"] * 2 + ["ChatCompletionMessageCustomToolCall"]
    assert message.tool_calls[0].function.name == "f" and message.tool_calls[1].function is None
    assert message.tool_calls[2].custom.input == "x" and not hasattr(message.tool_calls[2], "function")
    assert message.model_dump()["tool_calls"][1] == {"id": "b", "function": None, "type": ["odd"]}


def test_pickle_copy_and_repr_keep_type_data_and_where_it_was_served():
    served = modelmesh._response.ServedBy(provider="a", model="m", pool="chat", request_id="r1", attempts=(), latency=0.1)
    r = ChatCompletion(copy.deepcopy(CHAT), served)
    for twin in (pickle.loads(pickle.dumps(r)), copy.copy(r), copy.deepcopy(r)):
        assert type(twin) is ChatCompletion and twin == r and twin.mesh == served and twin.provider == "a"
        assert type(twin.choices[0].message.tool_calls[1]).__name__ == "ChatCompletionMessageCustomToolCall"
    named = ChatCompletion({**copy.deepcopy(MINIMAL_CHAT), "provider": "Upstream Inc"}, served)  # OpenRouter has one
    assert named.provider == "a" and named["provider"] == named.to_dict()["provider"] == "Upstream Inc"
    choice = pickle.loads(pickle.dumps(r.choices[0]))
    assert type(choice) is type(r.choices[0]) and choice.message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(AttributeError):
        ChatCompletion.__new__(ChatCompletion).x_groq  # noqa: B018  (no data yet: an error, not a RecursionError)
    chunk = ChatCompletionChunk(copy.deepcopy(CHUNKS[0]))
    assert pickle.loads(pickle.dumps(chunk)).mesh is None
    assert repr(r).startswith("<ChatCompletion {") and len(repr(r)) < 230
    assert repr(r.choices[0].message).startswith("<ChatCompletionMessage {")


def test_as_plain_leaves_plain_data_alone_and_copies_only_the_path_to_an_object():
    body = {"model": "chat", "messages": [dict(m) for m in MSG] * 5, "temperature": 0.2, "stop": ["x"]}
    assert as_plain(body) is body
    message = ChatCompletion(copy.deepcopy(CHAT)).choices[0].message
    messages = [*body["messages"], message, {"role": "assistant", "tool_calls": message.tool_calls}]
    sent = as_plain({"messages": messages})
    assert sent["messages"][0] is messages[0] and messages[-2] is message  # the caller's list is left as it was
    assert sent["messages"][-2] == CHAT["choices"][0]["message"]
    assert sent["messages"][-1]["tool_calls"] == CHAT["choices"][0]["message"]["tool_calls"]
    json.dumps(sent)


def test_as_plain_sends_the_sdks_own_objects_as_the_sdk_does():
    pytest.importorskip("openai")
    from openai.types.chat import ChatCompletionMessage

    theirs = ChatCompletionMessage.model_validate(MINIMAL_CHAT["choices"][0]["message"])
    assert as_plain({"messages": [theirs]}) == {"messages": [{"role": "assistant", "content": "ok"}]}


# -- over loopback ---------------------------------------------------------------------------------

def client_for(up, connector="openai"):
    provider = {"connector": connector, "config": {"base_url": up.url, "auth": {"api_key": KEY}, "timeout": "2s",
                                                   "models": [{"id": "gpt-x", "capabilities": ["chat-completion"]}]}}
    return modelmesh.MeshClient({"providers": {"a": provider}, "pools": {"chat": {"models": ["a/gpt-x"]}}}, environ={})


def test_a_conversation_takes_back_the_message_it_was_given():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"], api_key=KEY) as up, client_for(up) as client:
        messages = list(MSG)
        r = client.chat.completions.create(model="chat", messages=messages)
        messages.append(r.choices[0].message)
        messages.append({"role": "user", "content": "And tomorrow?"})
        again = client.chat.completions.create(model="chat", messages=messages)
        assert again.choices[0].message.content == "Hello from alpha"
        sent = up.requests[-1].json["messages"]
    assert sent[1] == r.choices[0].message.to_dict() and sent[1]["content"] == "Hello from alpha"
    assert isinstance(messages[1], MeshObject)  # the caller's list is left as it was


def test_the_sdks_own_message_objects_are_taken_too():
    pytest.importorskip("openai")
    from openai.types.chat import ChatCompletion as SDKChat

    with FakeUpstream("openai", name="alpha", models=["gpt-x"], api_key=KEY) as up, client_for(up) as client:
        r = client.chat.completions.create(model="chat", messages=MSG)
        theirs = SDKChat.model_validate(r.to_dict()).choices[0].message
        client.chat.completions.create(model="chat", messages=[*MSG, theirs, {"role": "user", "content": "more"}])
        assert up.requests[-1].json["messages"][1] == theirs.model_dump(exclude_unset=True) == r.choices[0].message.to_dict()


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
def test_a_tool_call_loop_appends_the_assistant_message(style):
    with FakeUpstream(style, name="tools", models=["gpt-x"], api_key=KEY) as up:
        up.script(Reply(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})], finish_reason="tool_calls"))
        with client_for(up, style) as client:
            tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
            messages = list(MSG)
            r = client.chat.completions.create(model="chat", messages=messages, tools=tools)
            message = r.choices[0].message
            call = message.tool_calls[0]
            assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
            assert json.loads(call.function.arguments) == {"city": "Paris"} and call.type == "function"
            messages.append(message)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
            final = client.chat.completions.create(model="chat", messages=messages, tools=tools)
        assert final.choices[0].message.content == "Hello from tools"
        sent = json.dumps(up.requests[-1].json)
        assert "get_weather" in sent and "sunny" in sent and "Paris" in sent


def test_stream_chunks_read_and_dump_as_the_sdks():
    sdk = sdk_types()
    with FakeUpstream("openai", name="alpha", models=["gpt-x"], api_key=KEY) as up, client_for(up) as client:
        chunks = list(client.chat.completions.create(model="chat", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from alpha"
    for chunk in chunks:
        theirs = sdk["ChatCompletionChunk"].model_validate(chunk.to_dict())
        same_reads(chunk, theirs, "chunk")
        same_dump(chunk.model_dump_json(), theirs.model_dump_json())


def test_models_list_iterates_and_retrieve_finds_one_or_raises_not_found():
    with FakeUpstream("openai", name="alpha", models=["gpt-x"], api_key=KEY) as up, client_for(up) as client:
        page = client.models.list()
        ids = [m.id for m in page]
        assert ids == [m.id for m in page.data] == ["a/gpt-x", "chat"] and not page.has_next_page()
        assert [p for p in page.iter_pages()] == [page]
        model = client.models.retrieve("a/gpt-x")
        assert type(model).__name__ == "Model" and model.owned_by == "a" and model.shutdown_date is None
        assert client.models.retrieve("chat").owned_by == "modelmesh"
        with pytest.raises(E.NotFoundError) as info:
            client.models.retrieve("gpt-nope")
        err = info.value
        assert err.status_code == 404 and err.code == "model_not_found" and err.param == "model" and "gpt-nope" in str(err)
        with pytest.raises(E.InvalidArgumentError):
            client.models.retrieve("")
    sdk = sdk_types()
    theirs = sdk["SyncPage"].model_validate(page.to_dict())
    assert [m.id for m in theirs] == ids
    same_dump(page.model_dump(), theirs.model_dump())
    same_dump(model.model_dump(), sdk["Model"].model_validate(model.to_dict()).model_dump())


# -- the table, derived from the installed SDK ---------------------------------------------------------

def _models_in(annotation):
    import pydantic

    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _literals(annotation):
    if typing.get_origin(annotation) is typing.Literal:
        return list(typing.get_args(annotation))
    return [v for arg in typing.get_args(annotation) for v in _literals(arg)]


def _discriminator(members):
    for name in sorted(set.intersection(*(set(m.model_fields) for m in members))):
        values = [_literals(m.model_fields[name].annotation) for m in members]
        if all(len(v) == 1 for v in values) and len({v[0] for v in values}) == len(members):
            return name
    raise AssertionError(f"no field tells {members} apart")


def sdk_table():
    """(TYPES, TAGS) as `_response_fields` spells them, from the installed SDK's types."""
    roots = sdk_types()
    order, by_name = [], {}

    def visit(cls, name):
        if cls in order:
            return
        order.append(cls)
        by_name.setdefault(name, []).append(cls)
        for field in cls.model_fields.values():
            for m in _models_in(field.annotation):
                visit(m, m.__name__)

    for name, root in roots.items():
        visit(root, name)
    keys = {cls: name if len(classes) == 1 else f"{cls.__module__.rsplit('.', 1)[1]}.{name}"
            for name, classes in by_name.items() for cls in classes}
    types, tags = {}, {}
    for cls in order:
        specs = []
        for name, field in cls.model_fields.items():
            assert field.alias in (None, name), f"{cls}.{name} has an alias: the table has no place for it"
            assert field.is_required() or field.default is None, f"{cls}.{name}: a default other than None"
            spec = name if field.is_required() else name + "?"
            members = _models_in(field.annotation)
            if len(members) > 1:
                tag = _discriminator(members)
                tags.update({keys[m]: (tag, _literals(m.model_fields[tag].annotation)[0]) for m in members})
            if members:
                spec += ":" + "|".join(keys[m] for m in members)
            specs.append(spec)
        types[keys[cls]] = tuple(specs)
    return types, tags


def render(types, tags, version):
    """The text of modelmesh/_response_fields.py."""
    doc = f'''"""The fields each OpenAI SDK response type declares, for `modelmesh._response`.

One entry per type, its fields in the SDK's order: `name` when the SDK requires it, `name?` when it
is optional (default None), `name:Type` when its value is another object (or a list of them), and
`A|B` a union whose members `TAGS` tells apart by a field's value. A type named like
`chat_completion_chunk.Choice` is one whose bare name two SDK types share.

Derived from the newest SDK (older ones declare a subset of these fields) by
tests/test_response_objects.py, whose test fails when the installed SDK declares a field otherwise or
one this table lacks; `python tests/test_response_objects.py` prints the table afresh. Plain data:
this module imports nothing, so neither does a client that reads it.
"""
from __future__ import annotations

__all__ = ["SDK_VERSION", "TYPES", "TAGS"]

SDK_VERSION = "{version}"

'''
    lines = ["TYPES: dict[str, tuple[str, ...]] = {"]
    for key, specs in types.items():
        head = f"    {json.dumps(key)}: ("
        line = head + ", ".join(json.dumps(s) for s in specs) + ("," if len(specs) == 1 else "") + "),"
        if len(line) <= 118:
            lines.append(line)
            continue
        lines.append(head)
        row = "       "
        for s in specs:
            if len(row) + len(json.dumps(s)) + 2 > 118:
                lines.append(row)
                row = "       "
            row += " " + json.dumps(s) + ","
        lines += [row, "    ),"]
    lines += ["}", "", "TAGS: dict[str, tuple[str, str]] = {"]
    lines += [f"    {json.dumps(k)}: ({json.dumps(t)}, {json.dumps(v)})," for k, (t, v) in tags.items()]
    return doc + "\n".join([*lines, "}"]) + "\n"


if __name__ == "__main__":
    import openai

    sys.stdout.write(render(*sdk_table(), openai.__version__))
