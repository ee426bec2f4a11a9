"""`chat.completions.parse` on MeshClient, beside the SDK's: the strict schema it sends is the
one the SDK sends, the answer comes back parsed into the caller's pydantic model, on every
provider style, and the finish reasons the SDK refuses are refused the same way."""
from __future__ import annotations

import json
from enum import Enum
from typing import Optional

import pytest

import modelmesh
from modelmesh import errors as E
from modelmesh._schema import strict_schema
from modelmesh.testing import FakeUpstream, Reply

pydantic = pytest.importorskip("pydantic")
sdk_pydantic = pytest.importorskip("openai.lib._pydantic")

MSG = [{"role": "user", "content": "Extract the person"}]


class Colour(str, Enum):
    red = "red"
    blue = "blue"


class Address(pydantic.BaseModel):
    city: str
    zip: Optional[str] = None  # noqa: UP045 - the Optional spelling is part of what is tested


class Person(pydantic.BaseModel):
    name: str
    age: int
    tags: list[str]
    colour: Colour
    home: Address
    past: list[Address] = []
    nickname: str | None = None


@pytest.mark.parametrize("model", [Person, Address])
def test_the_strict_schema_is_the_one_the_sdk_sends(model):
    assert strict_schema(model.model_json_schema()) == sdk_pydantic.to_strict_json_schema(model)


def client_for(up, style):
    connector = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}[style]
    return modelmesh.MeshClient({"providers": {"p": {"connector": connector, "config": {
        "base_url": up.url, "auth": {"api_key": "sk-parse-0123456789abcdef"}, "models": ["m"]}}}}, environ={})


ANSWER = {"name": "Ada", "age": 36, "tags": ["maths"], "colour": "blue", "home": {"city": "London", "zip": None},
          "past": [], "nickname": None}


@pytest.mark.parametrize("style", ["openai", "anthropic", "gemini"])
def test_parse_returns_the_callers_model_from_any_provider(style):
    with FakeUpstream(style, models=["m"]) as up, client_for(up, style) as client:
        up.script(Reply(text=json.dumps(ANSWER)))
        r = client.chat.completions.parse(model="m", messages=MSG, response_format=Person)
        sent = up.requests[0].json
        messages = [*MSG, r.choices[0].message, {"role": "user", "content": "and again"}]
        client.chat.completions.create(model="m", messages=messages)  # a parsed message goes back as it is
    person = r.choices[0].message.parsed
    assert isinstance(person, Person) and person.home.city == "London" and person.colour is Colour.blue
    assert r.model_dump()["choices"][0]["message"]["parsed"]["name"] == "Ada"
    if style == "openai":
        fmt = sent["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["name"] == "Person"
        assert fmt["json_schema"]["schema"] == sdk_pydantic.to_strict_json_schema(Person)


def test_an_empty_answer_parses_to_none_and_cut_or_filtered_answers_raise_as_the_sdk_does():
    with FakeUpstream("openai", models=["m"]) as up, client_for(up, "openai") as client:
        up.script(Reply(text=""), Reply(text='{"name": "Ada"', finish_reason="length"),
                  Reply(text="", finish_reason="content_filter"), Reply(text='{"name": 1}'))
        assert client.chat.completions.parse(model="m", messages=MSG, response_format=Person).choices[0].message.parsed is None
        with pytest.raises(E.LengthFinishReasonError, match="token limit") as info:
            client.chat.completions.parse(model="m", messages=MSG, response_format=Person)
        assert info.value.completion.choices[0].finish_reason == "length"
        with pytest.raises(E.ContentFilterFinishReasonError):
            client.chat.completions.parse(model="m", messages=MSG, response_format=Person)
        with pytest.raises(pydantic.ValidationError):
            client.chat.completions.parse(model="m", messages=MSG, response_format=Person)


def test_parse_refuses_what_is_not_a_pydantic_model_and_streams_before_sending():
    with FakeUpstream("openai", models=["m"]) as up, client_for(up, "openai") as client:
        with pytest.raises(TypeError, match="'response_format' must be a pydantic model class"):
            client.chat.completions.parse(model="m", messages=MSG, response_format={"type": "json_object"})
        with pytest.raises(TypeError, match="'stream' is not supported"):
            client.chat.completions.parse(model="m", messages=MSG, response_format=Person, stream=True)
    assert up.requests == []
