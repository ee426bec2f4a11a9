"""Libraries built on the openai SDK work over modelmesh.openai.OpenAI unchanged: LangChain's
ChatOpenAI (invoke, stream, bind_tools, with_structured_output) and instructor. And the
package boundary: `import modelmesh` loads none of openai, httpx or pydantic, and without
the SDK `import modelmesh.openai` says which extra to install."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import instructor
import pydantic
import pytest
from langchain_openai import ChatOpenAI
from openai_sdk_helpers import MSG, chat_requests, config, fakes, sdk

from modelmesh.testing import Error, Reply, ToolCall

ROOT = Path(__file__).resolve().parents[1]


class Person(pydantic.BaseModel):
    name: str
    age: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


@pytest.fixture
def two():
    with fakes("alpha", "beta") as ups:
        yield ups


def chat_model(client, **kw) -> ChatOpenAI:
    # root_client/client are ours; api_key and base_url only keep LangChain's own async client
    # (which it builds whatever it is given) pointed at nowhere rather than at api.openai.com
    return ChatOpenAI(model="chat", root_client=client, client=client.chat.completions,
                      api_key="unused", base_url=str(client.base_url), **kw)


def test_langchain_invoke_goes_through_the_mesh_with_failover(two):
    a, b = two
    a.script(Error(503))
    client, _ = sdk(config(a, b))
    with client:
        message = chat_model(client).invoke("Say hi")
    assert message.content == "Hello from beta"
    assert message.response_metadata["model_name"] == "gpt-x" and message.usage_metadata["total_tokens"] > 0
    assert len(chat_requests(a)) == len(chat_requests(b)) == 1


def test_langchain_stream_yields_the_text_as_it_comes(two):
    a, b = two
    client, _ = sdk(config(a, b))
    with client:
        pieces = [c.content for c in chat_model(client).stream("Say hi")]
    assert "".join(pieces) == "Hello from alpha" and len([p for p in pieces if p]) == 3
    assert a.last_request.json["stream"] is True


def test_langchain_bind_tools_returns_the_models_tool_calls(two):
    a, b = two
    a.script(Reply(tool_calls=[ToolCall(name="get_weather", arguments={"city": "Paris"})]))
    client, _ = sdk(config(a, b))
    with client:
        message = chat_model(client).bind_tools([get_weather]).invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert a.last_request.json["tools"][0]["function"]["name"] == "get_weather"


def test_langchain_with_structured_output_parses_into_the_pydantic_model(two):
    a, b = two
    a.script(Reply(text='{"name": "Ada", "age": 36}'))
    client, _ = sdk(config(a, b))
    with client:
        person = chat_model(client).with_structured_output(Person).invoke("Who wrote the first program?")
    assert person == Person(name="Ada", age=36)
    assert a.last_request.json["response_format"]["json_schema"]["name"] == "Person"


def test_langchain_sees_the_sdks_errors(two):
    a, b = two
    a.always(Error(400))
    client, _ = sdk(config(a, b))
    import openai

    with client, pytest.raises(openai.BadRequestError):
        chat_model(client).invoke("Say hi")


def test_instructor_from_openai_extracts_a_pydantic_model(two):
    a, b = two
    a.script(Error(429))
    b.script(Reply(tool_calls=[ToolCall(name="Person", arguments={"name": "Ada", "age": 36})]))
    client, _ = sdk(config(a, b))
    with client:
        structured = instructor.from_openai(client)
        person = structured.chat.completions.create(model="chat", response_model=Person, messages=MSG)
    assert isinstance(person, Person) and person.model_dump() == {"name": "Ada", "age": 36}
    assert b.last_request.json["tool_choice"]["function"]["name"] == "Person"


def test_instructor_retries_a_bad_extraction_through_the_mesh(two):
    a, b = two
    a.script(Reply(tool_calls=[ToolCall(name="Person", arguments={"name": "Ada"})]),  # no age: invalid
             Reply(tool_calls=[ToolCall(name="Person", arguments={"name": "Ada", "age": 36})]))
    client, _ = sdk(config(a, b))
    with client:
        person = instructor.from_openai(client).chat.completions.create(
            model="chat", response_model=Person, messages=MSG, max_retries=2)
    assert person.age == 36 and len(chat_requests(a)) == 2
    assert "age" in str(a.last_request.json["messages"])  # the validation error went back to the model


# -- the package boundary ----------------------------------------------------------------------------

def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_import_modelmesh_and_its_wire_module_load_no_openai_httpx_or_pydantic():
    done = _run("import sys, modelmesh, modelmesh._wire_openai\n"
                "print(sorted(m for m in ('openai', 'httpx', 'pydantic') if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    loaded = _run("import sys, modelmesh.openai\nprint('openai' in sys.modules and 'httpx' in sys.modules)")
    assert loaded.stdout.strip() == "True", loaded.stderr  # the probe can see them


def test_without_the_sdk_import_modelmesh_openai_names_the_extra():
    done = _run("import sys\nsys.modules['openai'] = None\n"
                "try:\n    import modelmesh.openai\nexcept ImportError as exc:\n    print(exc)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "modelmesh.openai needs the openai SDK: pip install 'modelmesh-lite[openai]'"
