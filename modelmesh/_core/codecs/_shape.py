"""The OpenAI shapes a codec may hand back, each checked at one door.

Theory of operation: a vendor's 2xx body is only data, and the core and the caller's
code index straight into what a codec returns (`resp["choices"][0]["message"]["content"]`).
So nothing leaves a codec before one of these checks has walked it: `check_completion`,
`check_chunk`, `check_embeddings`, `check_models`, and `check_usage` inside them. A check
fills the few fields that OpenAI-compatible servers are known to leave out (a choice's
`index`, a message's `role` and `content`, a stream choice's `delta`, a `finish_reason`)
and raises `ShapeError` for anything else out of shape: a wrong type, a missing list, a
NaN, a negative or boolean token count. A token count that arrives as an integral float
(`12.0`) is the int it spells; any other float is wrong.

The codecs' translators use `count`, `opt_text` and `dump_json` on the vendor's own
fields, so a bad field is reported where it was read rather than coerced into a lie. The
codec turns a `ShapeError` into `CodecError(MALFORMED)` (a stream into a
`StreamError(MALFORMED)`); this module depends on nothing but the standard library, so
`_base` can use it without a cycle.
"""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ShapeError", "check_chunk", "check_completion", "check_embeddings", "check_models", "check_usage",
           "check_optional_usage", "count", "dump_json", "opt_text"]


class ShapeError(ValueError):
    """A vendor's payload is valid JSON but not the shape its API documents."""


def count(value: Any, what: str) -> int:
    """A token count: a non-negative int (an integral float is accepted as its int)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ShapeError(f"{what} is not a token count: {_show(value)}")
    return value


def opt_text(value: Any, what: str) -> str | None:
    """A field that is text or absent (None); any other type is a shape error."""
    if value is None or isinstance(value, str):
        return value
    raise ShapeError(f"{what} is not a string: {_show(value)}")


def dump_json(value: Any, what: str) -> str:
    """JSON text of a vendor value (tool arguments); too deep to encode is a shape error."""
    try:
        return json.dumps(value)
    except (RecursionError, ValueError, TypeError):
        raise ShapeError(f"{what} cannot be encoded as JSON") from None


def check_usage(usage: Any, what: str = "usage") -> dict[str, Any]:
    """OpenAI usage: every `*_tokens` a count; `*_details` objects of counts (a null
    count there is dropped); other numbers (a proxy's cost or timings) must be finite."""
    if not isinstance(usage, dict):
        raise ShapeError(f"{what} is not an object: {_show(usage)}")
    for key, value in usage.items():
        if type(value) is int and value >= 0 and type(key) is str:  # a count, or a number: nothing to do
            continue
        name = f"{what}.{key}"
        if not isinstance(key, str):
            raise ShapeError(f"{what} has a key that is not a string")
        if key.endswith("_tokens"):
            usage[key] = count(value, name)
        elif key.endswith("_details") and value is not None:
            if not isinstance(value, dict):
                raise ShapeError(f"{name} is not an object: {_show(value)}")
            for sub in [k for k, v in value.items() if v is None]:
                del value[sub]
            for sub, inner in value.items():
                if sub.endswith("_tokens"):
                    value[sub] = count(inner, f"{name}.{sub}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ShapeError(f"{name} is not a finite number")
    return usage


def check_completion(data: Any) -> dict[str, Any]:
    """A `chat.completion`: a non-empty `choices` list of whole choices, usage if any."""
    if not isinstance(data, dict):
        raise ShapeError("the completion is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ShapeError(f"the completion has no choices: {_show(choices)}")
    for ordinal, choice in enumerate(choices):
        if _whole(choice):
            continue
        where = f"choices[{ordinal}]"
        _check_choice_head(choice, ordinal, where)
        _check_message(choice.get("message"), f"{where}.message")
    check_optional_usage(data)
    return data


def _whole(choice: Any) -> bool:
    """A choice with nothing to fill and nothing wrong, told in a few exact-type tests: most
    answers, which then need no path built for a message they will not have."""
    if type(choice) is not dict:
        return False
    index, message = choice.get("index"), choice.get("message")
    if type(index) is not int or index < 0 or type(message) is not dict:
        return False
    reason, content = choice.get("finish_reason", 0), message.get("content", 0)
    return ((reason is None or type(reason) is str) and type(message.get("role")) is str
            and (content is None or type(content) is str) and message.get("tool_calls") is None)


def check_chunk(data: Any) -> dict[str, Any]:
    """A `chat.completion.chunk`: a `choices` list (empty in the usage chunk) of choices
    with a `delta` object whose content is text or null."""
    if not isinstance(data, dict):
        raise ShapeError("the stream chunk is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise ShapeError(f"the stream chunk has no 'choices' list: {_show(choices)}")
    for ordinal, choice in enumerate(choices):
        where = f"choices[{ordinal}]"
        _check_choice_head(choice, ordinal, where)
        delta = choice.setdefault("delta", {})  # Azure's filter-annotation chunks carry none
        if not isinstance(delta, dict):
            raise ShapeError(f"{where}.delta is not an object: {_show(delta)}")
        # checked inline first: this runs for every chunk, and the path is only needed to blame
        for name in ("content", "role"):
            value = delta.get(name)
            if value is not None and type(value) is not str:
                opt_text(value, f"{where}.delta.{name}")
        if delta.get("tool_calls") is not None:
            _check_tool_calls(delta["tool_calls"], f"{where}.delta.tool_calls")
    check_optional_usage(data)
    return data


def check_embeddings(data: Any) -> dict[str, Any]:
    """An embeddings list: `data` items whose `embedding` is a list of finite numbers, or
    the base64 text OpenAI sends for `encoding_format: "base64"`."""
    if not isinstance(data, dict):
        raise ShapeError("the embeddings response is not a JSON object")
    items = data.get("data")
    if not isinstance(items, list) or not items:
        raise ShapeError(f"the embeddings response has no 'data' items: {_show(items)}")
    for ordinal, item in enumerate(items):
        where = f"data[{ordinal}]"
        if not isinstance(item, dict):
            raise ShapeError(f"{where} is not an object: {_show(item)}")
        _index(item, ordinal, where)
        vector = item.get("embedding")
        if isinstance(vector, str):
            continue
        if not isinstance(vector, list) or not all(map(_is_finite_number, vector)):
            raise ShapeError(f"{where}.embedding is not a list of finite numbers")
    check_optional_usage(data)
    return data


def check_models(data: Any) -> dict[str, Any]:
    """A model list: `data` items that each have a string `id`."""
    if not isinstance(data, dict):
        raise ShapeError("the model list is not a JSON object")
    items = data.get("data")
    if not isinstance(items, list):
        raise ShapeError(f"the model list has no 'data' list: {_show(items)}")
    for ordinal, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise ShapeError(f"data[{ordinal}] is not a model with a string id: {_show(item)}")
    return data


# -- pieces ---------------------------------------------------------------------------------

def _check_choice_head(choice: Any, ordinal: int, where: str) -> None:
    if not isinstance(choice, dict):
        raise ShapeError(f"{where} is not an object: {_show(choice)}")
    _index(choice, ordinal, where)
    choice.setdefault("finish_reason", None)
    opt_text(choice["finish_reason"], f"{where}.finish_reason")


def _index(item: dict[str, Any], ordinal: int, where: str) -> None:
    if item.get("index") is None:
        item["index"] = ordinal  # some compatible servers leave it out
    elif not isinstance(item["index"], int) or isinstance(item["index"], bool) or item["index"] < 0:
        raise ShapeError(f"{where}.index is not an index: {_show(item['index'])}")


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise ShapeError(f"{where} is not an object: {_show(message)}")
    if message.get("role") is None:
        message["role"] = "assistant"
    opt_text(message["role"], f"{where}.role")
    message.setdefault("content", None)
    opt_text(message["content"], f"{where}.content")
    _check_tool_calls(message.get("tool_calls"), f"{where}.tool_calls")


def _check_tool_calls(calls: Any, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise ShapeError(f"{where} is not a list: {_show(calls)}")
    for i, call in enumerate(calls):
        if not isinstance(call, dict):
            raise ShapeError(f"{where}[{i}] is not an object: {_show(call)}")
        fn = call.get("function")
        if fn is None:
            continue
        if not isinstance(fn, dict):
            raise ShapeError(f"{where}[{i}].function is not an object: {_show(fn)}")
        opt_text(fn.get("name"), f"{where}[{i}].function.name")
        opt_text(fn.get("arguments"), f"{where}[{i}].function.arguments")


def check_optional_usage(data: dict[str, Any]) -> None:
    """`data["usage"]`, when there is one, checked as `check_usage` does."""
    if data.get("usage") is not None:
        check_usage(data["usage"])


def _is_finite_number(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int


def _show(value: Any) -> str:
    """A short description of a bad value for a message: its type, and the value when small."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40])
    return type(value).__name__
