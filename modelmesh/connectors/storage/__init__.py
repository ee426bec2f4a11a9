"""Storage connectors: where shared state, configuration and logs are kept (seed 002, "Storage").

`MemoryStorage` (the default), `FileStorage`, `SQLiteStorage`, `RedisStorage` and `KeyValueStorage`
(the contract over four primitives, for a backend of your own: modelmesh.cdk) implement
`BaseStorage`: load/save, list/delete, stat/exists, acquire/release/is_locked, and the two
atomic numbers `add` and `raise_to` for counters and deadlines shared between processes.
`Serializer` turns plain data into the bytes they store (encrypted by a `Cipher` when
`storage.persistence.encryption` is on); `make_storage` builds one by name.
Nothing here is imported by `import modelmesh`, and redis, yaml and msgpack only when used.
"""
from ._base import BaseStorage, Lock, Stat, StorageUnavailable
from ._cipher import Cipher
from ._factory import CONNECTORS, make_storage
from ._file import FileStorage
from ._keyvalue import KeyValueStorage
from ._memory import MemoryStorage
from ._redis import RedisStorage
from ._serializer import FORMATS, Serializer
from ._sqlite import SQLiteStorage

__all__ = [
    "BaseStorage",
    "CONNECTORS",
    "Cipher",
    "FORMATS",
    "FileStorage",
    "KeyValueStorage",
    "Lock",
    "MemoryStorage",
    "RedisStorage",
    "SQLiteStorage",
    "Serializer",
    "Stat",
    "StorageUnavailable",
    "make_storage",
]
