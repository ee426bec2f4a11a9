"""Response objects that read like the OpenAI SDK's.

How it works: a response is the OpenAI-shaped dict a codec produced, and `MeshObject` wraps it
without copying; every read goes to that dict. There is one class per SDK type (`ChatCompletion`,
`Choice`, `ChatCompletionMessage`, ...), made at import from the table in `_response_fields`, so an
object knows the fields its SDK type declares: a declared field the payload lacks reads as None,
any other missing name raises AttributeError, a field whose SDK value is another object comes back
wrapped in that type's class, and everything else (scalars, lists of numbers, dict-typed fields,
fields the SDK does not declare) comes back as the plain value, as the SDK keeps it. Nothing is
cached: a wrapper is one small allocation, made when read.

`model_dump()` and friends walk the dict with the same table (declared fields in the SDK's order,
absent ones as None unless `exclude_unset`, then the rest) and so print what the SDK prints for the
same payload. `as_plain()` turns response objects back into JSON data on their way into a request,
as the SDK does with its own. `ServedBy` says where a response came from.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ._response_fields import TAGS, TYPES

__all__ = ["MeshObject", "ChatCompletion", "ChatCompletionChunk", "CreateEmbeddingResponse", "Model", "SyncPage",
           "ServedBy", "as_plain"]

_LEAVES = frozenset({str, int, float, bool, type(None)})


class _Children(dict):
    """Field name -> the class of the objects in it; None (a plain value) for every other name."""

    __slots__ = ()

    def __missing__(self, key: str) -> None:
        return None


class _OpenChildren(dict):
    """An object of no known type: every dict in it is another such object."""

    __slots__ = ()

    def __missing__(self, key: str) -> type[MeshObject]:
        return MeshObject


class _Union:
    """A field that holds one of several types, told apart by one field's value (`type`)."""

    __slots__ = ("tag", "members", "first")

    def __init__(self, tag: str, members: dict[Any, type[MeshObject]]) -> None:
        self.tag = tag
        self.members = members
        self.first = next(iter(members.values()))  # a payload without the tag reads as the first

    def pick(self, data: dict[str, Any]) -> type[MeshObject]:
        try:
            return self.members.get(data.get(self.tag), self.first)
        except TypeError:  # a tag that is no string (a list, a dict): not one of ours either
            return self.first


class MeshObject:
    """An OpenAI-shaped object over its JSON dict: `r.choices[0].message.content`, `r["choices"]`,
    `dict(r)`, `model_dump()`, `model_dump_json()`, `to_dict()`, `to_json()`. Setting an attribute
    sets the field. A MeshObject made from a bare dict knows no declared fields: it reads what the
    dict holds."""

    __slots__ = ("_data",)
    _data: dict[str, Any]
    _key: ClassVar[str | None] = None             # the type's name in _response_fields.TYPES
    _order: ClassVar[tuple[str, ...]] = ()        # the declared fields, in the SDK's order
    _fields: ClassVar[frozenset[str]] = frozenset()
    _optional: ClassVar[frozenset[str]] = frozenset()  # declared with a None default
    _children: ClassVar[dict[str, Any]] = _OpenChildren()

    def __init__(self, data: dict[str, Any]) -> None:
        _set_data(self, data)

    def __getattr__(self, name: str) -> Any:  # a name the class lacks: a field its SDK type does not declare
        if name == "_data":  # not set yet (an object made by __new__ alone): no endless recursion
            raise AttributeError(name)
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}") from None
        return self._read(name, value)

    def _read(self, name: str, value: Any) -> Any:
        kind = type(value)
        if kind is dict or kind is list:
            child = self._children[name]
            if child is not None:
                if kind is dict:
                    return _wrap(child, value)
                return [_wrap(child, v) if type(v) is dict else v for v in value]
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._fields or not hasattr(type(self), name):
            self._data[name] = value
        else:  # a slot (`mesh`) or a property of ours
            object.__setattr__(self, name, value)

    def __getitem__(self, key: str) -> Any:
        return self._read(key, self._data[key])

    def get(self, key: str, default: Any = None) -> Any:
        data = self._data
        return self._read(key, data[key]) if key in data else default

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """(field, value) pairs, as a pydantic model gives them: `dict(r)` works."""
        for name in self._order:
            yield name, getattr(self, name)
        fields = self._fields
        for name, value in list(self._data.items()):
            if name not in fields:
                yield name, self._read(name, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeshObject) and other._data == self._data

    __hash__ = None  # type: ignore[assignment]  # mutable, like the SDK's models

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._key, self._data))

    def __repr__(self) -> str:
        kind = type(self).__name__ if self._key else (self._data.get("object") or type(self).__name__)
        return f"<{kind} {json.dumps(self._data, default=repr)[:200]}>"

    # -- the SDK's serialisers -----------------------------------------------------------------
    def model_dump(
        self,
        *,
        mode: str = "python",
        include: Any = None,
        exclude: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        exclude_computed_fields: bool = False,
        round_trip: bool = False,
        warnings: Any = True,
        fallback: Callable[[Any], Any] | None = None,
        serialize_as_any: bool = False,
    ) -> dict[str, Any]:
        """A new dict, as the SDK's `model_dump` gives it for the same payload. The payload is JSON
        data already and no field has an alias, so `mode` and `by_alias` change nothing; `context`,
        `round_trip`, `warnings`, `serialize_as_any` and `exclude_computed_fields` neither (there is
        nothing for them to act on)."""
        if mode not in ("python", "json"):
            raise ValueError("mode must be either 'json' or 'python'")
        how = _How(exclude_unset, exclude_defaults, exclude_none, fallback)
        return _dump_object(type(self), self._data, _spec(include), _spec(exclude), how)

    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        ensure_ascii: bool = False,
        include: Any = None,
        exclude: Any = None,
        context: Any = None,
        by_alias: bool | None = None,
        exclude_unset: bool = False,
        exclude_defaults: bool = False,
        exclude_none: bool = False,
        exclude_computed_fields: bool = False,
        round_trip: bool = False,
        warnings: Any = True,
        fallback: Callable[[Any], Any] | None = None,
        serialize_as_any: bool = False,
    ) -> str:
        """`model_dump()` as JSON: compact, or indented by `indent`, as pydantic writes it."""
        data = self.model_dump(include=include, exclude=exclude, exclude_unset=exclude_unset,
                               exclude_defaults=exclude_defaults, exclude_none=exclude_none, fallback=fallback)
        separators = (",", ":") if indent is None else (",", ": ")
        return json.dumps(data, indent=indent, ensure_ascii=ensure_ascii, separators=separators)

    def to_dict(self, *, mode: str = "python", use_api_names: bool = True, exclude_unset: bool = True,
                exclude_defaults: bool = False, exclude_none: bool = False, warnings: Any = True) -> dict[str, Any]:
        """The SDK's `to_dict`: by default only the fields the payload has."""
        return self.model_dump(mode=mode, exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                               exclude_none=exclude_none)

    def to_json(self, *, indent: int | None = 2, use_api_names: bool = True, exclude_unset: bool = True,
                exclude_defaults: bool = False, exclude_none: bool = False, warnings: Any = True) -> str:
        """The SDK's `to_json`: indented by 2, only the fields the payload has."""
        return self.model_dump_json(indent=indent, exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                                    exclude_none=exclude_none)


_new = object.__new__
_set_data: Callable[[MeshObject, dict[str, Any]], None] = MeshObject.__dict__["_data"].__set__


def _wrap(cls: Any, data: dict[str, Any]) -> MeshObject:
    if type(cls) is _Union:
        cls = cls.pick(data)
    obj: MeshObject = _new(cls)
    _set_data(obj, data)
    return obj


class _Served(MeshObject):
    """A response or chunk that also knows where it was served."""

    __slots__ = ("mesh",)

    def __init__(self, data: dict[str, Any], mesh: ServedBy | None = None) -> None:
        _set_data(self, data)
        _set_mesh(self, mesh)

    @property
    def provider(self) -> str | None:
        return self.mesh.provider if self.mesh else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._key, self._data, self.mesh))


_set_mesh: Callable[[_Served, ServedBy | None], None] = _Served.__dict__["mesh"].__set__


class ChatCompletion(_Served):
    __slots__ = ()


class ChatCompletionChunk(_Served):
    __slots__ = ()


class CreateEmbeddingResponse(_Served):
    __slots__ = ()


class Model(MeshObject):
    __slots__ = ()


class SyncPage(MeshObject):
    """A list page (`client.models.list()`): iterating it gives its items, as the SDK's page does.
    The mesh answers with one page: there is never a next one."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.data)

    def has_next_page(self) -> bool:
        return False

    def iter_pages(self) -> Iterator[SyncPage]:
        yield self


def _restore(key: str | None, data: dict[str, Any], *mesh: ServedBy | None) -> MeshObject:
    cls = _CLASSES[key] if key else MeshObject
    return cls(data, *mesh) if mesh else _wrap(cls, data)


def _build(types: dict[str, tuple[str, ...]], tags: dict[str, tuple[str, str]]) -> dict[str, type[MeshObject]]:
    """One class per type of the table, its fields set from its entry."""
    given = {cls.__name__: cls for cls in (ChatCompletion, ChatCompletionChunk, CreateEmbeddingResponse, Model, SyncPage)}
    classes: dict[str, type[MeshObject]] = {
        key: given.get(key) or type(key.rsplit(".", 1)[-1], (MeshObject,), {"__slots__": (), "__module__": __name__})
        for key in types}
    for key, specs in types.items():
        order, optional, children = [], set(), _Children()
        for spec in specs:
            name, _, child = spec.partition(":")
            if name.endswith("?"):
                name = name[:-1]
                optional.add(name)
            order.append(name)
            if child:
                members = child.split("|")
                children[name] = classes[child] if len(members) == 1 else \
                    _Union(tags[members[0]][0], {tags[m][1]: classes[m] for m in members})
        cls = classes[key]
        cls._key, cls._order, cls._fields = key, tuple(order), frozenset(order)
        cls._optional, cls._children = frozenset(optional), children
        for name in order:
            setattr(cls, name, _field(name, children[name]))
    return classes


def _field(name: str, child: Any) -> property:
    """The attribute of a declared field. A property, not `__getattr__`: it is found by the normal
    lookup, and a failed lookup (which `__getattr__` needs first) costs several times the read."""
    if child is None:
        def read(self: MeshObject) -> Any:
            return self._data.get(name)
    elif type(child) is _Union:
        def read(self: MeshObject) -> Any:
            value: Any = self._data.get(name)
            kind = type(value)
            if kind is dict:
                return _wrap(child, value)
            if kind is list:
                return [_wrap(child, v) if type(v) is dict else v for v in value]
            return value
    else:
        def read(self: MeshObject) -> Any:
            value: Any = self._data.get(name)
            kind = type(value)
            if kind is dict:
                obj = _new(child)
                _set_data(obj, value)
                return obj
            if kind is list:
                return [_wrap(child, v) if type(v) is dict else v for v in value]
            return value
    return property(read)


_CLASSES = _build(TYPES, TAGS)


# -- dumping ---------------------------------------------------------------------------------------
class _How:
    """The flags of one dump."""

    __slots__ = ("exclude_unset", "exclude_defaults", "exclude_none", "fallback")

    def __init__(self, exclude_unset: bool, exclude_defaults: bool, exclude_none: bool,
                 fallback: Callable[[Any], Any] | None) -> None:
        self.exclude_unset = exclude_unset
        self.exclude_defaults = exclude_defaults
        self.exclude_none = exclude_none
        self.fallback = fallback


def _spec(spec: Any) -> Any:
    """An `include`/`exclude` argument as nested dicts whose leaves are True (pydantic's forms:
    a set of names or indexes, or a dict of them to True, `...` or another such argument)."""
    if spec is None or spec is True or spec is Ellipsis:
        return None if spec is None else True
    if isinstance(spec, (set, frozenset, list, tuple)):
        return dict.fromkeys(spec, True)
    if isinstance(spec, dict):
        return {k: _spec(v) for k, v in spec.items() if v is not None and v is not False}
    raise TypeError(f"include/exclude must be a set or a dict, got {type(spec).__name__}")


def _merge(own: Any, every: Any) -> Any:
    """A key's own include/exclude entry with the `__all__` entry beside it, as pydantic merges
    them: two specs unite; when either is True the key's own entry wins."""
    if every is None:
        return own
    if own is None:
        return every
    if type(own) is dict and type(every) is dict:
        return {k: _merge(own.get(k), every.get(k)) for k in own.keys() | every.keys()}
    return own


def _filters(include: Any, exclude: Any, key: Any) -> tuple[bool, Any, Any]:
    """Whether `key` is kept, and the include and exclude for what is under it."""
    inc = exc = None
    if include is True or exclude is True:
        return exclude is not True, None, None
    if include is not None:
        inc = _merge(include.get(key), include.get("__all__"))
        if inc is None:
            return False, None, None
        if inc is True:
            inc = None
    if exclude is not None:
        exc = _merge(exclude.get(key), exclude.get("__all__"))
        if exc is True:
            return False, None, None
    return True, inc, exc


def _by_index(spec: Any, size: int) -> Any:
    """A list's include/exclude with negative indexes counted from its end, as pydantic counts
    them: of two entries for one item, the later wins."""
    if type(spec) is not dict or not any(type(k) is int and k < 0 for k in spec):
        return spec
    return {(k + size if type(k) is int and k < 0 else k): v for k, v in spec.items()}


def _dump_object(cls: type[MeshObject], data: dict[str, Any], include: Any, exclude: Any, how: _How) -> dict[str, Any]:
    fields = cls._fields
    names = [n for n in cls._order if n in data] if how.exclude_unset else list(cls._order)
    names += [n for n in data if n not in fields]
    children, optional = cls._children, cls._optional
    out = {}
    for name in names:
        keep, inc, exc = _filters(include, exclude, name)
        if not keep:
            continue
        value = data.get(name)
        if value is None and (how.exclude_none or (how.exclude_defaults and name in optional)):
            continue
        out[name] = _dump_value(children[name], value, inc, exc, how)
    return out


def _dump_value(child: Any, value: Any, include: Any, exclude: Any, how: _How) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        if child is None:  # a dict-typed field or one the SDK does not declare: a plain dict there too
            out = {}
            for k, v in value.items():
                keep, inc, exc = _filters(include, exclude, k)
                if keep:
                    out[k] = _dump_value(None, v, inc, exc, how)
            return out
        if type(child) is _Union:
            child = child.pick(value)
        return _dump_object(child, value, include, exclude, how)
    if kind is list or kind is tuple:
        items = []
        include, exclude = _by_index(include, len(value)), _by_index(exclude, len(value))
        for i, v in enumerate(value):
            keep, inc, exc = _filters(include, exclude, i)
            if keep:
                items.append(_dump_value(child, v, inc, exc, how))
        return items
    if isinstance(value, MeshObject):  # one the caller set into another
        return _dump_object(type(value), value._data, include, exclude, how)
    dump = getattr(value, "model_dump", None)
    if dump is not None:  # a pydantic model (the SDK's own objects)
        return dump(mode="json", include=include, exclude=exclude, exclude_unset=how.exclude_unset,
                    exclude_defaults=how.exclude_defaults, exclude_none=how.exclude_none)
    return how.fallback(value) if how.fallback is not None else value


# -- requests -------------------------------------------------------------------------------------
def as_plain(value: Any) -> Any:
    """`value` with every response object in it replaced by its JSON data: ours, and anything with
    a pydantic `model_dump` (the SDK's objects) dumped as the SDK sends them (fields set only).
    Returns `value` itself when there is none, and copies only the containers on the way to one.
    For plain data it is a walk of type checks; a dict of plain values (a message) is checked
    in place rather than by a call, which halves the walk of a conversation."""
    kind = type(value)
    if kind is dict:
        pairs: Any = value.items()
    elif kind is list or kind is tuple:
        pairs = enumerate(value)
    else:
        pairs = None
    if pairs is not None:
        out: Any = None
        for k, v in pairs:
            t = type(v)
            if t in _LEAVES:
                continue
            if t is dict:
                for x in v.values():
                    if type(x) not in _LEAVES:
                        break
                else:
                    continue
            p = as_plain(v)
            if p is not v:
                if out is None:
                    out = dict(value) if kind is dict else list(value)
                out[k] = p
        return value if out is None else out
    if kind in _LEAVES:
        return value
    if isinstance(value, MeshObject):
        return as_plain(value._data)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return as_plain(dump(mode="json", exclude_unset=True))
    return value


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

