"""Serializer: plain data (dicts, lists, str, numbers, bool, None) to bytes and back.

JSON is the default and needs nothing; YAML (PyYAML's safe dumper and loader) and msgpack are
imported when a Serializer for them is made, with an error that says what to install. With
`compression=True` the bytes are zlib-compressed, and `loads` expects them so. With a
`cipher` (`storage.persistence.encryption`, see `_cipher.py`) they are then encrypted, bound
to the storage key they are written under: `dumps(data, key)` and `loads(raw, key)` must be
given the same key.

Unlike the seed's FileSerializerMixin, which wrote `default=str`, nothing is turned into a
string silently: a value that is not plain data is a TypeError when it is written, not a
surprise when it is read back.
"""
from __future__ import annotations

import importlib
import json
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cipher import Cipher

__all__ = ["Serializer", "FORMATS"]

FORMATS = ("json", "yaml", "msgpack")


class Serializer:
    """Turns plain data into bytes (`dumps`) and back (`loads`) in one `format`."""

    __slots__ = ("format", "compression", "cipher", "_dumps", "_loads")

    def __init__(self, format: str = "json", compression: bool = False, cipher: Cipher | None = None) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown storage format {format!r}: choose one of {', '.join(FORMATS)}")
        if not isinstance(compression, bool):
            raise TypeError(f"compression must be True or False, not {compression!r}")
        self.format = format
        self.compression = compression
        self.cipher = cipher
        if format == "json":
            self._dumps, self._loads = _json_dumps, _json_loads
        elif format == "yaml":
            self._dumps, self._loads = _yaml()
        else:
            self._dumps, self._loads = _msgpack()

    def __repr__(self) -> str:
        return (f"Serializer(format={self.format!r}, compression={self.compression!r}, "
                f"encrypted={self.cipher is not None!r})")

    def dumps(self, data: Any, key: str = "") -> bytes:
        """`data` as bytes to store under `key` (which only an encrypting Serializer reads)."""
        raw: bytes = self._dumps(data)
        if self.compression:
            raw = zlib.compress(raw)
        return raw if self.cipher is None else self.cipher.seal(raw, key)

    def loads(self, raw: bytes, key: str = "") -> Any:
        """The data `dumps(data, key)` wrote; ValueError for anything else."""
        if self.cipher is not None:
            raw = self.cipher.open(raw, key)
        if self.compression:
            try:
                raw = zlib.decompress(raw)
            except zlib.error as exc:
                raise ValueError(f"stored data is not zlib-compressed {self.format} ({exc}); "
                                 "was it written with compression=False?") from None
        try:
            return self._loads(raw)
        except Exception as exc:  # each library has its own parse errors: give one kind
            raise ValueError(f"stored data is not valid {self.format}: {exc}") from None


def _json_dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _json_loads(raw: bytes) -> Any:
    return json.loads(raw.decode("utf-8"))


def _yaml() -> tuple[Any, Any]:
    try:
        import yaml
    except ImportError:
        raise ImportError("the yaml storage format needs PyYAML: pip install pyyaml") from None

    def dumps(data: Any) -> bytes:
        try:
            # not allow_unicode: PyYAML then writes U+0085 and friends raw, and reads them back as line breaks
            text: str = yaml.safe_dump(data, sort_keys=False)
        except yaml.representer.RepresenterError as exc:
            raise TypeError(f"not plain data, cannot be stored as yaml: {exc}") from None
        return text.encode("utf-8")

    def loads(raw: bytes) -> Any:
        return yaml.safe_load(raw.decode("utf-8"))

    return dumps, loads


def _msgpack() -> tuple[Any, Any]:
    try:
        msgpack = importlib.import_module("msgpack")  # untyped: kept out of mypy's sight
    except ImportError:
        raise ImportError("the msgpack storage format needs msgpack: pip install 'modelmesh-lite[msgpack]'") from None

    def dumps(data: Any) -> bytes:
        packed: bytes = msgpack.packb(data, use_bin_type=True)
        return packed

    def loads(raw: bytes) -> Any:
        return msgpack.unpackb(raw, raw=False)

    return dumps, loads
