"""Secret stores: where `${secrets:NAME}` references in the configuration are resolved.

Theory of operation: a store answers one question, `get(name) -> str | None`. Three
ship here: the process environment (`EnvSecretStore`), a `.env` / JSON / TOML file
(`DotenvSecretStore`) and a dictionary (`MemorySecretStore`, for tests and
notebooks). A name is looked up as written and then in environment-variable spelling
(`proxy-key` -> `PROXY_KEY`), so `${secrets:openai-key}` finds `OPENAI_KEY`.

Found values are cached for `cache_ttl` seconds (a `cachetools.TTLCache` behind a
lock, since one client is shared by many threads); misses are never cached, so a key
added later is picked up at once. The file store re-reads its file when the file's
modification time changes, which is how a rotated key reaches a running process.

Secret values never appear in exceptions or reprs raised from here.
"""
from __future__ import annotations

import abc
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypedDict

from cachetools import TTLCache

from modelmesh._core._config_schema import SecretsConfig
from modelmesh._core._errors import ConfigurationError

__all__ = [
    "SecretStore",
    "EnvSecretStore",
    "DotenvSecretStore",
    "MemorySecretStore",
    "make_secret_store",
    "parse_dotenv",
]


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...


def _spellings(name: str) -> tuple[str, ...]:
    env_style = name.upper().replace("-", "_").replace(".", "_")
    return (name,) if env_style == name else (name, env_style)


class _CacheOptions(TypedDict, total=False):
    """The keyword arguments every store passes on to `_CachingStore`."""

    cache_enabled: bool
    cache_ttl: float
    timer: Callable[[], float]


class _CachingStore(abc.ABC):
    """Name normalisation and TTL caching shared by every store; subclasses `_lookup`."""

    def __init__(self, *, cache_enabled: bool = True, cache_ttl: float = 300.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._cache: TTLCache | None = None
        if cache_enabled and cache_ttl > 0:
            self._cache = TTLCache(maxsize=1024, ttl=cache_ttl, timer=timer)

    def get(self, name: str) -> str | None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a secret name must be a non-empty string")
        if self._cache is not None:
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None:
                return cached
        value = next((v for v in map(self._lookup, _spellings(name)) if v), None)
        if value is not None and self._cache is not None:
            with self._lock:
                self._cache[name] = value
        return value

    def clear_cache(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    @abc.abstractmethod
    def _lookup(self, name: str) -> str | None:
        """The value stored under exactly `name`, or None."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EnvSecretStore(_CachingStore):
    """Secrets from environment variables (read at lookup time, not at construction)."""

    def __init__(self, environ: Mapping[str, str] | None = None, **cache: Any) -> None:
        super().__init__(**cache)
        self._environ = os.environ if environ is None else environ

    def _lookup(self, name: str) -> str | None:
        return self._environ.get(name) or None


class MemorySecretStore(_CachingStore):
    """Secrets held in a dictionary; also supports set/delete/list (the seed's management)."""

    def __init__(self, values: Mapping[str, str] | None = None, **cache: Any) -> None:
        super().__init__(**cache)
        self._values = dict(values or {})

    def _lookup(self, name: str) -> str | None:
        return self._values.get(name) or None

    def set(self, name: str, value: str) -> None:
        self._values[name] = value
        self.clear_cache()

    def delete(self, name: str) -> None:
        self._values.pop(name, None)
        self.clear_cache()

    def list(self) -> tuple[str, ...]:
        return tuple(self._values)


class DotenvSecretStore(_CachingStore):
    """Secrets from a `.env` file (KEY=VALUE lines), a JSON object file or a TOML file.

    Nested JSON/TOML tables are flattened with dots: `{"openai": {"key": ...}}` is
    `openai.key`. The file is parsed again whenever its modification time changes.
    """

    def __init__(self, path: str | os.PathLike[str], **cache: Any) -> None:
        super().__init__(**cache)
        self.path = Path(path)
        self._stamp: float | None = None
        self._values: dict[str, str] = {}
        self._load()  # a missing or unreadable file is an error now, not at first use

    def _load(self) -> None:
        stamp = self.path.stat().st_mtime_ns
        if stamp == self._stamp:
            return
        text = self.path.read_text(encoding="utf-8")
        self._values = _parse_secret_file(text, self.path.suffix.lower())
        self._stamp = stamp

    def _lookup(self, name: str) -> str | None:
        try:
            with self._lock:
                self._load()
        except OSError:
            pass  # the file vanished mid-rotation: keep serving what was last read
        return self._values.get(name) or None

    def __repr__(self) -> str:
        return f"DotenvSecretStore(path={str(self.path)!r})"


def _parse_secret_file(text: str, suffix: str) -> dict[str, str]:
    if suffix == ".json" or (suffix != ".toml" and text.lstrip().startswith("{")):
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a JSON secrets file must hold an object")
        return _flatten(data)
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
            return _flatten(tomllib.loads(text))
        raise ValueError("TOML secret files need Python 3.11 or later")
    return parse_dotenv(text)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            out[name] = str(value)
    return out


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=VALUE` lines; `export`, comments, blank lines and quoted values are understood."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"line {number}: expected KEY=VALUE")  # never echo the line
        values[key] = _dotenv_value(value.strip())
    return values


def _dotenv_value(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        inner = raw[1:-1]
        if raw[0] == '"':
            inner = inner.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return inner
    if raw and raw[0] in "\"'" and raw[0] in raw[1:]:  # quoted value followed by a comment
        return raw[1:raw.index(raw[0], 1)]
    comment = raw.find(" #")
    return raw[:comment].rstrip() if comment >= 0 else raw


def make_secret_store(secrets_config: SecretsConfig | None,
                      base_dir: str | os.PathLike[str] | None = None) -> SecretStore:
    """The store a `secrets:` section describes; relative paths are taken from `base_dir`.

    A custom store (`store: "package.module:Class"`) is called with the SecretsConfig.
    Problems (missing file, unreadable file, bad class) raise ConfigurationError.
    """
    config = secrets_config or SecretsConfig()
    cache: _CacheOptions = {"cache_enabled": config.cache_enabled, "cache_ttl": config.cache_ttl}
    if config.store == "env":
        return EnvSecretStore(**cache)
    if config.store == "memory":
        return MemorySecretStore(config.values, **cache)
    if config.store in ("file", "dotenv"):
        if not config.path:
            raise ConfigurationError([f"secrets.path: required for the {config.store!r} store"])
        path = Path(base_dir or ".") / Path(config.path).expanduser()
        try:
            return DotenvSecretStore(path, **cache)
        except FileNotFoundError:
            problem = f"secrets.path: secrets file not found: {path}"
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            problem = f"secrets.path: cannot read secrets file {path}: {_describe(exc)}"
        raise ConfigurationError([problem])
    return _custom_store(config)


def _describe(exc: Exception) -> str:
    """Say what is wrong with the file without quoting its content."""
    if isinstance(exc, json.JSONDecodeError):  # its msg is generic, its doc is the secrets
        return f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)  # our own and tomllib's messages name positions, never values


def _custom_store(config: SecretsConfig) -> SecretStore:
    module_name, _, attr = config.store.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            [f"secrets.store: cannot import {config.store!r} ({type(exc).__name__}: {exc})"]
        ) from None
    store = factory(config)
    if not callable(getattr(store, "get", None)):
        raise ConfigurationError([f"secrets.store: {config.store!r} has no get(name) method"])
    return store
