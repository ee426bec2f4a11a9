"""Serializer round trips, make_storage by name, and the storage package staying out of `import modelmesh`."""
from __future__ import annotations

import subprocess
import sys
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmesh.connectors.storage import (
    FileStorage,
    MemoryStorage,
    RedisStorage,
    Serializer,
    SQLiteStorage,
    make_storage,
)

PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
SERIALIZERS = [(f, c) for f in ("json", "yaml", "msgpack") for c in (False, True)]


@pytest.mark.parametrize(("format", "compression"), SERIALIZERS)
@settings(max_examples=60, deadline=None)
@given(data=PLAIN)
def test_plain_data_comes_back_equal(format, compression, data):
    serializer = Serializer(format, compression=compression)
    raw = serializer.dumps(data)
    assert isinstance(raw, bytes)
    assert serializer.loads(raw) == data


def test_compression_is_zlib_and_makes_repetitive_state_smaller():
    state = {"models": [{"name": f"model-{i}", "failures": 0, "cooldown_until": None} for i in range(200)]}
    plain, packed = Serializer().dumps(state), Serializer(compression=True).dumps(state)
    assert len(packed) < len(plain) / 5
    assert zlib.decompress(packed) == plain


def test_json_is_compact_utf8():
    assert Serializer().dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


@pytest.mark.parametrize("format", ["json", "yaml", "msgpack"])
def test_data_that_is_not_plain_is_refused_when_written(format):
    with pytest.raises(TypeError):
        Serializer(format).dumps({"when": object()})


def test_reading_with_the_wrong_settings_is_a_clear_value_error():
    with pytest.raises(ValueError, match="compression=False"):
        Serializer(compression=True).loads(b'{"a": 1}')
    with pytest.raises(ValueError, match="not valid json"):
        Serializer().loads(zlib.compress(b'{"a": 1}'))
    with pytest.raises(ValueError, match="not valid msgpack"):
        Serializer("msgpack").loads(b"\xc1")


def test_an_unknown_format_names_the_choices():
    with pytest.raises(ValueError, match="json, yaml, msgpack"):
        Serializer("xml")
    with pytest.raises(TypeError):
        Serializer(compression="yes")


@pytest.mark.parametrize(("format", "module", "hint"), [("yaml", "yaml", "pyyaml"), ("msgpack", "msgpack", "msgpack")])
def test_a_missing_library_says_what_to_install(monkeypatch, format, module, hint):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=f"pip install .*{hint}"):
        Serializer(format)


def test_make_storage_builds_each_connector_by_name(tmp_path):
    assert type(make_storage("memory", {})) is MemoryStorage
    assert type(make_storage("memory")) is MemoryStorage
    with make_storage("file", {"path": str(tmp_path / "f"), "lease": 5}) as store:
        assert type(store) is FileStorage and store.lease == 5
    with make_storage("sqlite", {"path": str(tmp_path / "s.db"), "timeout": 2}) as store:
        assert type(store) is SQLiteStorage and store.timeout == 2
    with make_storage("redis", {"url": "redis://127.0.0.1:1/0", "prefix": "p:", "default_ttl": 60}) as store:
        assert type(store) is RedisStorage and store.prefix == "p:" and store.default_ttl == 60  # no connection yet


def test_make_storage_refuses_what_it_does_not_know():
    with pytest.raises(ValueError, match="'s3'.*memory, file, sqlite, redis"):
        make_storage("s3", {})
    with pytest.raises(ValueError, match="needs path"):
        make_storage("file", {})
    with pytest.raises(ValueError, match="'pth'"):
        make_storage("sqlite", {"path": "x.db", "pth": 1})


def test_import_modelmesh_loads_neither_the_storage_package_nor_its_libraries():
    probe = ("import sys, modelmesh\n"
             "print([m for m in ('modelmesh.connectors.storage', 'redis', 'yaml', 'msgpack', 'sqlite3') if m in sys.modules])\n"
             "import modelmesh.connectors.storage\n"
             "print([m for m in ('redis', 'yaml', 'msgpack') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "[]"
