"""Secret stores: lookup spellings, file formats, caching, and the store factory."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelmesh._core._config_schema import SecretsConfig
from modelmesh._core._errors import ConfigurationError
from modelmesh.connectors.secrets import (
    DotenvSecretStore,
    EnvSecretStore,
    MemorySecretStore,
    make_secret_store,
    parse_dotenv,
)

SECRET = "sk-test-abcdefghijklmnop"


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_env_store_tries_the_name_then_env_spelling() -> None:
    store = EnvSecretStore({"PROXY_KEY": SECRET, "exact.name": "x1"}, cache_enabled=False)
    assert store.get("proxy-key") == SECRET
    assert store.get("PROXY_KEY") == SECRET
    assert store.get("exact.name") == "x1"
    assert store.get("other") is None


def test_env_store_reads_the_live_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    store = EnvSecretStore(cache_enabled=False)
    monkeypatch.delenv("MM_TEST_SECRET", raising=False)
    assert store.get("mm-test-secret") is None
    monkeypatch.setenv("MM_TEST_SECRET", SECRET)
    assert store.get("mm-test-secret") == SECRET


def test_empty_values_count_as_missing() -> None:
    assert EnvSecretStore({"K": ""}).get("K") is None


def test_bad_names_are_refused() -> None:
    with pytest.raises(ValueError):
        MemorySecretStore().get("")


def test_cache_keeps_values_for_the_ttl_only() -> None:
    timer = FakeTimer()
    env = {"K": "v1"}
    store = EnvSecretStore(env, cache_ttl=300.0, timer=timer)
    assert store.get("K") == "v1"
    env["K"] = "v2"
    timer.now += 299
    assert store.get("K") == "v1"          # still cached
    timer.now += 2
    assert store.get("K") == "v2"          # expired, read again


def test_misses_are_not_cached() -> None:
    env: dict[str, str] = {}
    store = EnvSecretStore(env, cache_ttl=300.0, timer=FakeTimer())
    assert store.get("K") is None
    env["K"] = "now-set"
    assert store.get("K") == "now-set"


def test_cache_disabled_always_reads() -> None:
    env = {"K": "v1"}
    store = EnvSecretStore(env, cache_enabled=False)
    assert store.get("K") == "v1"
    env["K"] = "v2"
    assert store.get("K") == "v2"


def test_memory_store_management() -> None:
    store = MemorySecretStore({"a": "1"})
    store.set("b", "2")
    assert store.get("b") == "2" and store.list() == ("a", "b")
    store.delete("a")
    assert store.get("a") is None
    store.set("b", "3")
    assert store.get("b") == "3"  # set() drops the cached value


def test_parse_dotenv() -> None:
    text = """
# comment
export OPENAI_API_KEY=sk-1
PLAIN = value with spaces  # trailing comment
DOUBLE="line\\nbreak"
SINGLE='keep # hash'
QUOTED="quoted" # comment
EMPTY=
"""
    assert parse_dotenv(text) == {
        "OPENAI_API_KEY": "sk-1",
        "PLAIN": "value with spaces",
        "DOUBLE": "line\nbreak",
        "SINGLE": "keep # hash",
        "QUOTED": "quoted",
        "EMPTY": "",
    }


def test_parse_dotenv_error_never_echoes_the_line() -> None:
    with pytest.raises(ValueError) as info:
        parse_dotenv(f"GOOD=1\n{SECRET}\n")
    assert str(info.value) == "line 2: expected KEY=VALUE"


def test_dotenv_store_reads_and_notices_changes(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(f"PROXY_KEY={SECRET}\n")
    store = DotenvSecretStore(path, cache_enabled=False)
    assert store.get("proxy-key") == SECRET
    path.write_text("PROXY_KEY=rotated-key-value\n")
    stamp = path.stat().st_mtime_ns + 1_000_000_000  # make the change visible to mtime
    os.utime(path, ns=(stamp, stamp))
    assert store.get("proxy-key") == "rotated-key-value"
    assert SECRET not in repr(store)


def test_dotenv_store_reads_json_with_nesting(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"openai-key": SECRET, "azure": {"key": "az-1", "n": 3}}))
    store = DotenvSecretStore(path)
    assert store.get("openai-key") == SECRET
    assert store.get("azure.key") == "az-1" and store.get("azure.n") == "3"


def test_missing_file_is_an_error_at_construction(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DotenvSecretStore(tmp_path / "nope.env")


def test_make_secret_store_kinds(tmp_path: Path) -> None:
    (tmp_path / "keys.env").write_text(f"K={SECRET}\n")
    assert isinstance(make_secret_store(None), EnvSecretStore)
    memory = make_secret_store(SecretsConfig(store="memory", values={"K": "m"}))
    assert memory.get("K") == "m"
    dotenv = make_secret_store(SecretsConfig(store="dotenv", path="keys.env"), tmp_path)
    assert isinstance(dotenv, DotenvSecretStore) and dotenv.get("K") == SECRET
    file_store = make_secret_store(SecretsConfig(store="file", path=str(tmp_path / "keys.env")))
    assert file_store.get("K") == SECRET


def test_make_secret_store_reports_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_secret_store(SecretsConfig(store="dotenv", path="missing.env"), tmp_path)
    assert info.value.problems == (
        f"secrets.path: secrets file not found: {tmp_path / 'missing.env'}",)
    bad = tmp_path / "bad.json"
    bad.write_text('{"k": "' + SECRET + '",}')
    with pytest.raises(ConfigurationError) as info:
        make_secret_store(SecretsConfig(store="file", path=str(bad)))
    assert "invalid JSON at line 1" in str(info.value)
    assert SECRET not in str(info.value)


def test_custom_store_is_imported_and_called_with_the_config() -> None:
    store = make_secret_store(SecretsConfig(store="tests.test_secrets:UpperStore"))
    assert store.get("abc") == "ABC"
    with pytest.raises(ConfigurationError, match="secrets.store: cannot import"):
        make_secret_store(SecretsConfig(store="tests.test_secrets:Nope"))


class UpperStore:
    def __init__(self, config: SecretsConfig) -> None:
        self.config = config

    def get(self, name: str) -> str:
        return name.upper()
