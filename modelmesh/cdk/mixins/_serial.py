"""SerializationMixin and FileSerializerMixin: json / yaml / msgpack, and atomic file writes.

Theory of operation: the bytes are made by the storage layer's `Serializer` (one per format,
made on first use and kept), so a connector writes exactly what the storage connectors
write: plain data only (a value that is not plain data is a TypeError when written, never
silently a string), yaml through PyYAML's safe dumper, msgpack when its extra is installed.
A format is named (`"json"`, `"yaml"`, `"msgpack"`) or read from a path's suffix
(`.json`, `.yaml`/`.yml`, `.msgpack`/`.mpk`).

`_atomic_write` writes to a temporary file in the target's directory, fsyncs it and moves
it over the target with `os.replace`: at any moment the path names the whole old file or
the whole new one. A failure (or a crash) before the replace leaves the old file as it was,
and the temporary file is removed when the failure is an exception.
"""
from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

from ..._atomic import write_atomically
from ...connectors.storage._serializer import FORMATS, Serializer

__all__ = ["SerializationMixin", "FileSerializerMixin", "SerializationFormat"]


class SerializationFormat(Enum):
    JSON = "json"
    YAML = "yaml"
    MSGPACK = "msgpack"


_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".msgpack": "msgpack", ".mpk": "msgpack"}


def _format_name(format: str | SerializationFormat) -> str:
    name = format.value if isinstance(format, SerializationFormat) else format
    if not isinstance(name, str) or name.lower() not in FORMATS:
        raise ValueError(f"unknown serialization format {format!r}: choose one of {', '.join(FORMATS)}")
    return name.lower()


class SerializationMixin:
    """`_serialize(data, format)` -> bytes and `_deserialize(raw, format)` -> data."""

    _serializers: dict[str, Serializer]

    def _serializer(self, format: str | SerializationFormat) -> Serializer:
        name = _format_name(format)
        cache = self.__dict__.setdefault("_serializers", {})
        if name not in cache:
            cache[name] = Serializer(name)
        return cache[name]

    def _serialize(self, data: Any, format: str | SerializationFormat = "json") -> bytes:
        return self._serializer(format).dumps(data)

    def _deserialize(self, raw: bytes, format: str | SerializationFormat = "json") -> Any:
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"_deserialize takes bytes, got {type(raw).__name__}")
        return self._serializer(format).loads(bytes(raw))

    @staticmethod
    def _format_for(path: str | os.PathLike[str]) -> str:
        """The format a path's suffix names; ValueError naming the path when it names none."""
        suffix = Path(path).suffix.lower()
        if suffix not in _SUFFIXES:
            raise ValueError(f"cannot tell the format of {os.fspath(path)!r} from its suffix: "
                             f"use one of {', '.join(_SUFFIXES)} or pass format=")
        return _SUFFIXES[suffix]


class FileSerializerMixin(SerializationMixin):
    """Serialization plus files: `_write_data(path, data)`, `_read_data(path)`, `_atomic_write`."""

    def _atomic_write(self, path: str | os.PathLike[str], data: bytes) -> None:
        """Replace the file at `path` with `data` all at once (temporary file + os.replace)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"_atomic_write takes bytes, got {type(data).__name__}")
        write_atomically(path, bytes(data))

    def _read_file(self, path: str | os.PathLike[str]) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    def _write_data(self, path: str | os.PathLike[str], data: Any,
                    format: str | SerializationFormat | None = None) -> None:
        """Serialize `data` (format named, else by suffix) and write it atomically."""
        raw = self._serialize(data, format or self._format_for(path))  # serialized first: a bad value writes nothing
        self._atomic_write(path, raw)

    def _read_data(self, path: str | os.PathLike[str], format: str | SerializationFormat | None = None) -> Any:
        return self._deserialize(self._read_file(path), format or self._format_for(path))
