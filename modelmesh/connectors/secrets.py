"""Secret stores: where `${secrets:NAME}` references in the configuration are resolved.

Theory of operation: a store answers one question, `get(name) -> str | None`. They ship
here: the process environment (`EnvSecretStore`), a `.env` / JSON / TOML file
(`FileSecretStore`, also called `DotenvSecretStore`), a dictionary (`MemorySecretStore`,
for tests and notebooks), an encrypted file (`EncryptedFileSecretStore`: AES-256-GCM under
a key scrypt derives from a passphrase) and the operating system's keyring
(`KeyringSecretStore`). A name is looked up as written and then in environment-variable
spelling (`proxy-key` -> `PROXY_KEY`), so `${secrets:openai-key}` finds `OPENAI_KEY`.

Every store derives from `BaseSecretStore` (the CDK's): a subclass implements `_resolve`,
and for management (`modelmesh secrets set|get|list|delete`) `_names`, `_store` and
`_remove`; a store that does not is read-only, and says so when asked to write.

Found values are cached for `cache_ttl` seconds (a `cachetools.TTLCache` behind a
lock, since one client is shared by many threads); misses are never cached, so a key
added later is picked up at once. The file store re-reads its file when the file's
modification time changes. A running client re-reads the API keys that came from a store
every `cache_ttl` (`SecretRefresher`, below), so a key rotated in the store reaches the
next request after that.

Secret values never appear in exceptions or reprs raised from here.
"""
from __future__ import annotations

import abc
import importlib
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypedDict

from cachetools import TTLCache

from modelmesh._atomic import write_atomically
from modelmesh._core._config_schema import SecretsConfig
from modelmesh._core._errors import ConfigurationError, ModelMeshError

_log = logging.getLogger("modelmesh")

__all__ = [
    "SecretStore",
    "SecretStoreError",
    "BaseSecretStore",
    "EnvSecretStore",
    "FileSecretStore",
    "DotenvSecretStore",
    "MemorySecretStore",
    "EncryptedFileSecretStore",
    "KeyringSecretStore",
    "make_secret_store",
    "SecretRefresher",
    "parse_dotenv",
]


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...


class SecretStoreError(ModelMeshError):
    """A secret store refused or failed an operation (read-only, wrong passphrase, backend
    unavailable). Its message names the store and the secret, never a value."""


def _spellings(name: str) -> tuple[str, ...]:
    env_style = name.upper().replace("-", "_").replace(".", "_")
    return (name,) if env_style == name else (name, env_style)


class _CacheOptions(TypedDict, total=False):
    """The keyword arguments every store passes on to `BaseSecretStore`."""

    cache_enabled: bool
    cache_ttl: float
    timer: Callable[[], float]


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a secret name must be a non-empty string")
    return name


class BaseSecretStore(abc.ABC):
    """A secret store: override `_resolve(name)`; for management also `_names()`,
    `_store(name, value)` and `_remove(name)`.

    `get` tries the name as written and in environment-variable spelling and caches what
    it finds for `cache_ttl` seconds. `list`, `set` and `delete` of a store that does not
    implement them raise SecretStoreError saying the store is read-only."""

    def __init__(self, *, cache_enabled: bool = True, cache_ttl: float = 300.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.RLock()
        self._cache: TTLCache | None = None
        if cache_enabled and cache_ttl > 0:
            self._cache = TTLCache(maxsize=1024, ttl=cache_ttl, timer=timer)

    # -- resolution ---------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        _check_name(name)
        if self._cache is not None:
            with self._lock:
                cached = self._cache.get(name)
            if cached is not None:
                return cached
        value = next((v for v in map(self._resolve, _spellings(name)) if v), None)
        if value is not None and self._cache is not None:
            with self._lock:
                self._cache[name] = value
        return value

    def clear_cache(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()

    @abc.abstractmethod
    def _resolve(self, name: str) -> str | None:
        """The value stored under exactly `name`, or None."""

    # -- management (optional) -------------------------------------------------------------
    @property
    def writable(self) -> bool:
        """Whether this store implements set and delete."""
        return type(self)._store is not BaseSecretStore._store

    def list(self) -> tuple[str, ...]:
        """The names of the secrets held (never their values), sorted."""
        return tuple(sorted(self._names()))

    def set(self, name: str, value: str) -> None:
        _check_name(name)
        if not isinstance(value, str) or not value:
            raise ValueError("a secret value must be a non-empty string")
        with self._lock:
            self._store(name, value)
            self.clear_cache()

    def delete(self, name: str) -> bool:
        """Remove `name`; False when it was not there."""
        _check_name(name)
        with self._lock:
            removed = self._remove(name)
            self.clear_cache()
        return removed

    def _names(self) -> Iterable[str]:
        raise SecretStoreError(f"{self!r} cannot list its secrets; manage them where they are kept")

    def _store(self, name: str, value: str) -> None:
        raise SecretStoreError(f"{self!r} is read-only: it cannot set {name!r}; use a file, encrypted-file, "
                               "keyring or memory store to manage secrets with modelmesh")

    def _remove(self, name: str) -> bool:
        raise SecretStoreError(f"{self!r} is read-only: it cannot delete {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_CachingStore = BaseSecretStore  # the name this class had before it joined the CDK


class EnvSecretStore(BaseSecretStore):
    """Secrets from environment variables (read at lookup time, not at construction). Read-only."""

    def __init__(self, environ: Mapping[str, str] | None = None, **cache: Any) -> None:
        super().__init__(**cache)
        self._environ = os.environ if environ is None else environ

    def _resolve(self, name: str) -> str | None:
        return self._environ.get(name) or None


class MemorySecretStore(BaseSecretStore):
    """Secrets held in a dictionary; also supports set/delete/list (the seed's management)."""

    def __init__(self, values: Mapping[str, str] | None = None, **cache: Any) -> None:
        super().__init__(**cache)
        self._values = dict(values or {})

    def _resolve(self, name: str) -> str | None:
        return self._values.get(name) or None

    def _names(self) -> Iterable[str]:
        return self._values

    def _store(self, name: str, value: str) -> None:
        self._values[name] = value

    def _remove(self, name: str) -> bool:
        return self._values.pop(name, None) is not None


class FileSecretStore(BaseSecretStore):
    """Secrets from a `.env` file (KEY=VALUE lines), a JSON object file or a TOML file,
    chosen by suffix (`.json`, `.toml`, anything else is `.env`).

    Nested JSON/TOML tables are flattened with dots: `{"openai": {"key": ...}}` is
    `openai.key`. The file is parsed again whenever its modification time changes. `set`
    and `delete` rewrite the file atomically (a new file is made readable by its owner
    only): a `.env` file keeps its other lines and comments, a JSON file its structure; a
    TOML file is rewritten as flat quoted keys (comments are not kept).
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False, **cache: Any) -> None:
        super().__init__(**cache)
        self.path = Path(path)
        self._stamp: int | None = None
        self._values: dict[str, str] = {}
        if create and not self.path.exists():
            return
        self._load()  # a missing or unreadable file is an error now, not at first use

    @property
    def _suffix(self) -> str:
        return self.path.suffix.lower()

    def _load(self) -> None:
        stamp = self.path.stat().st_mtime_ns
        if stamp == self._stamp:
            return
        text = self.path.read_text(encoding="utf-8")
        self._values = _parse_secret_file(text, self._suffix)
        self._stamp = stamp

    def _resolve(self, name: str) -> str | None:
        try:
            with self._lock:
                self._load()
        except OSError:
            pass  # the file vanished mid-rotation: keep serving what was last read
        return self._values.get(name) or None

    def _names(self) -> Iterable[str]:
        with self._lock:
            self._reload_for_write()
            return list(self._values)

    def _reload_for_write(self) -> None:
        try:
            self._load()
        except FileNotFoundError:
            self._values, self._stamp = {}, None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise SecretStoreError(f"cannot read secrets file {self.path}: {_describe(exc)}") from None

    def _store(self, name: str, value: str) -> None:
        self._rewrite(name, value)

    def _remove(self, name: str) -> bool:
        self._reload_for_write()
        if name not in self._values:
            return False
        self._rewrite(name, None)
        return True

    def _rewrite(self, name: str, value: str | None) -> None:
        self._reload_for_write()
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        if self._suffix == ".json":
            out = _json_with(text, name, value)
        elif self._suffix == ".toml":
            values = dict(self._values)
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
            out = "".join(f"{_toml_string(k)} = {_toml_string(v)}\n" for k, v in values.items())
        else:
            out = _dotenv_with(text, name, value)
        write_private(self.path, out.encode("utf-8"))
        self._stamp = None
        self._load()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r})"


DotenvSecretStore = FileSecretStore  # its first name: `store: dotenv` and `store: file` are this store


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a temporary file renamed over it); a file made
    here is readable by its owner only, an existing one keeps its permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, data, mode=path.stat().st_mode & 0o777 if path.exists() else 0o600)


def _dotenv_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _dotenv_with(text: str, name: str, value: str | None) -> str:
    """`text` (a .env file) with `name` set to `value` (None: removed); other lines kept."""
    lines, done = [], False
    for line in text.splitlines():
        bare = line.strip()
        if bare.startswith("export "):
            bare = bare[len("export "):].lstrip()
        key = bare.partition("=")[0].strip() if "=" in bare and not bare.startswith("#") else None
        if key == name:
            if value is not None and not done:
                lines.append(f"{name}={_dotenv_quote(value)}")
            done = True
            continue
        lines.append(line)
    if value is not None and not done:
        lines.append(f"{name}={_dotenv_quote(value)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _json_with(text: str, name: str, value: str | None) -> str:
    """`text` (a JSON secrets file) with `name` set (None: removed). A dotted name that
    runs through existing objects is set inside them; otherwise it is a top-level key."""
    data = json.loads(text) if text.strip() else {}
    if not isinstance(data, dict):
        raise SecretStoreError("a JSON secrets file must hold an object")
    holder, leaf = data, name
    if name not in data and "." in name:
        parts = name.split(".")
        node: Any = data
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            holder, leaf = node, parts[-1]
    if value is None:
        holder.pop(leaf, None)
    else:
        holder[leaf] = value
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


class EncryptedFileSecretStore(BaseSecretStore):
    """Secrets in one file encrypted with AES-256-GCM under a key derived from a passphrase
    by scrypt (the `cryptography` package: the `encryption` extra).

    The file is JSON: `{"format": "modelmesh-secrets", "version": 1, "kdf": {"name":
    "scrypt", "n", "r", "p", "salt"}, "cipher": "AES-256-GCM", "nonce", "ciphertext"}`
    (bytes in base64). The header is authenticated with the ciphertext, so neither can be
    changed unnoticed; every write takes a fresh nonce. The plaintext is a JSON object of
    name -> value. A wrong passphrase (or an altered file) is a SecretStoreError saying so.
    """

    FORMAT = "modelmesh-secrets"
    VERSION = 1
    SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
    _MAX_N = 2 ** 20  # a file asking for more memory than this (1 GiB) is refused, not obeyed

    def __init__(self, path: str | os.PathLike[str], passphrase: str, *, create: bool = False, **cache: Any) -> None:
        super().__init__(**cache)
        if not isinstance(passphrase, str) or not passphrase:
            raise SecretStoreError("the encrypted-file secret store needs a non-empty passphrase")
        self.path = Path(path)
        self._passphrase = passphrase.encode("utf-8")
        # (salt, n, r, p, key) of the file: scrypt is slow on purpose, so it runs once per file
        self._derived: tuple[bytes, int, int, int, bytes] | None = None
        self._stamp: int | None = None
        self._values: dict[str, str] = {}
        if create and not self.path.exists():
            return
        self._load()

    def __repr__(self) -> str:
        return f"EncryptedFileSecretStore(path={str(self.path)!r})"

    def _key(self, salt: bytes, n: int, r: int, p: int) -> bytes:
        if self._derived is not None and self._derived[:4] == (salt, n, r, p):
            return self._derived[4]
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

        key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(self._passphrase)
        self._derived = (salt, n, r, p, key)
        return key

    def _load(self) -> None:
        stamp = self.path.stat().st_mtime_ns
        if stamp == self._stamp:
            return
        self._values = self._decrypt(self.path.read_bytes())
        self._stamp = stamp

    def _decrypt(self, raw: bytes) -> dict[str, str]:
        import base64

        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        where = str(self.path)
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != self.FORMAT:
                raise ValueError("not a modelmesh encrypted secrets file")
            if doc.get("version") != self.VERSION:
                raise ValueError(f"format version {doc.get('version')!r} is not one this version reads "
                                 f"({self.VERSION})")
            kdf = doc["kdf"]
            if kdf.get("name") != "scrypt" or doc.get("cipher") != "AES-256-GCM":
                raise ValueError("unknown key derivation or cipher")
            n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
            if not (1 < n <= self._MAX_N and n & (n - 1) == 0 and 0 < r <= 64 and 0 < p <= 16):
                raise ValueError("scrypt parameters out of range")
            salt, nonce = base64.b64decode(kdf["salt"]), base64.b64decode(doc["nonce"])
            ciphertext = base64.b64decode(doc["ciphertext"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reason = "invalid JSON" if isinstance(exc, json.JSONDecodeError) else \
                str(exc) if isinstance(exc, ValueError) else "a field is missing or malformed"
            raise SecretStoreError(f"{where}: cannot read the encrypted secrets file ({reason})") from None
        try:
            plain = AESGCM(self._key(salt, n, r, p)).decrypt(nonce, ciphertext, self._header(kdf))
        except InvalidTag:
            raise SecretStoreError(f"{where}: wrong passphrase for the encrypted secrets file "
                                   "(or the file was altered)") from None
        try:
            values = json.loads(plain)
        except ValueError:
            values = None
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise SecretStoreError(f"{where}: the decrypted secrets are not an object of names to strings")
        return values

    def _header(self, kdf: Mapping[str, Any]) -> bytes:
        return json.dumps({"format": self.FORMAT, "version": self.VERSION, "kdf": dict(kdf),
                           "cipher": "AES-256-GCM"}, sort_keys=True, separators=(",", ":")).encode()

    def _encrypt(self, values: Mapping[str, str]) -> bytes:
        import base64

        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if self._derived is not None:  # the file's own salt and parameters, so its key is derived once
            salt, n, r, p = self._derived[:4]
        else:
            salt, n, r, p = os.urandom(16), self.SCRYPT_N, self.SCRYPT_R, self.SCRYPT_P
        kdf = {"name": "scrypt", "n": n, "r": r, "p": p, "salt": base64.b64encode(salt).decode()}
        nonce = os.urandom(12)
        sealed = AESGCM(self._key(salt, n, r, p)).encrypt(
            nonce, json.dumps(dict(values), ensure_ascii=False).encode("utf-8"), self._header(kdf))
        doc = {"format": self.FORMAT, "version": self.VERSION, "kdf": kdf, "cipher": "AES-256-GCM",
               "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(sealed).decode()}
        return (json.dumps(doc, indent=2) + "\n").encode()

    def _resolve(self, name: str) -> str | None:
        try:
            with self._lock:
                self._load()
        except OSError:
            pass  # the file vanished mid-rotation: keep serving what was last read
        return self._values.get(name) or None

    def _current(self) -> dict[str, str]:
        try:
            self._load()
        except FileNotFoundError:
            self._values, self._stamp, self._derived = {}, None, None
        except OSError as exc:
            raise SecretStoreError(f"cannot read {self.path}: {exc.strerror or type(exc).__name__}") from None
        return dict(self._values)

    def _names(self) -> Iterable[str]:
        with self._lock:
            return list(self._current())

    def _store(self, name: str, value: str) -> None:
        values = self._current()
        values[name] = value
        self._write(values)

    def _remove(self, name: str) -> bool:
        values = self._current()
        if values.pop(name, None) is None:
            return False
        self._write(values)
        return True

    def _write(self, values: dict[str, str]) -> None:
        if self._stamp is None:  # a new file: a fresh salt
            self._derived = None
        write_private(self.path, self._encrypt(values))
        self._values, self._stamp = values, self.path.stat().st_mtime_ns


class KeyringSecretStore(BaseSecretStore):
    """Secrets in the operating system's keyring (the `keyring` package: the `keyring`
    extra), under one service name. The keyring cannot list what it holds, so the store
    keeps the names it manages in one more entry, `modelmesh:index` (names only)."""

    INDEX = "modelmesh:index"

    def __init__(self, service: str = "modelmesh", *, backend: Any = None, **cache: Any) -> None:
        super().__init__(**cache)
        if not isinstance(service, str) or not service:
            raise ValueError("a keyring service name must be a non-empty string")
        self.service = service
        self._backend = backend  # a keyring backend object; None: the keyring package's configured one

    def __repr__(self) -> str:
        return f"KeyringSecretStore(service={self.service!r})"

    def _ring(self) -> Any:
        if self._backend is not None:
            return self._backend
        try:
            import keyring
        except ImportError:
            raise SecretStoreError("the keyring secret store needs the keyring package: "
                                   "pip install 'modelmesh-lite[keyring]'") from None
        return keyring.get_keyring()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except SecretStoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend's message may quote anything; name its type only
            raise SecretStoreError(f"{self!r}: the keyring failed to {what} ({type(exc).__name__})") from None

    def _resolve(self, name: str) -> str | None:
        ring = self._ring()
        return self._call(f"read {name!r}", ring.get_password, self.service, name) or None

    def _index(self) -> list[str]:
        raw = self._call("read its index", self._ring().get_password, self.service, self.INDEX)
        try:
            names = json.loads(raw) if raw else []
        except ValueError:
            names = []
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def _names(self) -> Iterable[str]:
        return self._index()

    def _store(self, name: str, value: str) -> None:
        if name == self.INDEX:
            raise SecretStoreError(f"{name!r} is the keyring store's own index; choose another name")
        ring = self._ring()
        self._call(f"store {name!r}", ring.set_password, self.service, name, value)
        names = self._index()
        if name not in names:
            self._call("update its index", ring.set_password, self.service, self.INDEX, json.dumps([*names, name]))

    def _remove(self, name: str) -> bool:
        ring = self._ring()
        present = self._call(f"read {name!r}", ring.get_password, self.service, name) is not None
        if present:
            self._call(f"delete {name!r}", ring.delete_password, self.service, name)
        names = self._index()
        if name in names:
            names.remove(name)
            self._call("update its index", ring.set_password, self.service, self.INDEX, json.dumps(names))
        return present


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
                      base_dir: str | os.PathLike[str] | None = None, *,
                      environ: Mapping[str, str] | None = None, create: bool = False) -> SecretStore:
    """The store a `secrets:` section describes; relative paths are taken from `base_dir`.

    A custom store (`store: "package.module:Class"`) is called with the SecretsConfig.
    Problems (missing file, unreadable file, wrong passphrase, bad class) raise
    ConfigurationError naming the setting. `create`: a file store whose file does not
    exist yet starts empty (for `modelmesh secrets set`). `environ` holds the
    encrypted-file store's passphrase variable (default `os.environ`).
    """
    config = secrets_config or SecretsConfig()
    cache: _CacheOptions = {"cache_enabled": config.cache_enabled, "cache_ttl": config.cache_ttl}
    if config.store == "env":
        return EnvSecretStore(**cache)
    if config.store == "memory":
        return MemorySecretStore(config.values, **cache)
    if config.store == "keyring":
        return KeyringSecretStore(config.service, **cache)
    if config.store in ("file", "dotenv", "encrypted-file"):
        if not config.path:
            raise ConfigurationError([f"secrets.path: required for the {config.store!r} store"])
        path = Path(base_dir or ".") / Path(config.path).expanduser()
        passphrase = _passphrase(config, environ) if config.store == "encrypted-file" else ""
        try:
            if config.store == "encrypted-file":
                return EncryptedFileSecretStore(path, passphrase, create=create, **cache)
            return FileSecretStore(path, create=create, **cache)
        except FileNotFoundError:
            problem = f"secrets.path: secrets file not found: {path}"
        except SecretStoreError as exc:
            problem = f"secrets.path: {exc.message}"
        except ImportError:
            problem = ("secrets.store: the encrypted-file store needs the cryptography package: "
                       "pip install 'modelmesh-lite[encryption]'")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            problem = f"secrets.path: cannot read secrets file {path}: {_describe(exc)}"
        raise ConfigurationError([problem])
    return _custom_store(config)


def _passphrase(config: SecretsConfig, environ: Mapping[str, str] | None) -> str:
    value = (os.environ if environ is None else environ).get(config.passphrase_env)
    if not value:
        raise ConfigurationError([f"secrets.passphrase_env: the encrypted-file store's passphrase is read from the "
                                  f"environment variable {config.passphrase_env}, which is not set"])
    return value


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


# -- keys re-read while a client runs ------------------------------------------------------

class SecretRefresher:
    """Re-reads, every `secrets.cache_ttl`, the provider keys that came from `${secrets:NAME}`
    references, and hands each provider's list to the core (`MeshCore.set_api_keys`), which
    rotates to a changed key and keeps the state of unchanged ones.

    The client owns one; its driver asks `due(now)` (a float comparison) before a request
    and calls `refresh(now)` when it is, so the store is read at most once per TTL whatever
    the traffic (`cache_enabled: false`: before every request). With
    `reload_on_rotation`, a key rotated or retired by the core makes the next request
    re-read at once: a key replaced in the store is picked up when the old one fails.
    A secret missing or unreadable at refresh keeps its last value (with a warning that
    names the secret, never its value): a running client does not lose a working key to a
    store's hiccup. `fail_on_missing` is for start-up, where a missing secret is an error.
    """

    def __init__(self, core: Any, store: SecretStore, config: Any, *, clock: Callable[[], float]) -> None:
        self.core = core
        self.store = store
        self.clock = clock
        secrets = config.secrets
        self.every = secrets.cache_ttl if secrets.cache_enabled else 0.0
        self.reload_on_rotation = secrets.reload_on_rotation
        # provider -> [(secret name or "" for a literal, last value)]
        self._refs: dict[str, list[tuple[str, str]]] = {
            pid: list(zip(p.auth.key_refs, p.auth.api_keys, strict=True)) for pid, p in config.providers.items()
            if any(p.auth.key_refs) and len(p.auth.key_refs) == len(p.auth.api_keys)}
        self.next_due = clock() + self.every
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, core: Any, store: Any, config: Any, *, clock: Callable[[], float]) -> SecretRefresher | None:
        """A refresher when some provider key came from the store; None when there is nothing to re-read."""
        if store is None or not any(any(p.auth.key_refs) for p in config.providers.values()):
            return None
        return cls(core, store, config, clock=clock)

    def __repr__(self) -> str:
        return f"SecretRefresher(store={self.store!r}, providers={sorted(self._refs)!r}, every={self.every}s)"

    def due(self, now: float) -> bool:
        return now >= self.next_due

    def saw(self, event: Any) -> None:
        """An event the core emitted: a rotated or retired key makes a re-read due now."""
        if self.reload_on_rotation and getattr(event, "type", None) in ("key_rotated", "key_retired"):
            self.next_due = -math.inf

    def refresh(self, now: float | None = None) -> list[Any]:
        """Re-read every referenced key (one thread at a time; others go on with the keys
        they have) and return the events the core emitted."""
        if not self._lock.acquire(blocking=False):
            return []
        try:
            now = self.clock() if now is None else now
            if now < self.next_due:
                return []
            self.next_due = now + self.every
            clear = getattr(self.store, "clear_cache", None)
            if callable(clear):
                clear()
            events: list[Any] = []
            for pid, refs in self._refs.items():
                fresh = [(name, self._read(pid, name, last) if name else last) for name, last in refs]
                self._refs[pid] = fresh
                events += self.core.set_api_keys(pid, [value for _, value in fresh], now=now)
            return events
        finally:
            self._lock.release()

    def _read(self, provider: str, name: str, last: str) -> str:
        from modelmesh._core._config_read import header_value_problem

        try:
            value = self.store.get(name)
        except Exception as exc:  # noqa: BLE001 - a store's message may hold anything: name its type only
            _log.warning("modelmesh: re-reading secret %r for provider %r failed (%s); keeping its last value",
                         name, provider, type(exc).__name__)
            return last
        if not value:
            _log.warning("modelmesh: secret %r for provider %r is no longer in the store; keeping its last value",
                         name, provider)
            return last
        problem = header_value_problem(value)
        if problem:
            _log.warning("modelmesh: secret %r for provider %r cannot be sent (it %s); keeping its last value",
                         name, provider, problem)
            return last
        return value
