"""Response objects that read like the OpenAI SDK's.

`MeshObject` wraps the OpenAI-shaped dicts the codecs produce: attribute access
(`r.choices[0].message.content`), item access, `model_dump()` / `to_dict()` and
`model_dump_json()`. Missing optional fields read as None, as they do on the SDK's
pydantic models. `ServedBy` says where a response came from.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MeshObject", "ServedBy", "wrap"]


class MeshObject:
    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:  # only for names the class lacks: the payload's fields
        value = self._data.get(name)
        kind = type(value)
        if kind is dict:
            return MeshObject(value)
        if kind is list:
            return [wrap(v) for v in value]
        if value is None:
            if name[:2] == "__":  # copy, pickle and friends probe for dunders
                raise AttributeError(name)
            return None
        return wrap(value) if isinstance(value, (dict, list)) else value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).__dict__.get("__annotations__", {}) or hasattr(type(self), name):
            object.__setattr__(self, name, value)
        else:
            self._data[name] = value

    def __getitem__(self, key: str) -> Any:
        return wrap(self._data[key])

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeshObject) and other._data == self._data

    def get(self, key: str, default: Any = None) -> Any:
        return wrap(self._data.get(key, default))

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))

    to_dict = model_dump

    def model_dump_json(self, **kw: Any) -> str:
        return json.dumps(self._data, **kw)

    def __repr__(self) -> str:
        kind = self._data.get("object") or type(self).__name__
        return f"<{kind} {json.dumps(self._data)[:200]}>"


class _Served(MeshObject):
    """A response or chunk that also knows where it was served."""

    __slots__ = ("mesh",)

    def __init__(self, data: dict[str, Any], mesh: ServedBy | None = None) -> None:
        super().__init__(data)
        object.__setattr__(self, "mesh", mesh)

    @property
    def provider(self) -> str | None:
        return self.mesh.provider if self.mesh else None


class ChatCompletion(_Served):
    pass


class ChatCompletionChunk(_Served):
    pass


class CreateEmbeddingResponse(_Served):
    pass


@dataclass(frozen=True, slots=True)
class ServedBy:
    """Where a response came from: provider, model, pool, every attempt, latency (s), cost (USD)."""

    provider: str
    model: str
    pool: str
    request_id: str
    attempts: tuple
    latency: float
    cost: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)  # the serving response's, as sent

    @property
    def failovers(self) -> int:
        return len(self.attempts) - 1


def wrap(value: Any) -> Any:
    kind = type(value)
    if kind is dict or (kind is not list and isinstance(value, dict)):
        return MeshObject(value)
    if kind is list or isinstance(value, list):
        return [wrap(v) for v in value]
    return value
