"""make_storage: a connector by name, from its configuration mapping."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import BaseStorage

__all__ = ["make_storage", "CONNECTORS"]

_COMMON = ("lease", "retry_interval")
# connector -> (required keys, optional keys)
_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "memory": ((), _COMMON),
    "file": (("path",), _COMMON),
    "sqlite": (("path",), (*_COMMON, "timeout")),
    "redis": (("url",), (*_COMMON, "prefix", "default_ttl", "socket_timeout")),
}
CONNECTORS = tuple(_KEYS)


def make_storage(connector: str, config: Mapping[str, Any] | None = None) -> BaseStorage:
    """The storage connector `connector` ("memory", "file", "sqlite" or "redis") made from `config`.

    "file" and "sqlite" need `path`, "redis" needs `url` (and takes `prefix`, `default_ttl`,
    `socket_timeout`); all take `lease` and `retry_interval`. A key the connector does not know
    is a ValueError, so that a misspelt option is not silently ignored.
    """
    if connector not in _KEYS:
        raise ValueError(f"unknown storage connector {connector!r}: choose one of {', '.join(CONNECTORS)}")
    options = dict(config or {})
    required, optional = _KEYS[connector]
    missing = [k for k in required if k not in options]
    if missing:
        raise ValueError(f"storage connector {connector!r} needs {', '.join(missing)} in its configuration")
    unknown = sorted(set(options) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"storage connector {connector!r} does not take {', '.join(map(repr, unknown))}; "
                         f"it takes {', '.join(required + optional)}")
    if connector == "memory":
        from ._memory import MemoryStorage

        return MemoryStorage(**options)
    if connector == "file":
        from ._file import FileStorage

        return FileStorage(options.pop("path"), **options)
    if connector == "sqlite":
        from ._sqlite import SQLiteStorage

        return SQLiteStorage(options.pop("path"), **options)
    from ._redis import RedisStorage

    return RedisStorage(options.pop("url"), **options)
